"""The stakeholder app in a real browser: ``marimo run`` on 127.0.0.1 driven by headless Chromium (Debian's
``/usr/bin/chromium`` and ``/usr/bin/chromedriver``; ``make browser`` installs them).

One server and one browser for the module; every wait is bounded and the server is always terminated.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import APP, ROOT

pytestmark = [pytest.mark.browser, pytest.mark.notebook, pytest.mark.timeout(600)]

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
TOKEN = "wb-test-token"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1280,1000"]

# Query the page through marimo's shadow roots (its plugins render inside them).
DEEP = """
const deepAll = (root, sel, out) => {
  root.querySelectorAll(sel).forEach(e => out.push(e));
  root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) deepAll(e.shadowRoot, sel, out); });
  return out;
};
const deepText = (root) => {
  let t = root.textContent || '';
  root.querySelectorAll('*').forEach(e => { if (e.shadowRoot) t += ' ' + deepText(e.shadowRoot); });
  return t;
};
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _require_browser() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not os.access(p, os.X_OK)]
    if missing:
        msg = f"{', '.join(missing)} missing: run `make browser` (apt-get install chromium chromium-driver)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)


@pytest.fixture(scope="module")
def server(promoted, tmp_path_factory):
    """``marimo run`` on a free 127.0.0.1 port with a known token; terminated (process group) in teardown."""
    _require_browser()
    port = _free_port()
    log_path = tmp_path_factory.mktemp("marimo") / "server.log"
    cmd = [sys.executable, "-m", "marimo", "run", str(APP), "--headless", "--host", "127.0.0.1", "--port", str(port),
           "--token-password", TOKEN, "--no-sandbox", "--session-ttl", "5"]
    with open(log_path, "wb") as log:
        env = {**os.environ, **promoted.env, "PYTHONPYCACHEPREFIX": str(log_path.parent / "pycache")}
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(f"marimo exited with {proc.returncode}:\n{log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{base}/health", timeout=2) as r:
                    if r.status == 200:
                        break
            except (urllib.error.URLError, OSError):
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"marimo did not answer /health within 60 s:\n{log_path.read_text()}")
            time.sleep(0.25)
        yield base
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=15)


@pytest.fixture(scope="module")
def browser(server):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="wb-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in [*CHROMIUM_FLAGS, f"--user-data-dir={profile}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def _all(driver, selector: str) -> list:
    return driver.execute_script(DEEP + "return deepAll(document, arguments[0], []);", selector)


def _text(driver) -> str:
    return driver.execute_script(DEEP + "return deepText(document.body);")


def _wait(driver, condition, what: str, timeout: float = 60):
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(lambda d: condition(d))
    except Exception as exc:  # TimeoutException: say what was awaited
        raise AssertionError(f"timed out after {timeout} s waiting for {what}") from exc


def _charts(driver) -> list[str]:
    """The PNG charts on the page that decoded (non-zero size): their data-URL heads (only drift's figure is
    a PNG in the app; the charts people explore are interactive, see :func:`_vega`)."""
    return driver.execute_script(DEEP + """
      return deepAll(document, 'img', []).filter(i => i.src.startsWith('data:image/png') && i.naturalWidth > 0)
                                         .map(i => i.src.slice(-64));""")


def _vega(driver) -> dict[str, dict]:
    """The interactive (altair / vega-embed) charts on the page, by the ``wb-chart-*`` id app_data tags their specs
    with: ``drawn`` (a vega-embed element whose canvas or svg has a non-zero size) and ``spec`` (the spec marimo
    rendered, to tell whether a chart changed)."""
    found = driver.execute_script(DEEP + """
      return deepAll(document, 'marimo-vega', []).map(e => {
        const spec = e.getAttribute('data-spec') || '';
        const id = (spec.match(/wb-chart-[a-z]+/) || [null])[0];
        const drawn = deepAll(e.shadowRoot || e, '.vega-embed', []).concat(deepAll(e, '.vega-embed', []))
          .some(v => Array.from(v.querySelectorAll('canvas, svg')).some(c => {
            const r = c.getBoundingClientRect(); return r.width > 50 && r.height > 30; }));
        return [id, drawn, spec];
      });""")
    return {i: {"drawn": drawn, "spec": spec} for i, drawn, spec in found if i}


def _drawn(driver) -> list[str]:
    return [i for i, c in _vega(driver).items() if c["drawn"]]


def _hover_tooltip(driver, chart_id: str, timeout: float = 30) -> str:
    """Move the mouse over an interactive chart until vega's tooltip shows; its text ("" if none appeared)."""
    from selenium.webdriver.common.action_chains import ActionChains

    canvas = driver.execute_script(DEEP + """
      const e = deepAll(document, 'marimo-vega', []).find(e => (e.getAttribute('data-spec') || '').includes(arguments[0]));
      return e ? deepAll(e.shadowRoot || e, '.vega-embed canvas, .vega-embed svg', [])[0] : null;""", chart_id)
    assert canvas is not None, f"no drawn {chart_id}"
    _scroll_to(driver, canvas)
    w, h = driver.execute_script("const r = arguments[0].getBoundingClientRect(); return [r.width, r.height];", canvas)
    deadline = time.monotonic() + timeout
    for y in range(10, int(h) - 10, 6):
        for x in range(40, int(w) - 10, 8):
            ActionChains(driver, duration=0).move_to_element_with_offset(canvas, x - int(w) // 2,
                                                                        y - int(h) // 2).perform()
            tips = driver.execute_script(DEEP + """
              return deepAll(document, '.vg-tooltip', []).filter(t => t.classList.contains('visible'))
                                                        .map(t => t.textContent);""")
            if tips:
                return tips[0]
            if time.monotonic() > deadline:
                return ""
    return ""


def _rows(driver) -> list[list[str]]:
    """The first two cells of every table row on the page."""
    return driver.execute_script(DEEP + """
      return deepAll(document, 'tbody tr', []).map(r => Array.from(r.querySelectorAll('td')).slice(0, 2)
                                                          .map(c => c.textContent.trim()));""")


DTYPES = ("str", "string", "f64", "f32", "i64", "i32", "u32", "bool", "date", "datetime", "null", "object", "list")


def _dtype_labels(driver) -> list[str]:
    """Texts inside table headers that are bare data-type labels (what marimo shows under a header unless told
    not to)."""
    return driver.execute_script(DEEP + """
      const types = new Set(arguments[0]);
      return deepAll(document, 'thead *', []).map(e => (e.textContent || '').trim())
                                             .filter(t => types.has(t));""", list(DTYPES))


def _overflowing_tables(driver) -> list:
    """Tables whose right edge lies beyond the window (cut off on the right)."""
    return driver.execute_script(DEEP + """
      return deepAll(document, 'table', []).map(t => t.getBoundingClientRect())
               .filter(r => r.width > 0 && r.right > window.innerWidth + 1).map(r => [r.left, r.right]);""")


def _lead(driver, screen: str) -> str:
    found = _all(driver, f"#wb-lead-{screen}")
    return found[0].text if found else ""


def _scroll_to(driver, el) -> None:
    driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", el)


def _screenshot(driver, path: Path) -> Path:
    height = driver.execute_script(
        "return Math.max(...Array.from(document.querySelectorAll('*')).map(e => e.scrollHeight));")
    driver.set_window_size(1280, min(max(int(height) + 200, 1000), 16000))
    time.sleep(0.5)
    driver.save_screenshot(str(path))
    driver.set_window_size(1280, 1000)
    return path


def test_the_app_refuses_requests_without_the_token(server):
    req = urllib.request.Request(server + "/")

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    opener = urllib.request.build_opener(NoRedirect)
    with pytest.raises(urllib.error.HTTPError) as err:
        opener.open(req, timeout=10)
    assert err.value.code in (303, 401) and "/auth/login" in (err.value.headers.get("location") or "/auth/login")


def test_stakeholder_app_in_a_real_browser(promoted, server, browser, tmp_path_factory):
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    from workbench import app_data as ad

    t0 = time.perf_counter()
    browser.get(f"{server}/?access_token={TOKEN}")
    _wait(browser, lambda d: _all(d, "#wb-whatif-score") and len(_drawn(d)) >= 5, "the app to render", 90)
    loaded_s = time.perf_counter() - t0

    # -- screen by screen: header and production model, gates, performance, fairness, SHAP, what-if, drift
    text = _text(browser)
    for expected in ("workbench: stakeholder view", "In production:", promoted.tag, promoted.run_id,
                     "Model card and gate verdicts", "Intended use", "serving copy agrees", "PASS",
                     "Performance against the baseline", "majority", "rule", "Fairness slices",
                     "What drives the scores", "What-if: score one person", "Score this person",
                     "Drift of production inputs", "No prediction log yet"):
        assert expected in text, f"{expected!r} is not on the page"
    assert "Traceback" not in text and "An internal error occurred" not in text
    # -- the charts people explore are interactive (vega-embed), not images: performance, fairness, SHAP, what-if
    drawn = _drawn(browser)
    for chart_id in ("performance", "fairness", "importance", "drivers", "contributions"):
        assert f"wb-chart-{chart_id}" in drawn, f"the {chart_id} chart is not drawn: {drawn}"
    assert not _charts(browser), "a static PNG chart is still on the screens people explore"
    for chart_id in ("wb-chart-performance", "wb-chart-fairness"):
        section = browser.execute_script(DEEP + """
          const e = deepAll(document, 'marimo-vega', []).find(e => (e.getAttribute('data-spec') || '').includes(arguments[0]));
          let n = e; while (n && !(n.textContent || '').match(/[0-9] · /)) n = n.parentElement || n.getRootNode().host;
          return n ? (n.textContent.match(/[0-9] · [A-Za-z ]+/) || [''])[0] : '';""", chart_id)
        assert section.startswith({"wb-chart-performance": "2 · Performance",
                                   "wb-chart-fairness": "3 · Fairness"}[chart_id]), (chart_id, section)
    perf_tip = _hover_tooltip(browser, "wb-chart-performance")
    assert "model" in perf_tip and "PR-AUC" in perf_tip, perf_tip
    tables = _all(browser, "table")
    assert len(tables) >= 6, f"only {len(tables)} tables rendered"
    gate_table = next(t for t in tables if "serving copy agrees" in t.text)
    assert len(gate_table.find_elements("css selector", "tbody tr")) >= 10

    # -- plain language: each screen leads with a sentence; no raw metric names, fingerprints or dtype rows
    run = ad.load_run(promoted.run_id)
    sexes = [g["group"] for g in run["reports"]["fairness"]["groups"]["sex"]]
    assert _lead(browser, "overview").startswith("This run chose ")
    assert _lead(browser, "performance").startswith("The selected model") and "PR-AUC (" in _lead(browser,
                                                                                                  "performance")
    fair_lead = _lead(browser, "fairness")
    assert fair_lead.startswith("By sex, the model predicts “>50K” for ") and all(g in fair_lead for g in sexes)
    assert "equalized-odds gap" in fair_lead and "percentage points" in fair_lead
    assert _lead(browser, "drivers").startswith("The model's scores depend most on")
    assert _lead(browser, "whatif").startswith("For the typical case") and _lead(browser, "drift")
    assert "reported, not gated (the brief sets no limit for it)" in text  # "no threshold" explained
    leads = " ".join(_lead(browser, s) for s in ("overview", "performance", "fairness", "drivers", "whatif"))
    for raw in ("pr_auc", "equalized_odds_difference", "Additivity check", "sha256"):
        assert raw not in leads and raw not in gate_table.text, f"{raw!r} is shown to stakeholders"
    assert run["manifest"]["data"]["train"]["sha256"][:12] not in gate_table.text  # fingerprints stay technical
    assert not _dtype_labels(browser), _dtype_labels(browser)
    assert not _overflowing_tables(browser), _overflowing_tables(browser)

    # -- switch the fairness slice selectors: sensitive feature -> race, metric -> TPR
    fairness = ad.load_run(promoted.run_id)["reports"]["fairness"]
    race_groups = [g["group"] for g in fairness["groups"]["race"]]
    selects = _all(browser, "select")
    feature = next(s for s in selects if [o.text for o in Select(s).options] == ["sex", "race", "sex & race"])
    metric = next(s for s in selects if "true positive rate (TPR)" in [o.text for o in Select(s).options])
    fair_tip = _hover_tooltip(browser, "wb-chart-fairness")
    assert all(w in fair_tip for w in ("sex", "people", "selection rate", "likely range", "evidence")), fair_tip
    assert any(g in fair_tip for g in sexes) and "%" in fair_tip, fair_tip
    fair_chart_before = _vega(browser)["wb-chart-fairness"]["spec"]
    _scroll_to(browser, feature)
    Select(feature).select_by_visible_text("race")
    _wait(browser, lambda d: any(all(g in t.text for g in race_groups) for t in _all(d, "table")),
          "the fairness table to show the race groups", 30)
    Select(metric).select_by_visible_text("true positive rate (TPR)")
    _wait(browser, lambda d: _lead(d, "fairness").startswith("By race, the model finds "), "the TPR view", 30)
    _wait(browser, lambda d: "wb-chart-fairness" in _drawn(d), "the TPR chart to be drawn", 30)
    fair_chart_after = _vega(browser)["wb-chart-fairness"]["spec"]
    assert fair_chart_after != fair_chart_before, "the fairness chart did not change"
    assert "true positive rate (TPR)" in fair_chart_after and all(g in fair_chart_after for g in race_groups)

    # -- fill the what-if form (age 52, education Masters) and submit; the score must be the ONNX one
    score_el = _all(browser, "#wb-whatif-score")[0]
    default_p = float(score_el.get_attribute("data-probability"))
    age = next(i for i in _all(browser, "input") if ">age<" in (i.get_attribute("aria-label") or ""))
    _scroll_to(browser, age)
    age.click()
    age.send_keys(Keys.END, Keys.BACKSPACE * 8, "52", Keys.TAB)
    education = next(s for s in _all(browser, "select") if "Masters" in [o.text for o in Select(s).options])
    Select(education).select_by_visible_text("Masters")
    submit = next(b for b in _all(browser, "button") if "Score this person" in (b.text or ""))
    _scroll_to(browser, submit)
    submit.click()
    _wait(browser, lambda d: "the person you entered" in _all(d, "#wb-whatif-score")[0].text,
          "the submitted what-if score", 30)
    score_el = _all(browser, "#wb-whatif-score")[0]
    shown_p = float(score_el.get_attribute("data-probability"))
    pkg = ad.production_package()["package"]
    expected = ad.score_whatif(pkg, ad.whatif_row(ad.whatif_fields(pkg["serving"], pkg["profile"]),
                                                  {"age": 52, "education": "Masters"}))
    assert shown_p == pytest.approx(expected["probability"], abs=1e-6)
    assert shown_p != pytest.approx(default_p, abs=1e-9)
    assert f"{expected['probability']:.3f}" in score_el.text and expected["label"] in score_el.text
    _wait(browser, lambda d: ["age", "52"] in _rows(d), "the contributions of the submitted person", 30)

    errors = [e for e in browser.get_log("browser") if e.get("level") == "SEVERE"]
    assert not errors, errors

    # -- once the production model has logged requests, a fresh page shows its drift instead
    shot = _with_prediction_log(promoted, browser, server, tmp_path_factory)
    print(f"\nfixture (run + promotion) {promoted.seconds:.1f} s; app rendered in {loaded_s:.1f} s; "
          f"browser checks {time.perf_counter() - t0:.1f} s; screenshot: {shot}")


def _with_prediction_log(promoted, browser, server, tmp_path_factory) -> Path:
    import numpy as np

    from workbench import app_data as ad
    from workbench.monitoring.log import PredictionLog, log_dir

    pkg = ad.production_package()["package"]
    rows = ad.load_contributions(promoted.run_dir)
    features = [i["name"] for i in pkg["serving"]["inputs"]]
    inputs = {f: [None if v == "" else v for v in rows[f].to_list()] for f in features}
    proba = 1 / (1 + np.exp(-rows["margin"].to_numpy()))
    log = PredictionLog(pkg["tag"])
    try:
        log.append("browser-test", inputs, proba.tolist(), ["x"] * len(proba))
        log.close()
        browser.get(f"{server}/?access_token={TOKEN}")
        _wait(browser, lambda d: "logged rows. Action:" in _text(d) and len(_charts(d)) >= 1 and len(_drawn(d)) >= 5,
              "the drift section with a prediction log", 90)
        text = _text(browser)
        assert f"over {rows.height} logged rows" in text and "No prediction log yet" not in text
        shot = _screenshot(browser, tmp_path_factory.mktemp("screens") / "stakeholder_app.png")
        assert shot.stat().st_size > 50_000
        return shot
    finally:
        shutil.rmtree(log_dir(), ignore_errors=True)


def test_run_report_opens_offline_in_the_browser(promoted, browser, tmp_path_factory):
    """report.html is self-contained: from file://, with no server and no network, every figure decodes."""
    browser.get((promoted.run_dir / "report.html").as_uri())
    _wait(browser, lambda d: d.execute_script("return document.readyState") == "complete", "report.html to load", 30)
    images = browser.execute_script("return Array.from(document.images).map(i => [i.naturalWidth, i.src.slice(0, 22)])")
    assert len(images) >= 8 and all(w > 0 and src == "data:image/png;base64," for w, src in images), images
    text = browser.execute_script("return document.body.innerText")
    for expected in ("Gates", "Discovery", "Prototype", "Provenance", promoted.run_id):
        assert expected in text
    shot = _screenshot(browser, tmp_path_factory.mktemp("screens") / "run_report.png")
    print(f"\nrun report screenshot: {shot}")
