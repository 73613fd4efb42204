"""Tier 3: a real ``bentoml serve`` process on 127.0.0.1, a free port, the fixture's BentoML home.

The server is started once for the module (one worker), waited for on ``/readyz`` with a bounded timeout and
always terminated (its whole process group) in teardown. Request counts are small and bounded.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pytest

from .conftest import ROOT, changed_record, stop_server

pytestmark = pytest.mark.serving

BENTO_DIR = ROOT / "bento"
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def server_env(home: Path, **extra: str) -> dict[str, str]:
    # the service's defaults (hot swap on) unless a test says otherwise
    env = {k: v for k, v in os.environ.items()
           if k not in ("WORKBENCH_MODEL_TAG", "WORKBENCH_SERVING_PIN", "WORKBENCH_HOT_SWAP")}
    env.update(BENTOML_HOME=str(home), WORKBENCH_WORKERS="1", BENTOML_DO_NOT_TRACK="true", OMP_NUM_THREADS="1")
    env.update(extra)
    return env


@contextlib.contextmanager
def bentoml_serve(home: Path, log: Path, *args: str, cwd: Path = BENTO_DIR, **env: str) -> Iterator[str]:
    """Run ``bentoml serve [args] --host 127.0.0.1 --port N`` in ``cwd``; yield its URL once ready.

    ``free_port`` can race with another process taking the port before the server binds it; the server then
    exits and the test fails with its log (not retried: rare, and visible).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", *args, "--host", "127.0.0.1",
                                 "--port", str(port)], cwd=cwd, env=server_env(home, **env),
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                pytest.fail(f"bentoml serve exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                pytest.fail(f"bentoml serve not ready after {START_TIMEOUT:.0f} s:\n{log.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=1.0).status_code == 200:
                    break
            time.sleep(0.2)
        yield url
    finally:
        stop_server(proc)


@pytest.fixture(scope="module")
def server(serving_package, tmp_path_factory) -> Iterator[httpx.Client]:
    log = tmp_path_factory.mktemp("serve") / "bentoml-serve.log"
    with bentoml_serve(serving_package.home, log) as url, httpx.Client(base_url=url, timeout=30.0) as client:
        yield client


def post(client: httpx.Client, body: bytes | str, **headers: str) -> httpx.Response:
    return client.post("/predict", content=body, headers={"Content-Type": "application/json", **headers})


def test_ready_and_alive(server):
    assert server.get("/readyz").status_code == 200
    assert server.get("/livez").status_code == 200


def test_single_record(server, serving_package):
    r = post(server, json.dumps(serving_package.records[0]))
    assert r.status_code == 200
    out = r.json()
    assert out["model_version"] == serving_package.tag and out["request_id"] == r.headers["x-request-id"]
    (pred,) = out["predictions"]
    assert pred["flags"] == {} and 0 <= pred["probability"] <= 1


def test_served_predictions_equal_the_pipeline(server, serving_package):
    from workbench.serving.app import INLINE_BODY_BYTES

    body = json.dumps(serving_package.records)
    assert len(body) > INLINE_BODY_BYTES  # the batch path that scores in a worker thread
    r = post(server, body)
    assert r.status_code == 200
    preds = r.json()["predictions"]
    p = np.array([x["probability"] for x in preds])
    ref = serving_package.reference_proba()
    np.testing.assert_allclose(p, ref, atol=1e-5, rtol=0)
    t = serving_package.threshold
    want = np.where(ref > t, serving_package.serving["positive_label"], serving_package.serving["negative_label"])
    clear = np.abs(ref - t) > 1e-5
    assert (np.array([x["label"] for x in preds])[clear] == want[clear]).all()
    # one record at a time gives the same answers (first 10; onnxruntime's batched kernels sum in another
    # order, so float32 results may differ in the last bits)
    for rec, batch_pred in zip(serving_package.records[:10], preds[:10], strict=True):
        (single,) = post(server, json.dumps(rec)).json()["predictions"]
        assert single["probability"] == pytest.approx(batch_pred["probability"], abs=1e-6)
        assert (single["label"], single["flags"]) == (batch_pred["label"], batch_pred["flags"])


def test_flags_come_back(server, serving_package):
    rec = dict(serving_package.records[0], age=150, race="Martian", occupation=None)
    (pred,) = post(server, json.dumps(rec)).json()["predictions"]
    assert pred["flags"] == {"age": "out_of_range", "race": "unseen_category", "occupation": "missing"}


def _rec(serving_package, **changes):
    return json.dumps(changed_record(serving_package, **changes))


@pytest.mark.parametrize(("case", "status", "field"), [
    ("missing field", 422, "education"),
    ("unknown field", 422, "zodiac"),
    ("wrong type", 422, "age"),
    ("boolean for number", 422, "capital_loss"),
    ("NaN literal", 422, "hours_per_week"),
    ("malformed JSON", 400, None),
    ("empty body", 400, None),
    ("empty batch", 422, None),
])
def test_bad_requests(server, serving_package, case, status, field):
    body = {
        "missing field": _rec(serving_package, education=...),
        "unknown field": _rec(serving_package, zodiac="Leo"),
        "wrong type": _rec(serving_package, age="39"),
        "boolean for number": _rec(serving_package, capital_loss=False),
        "NaN literal": _rec(serving_package, hours_per_week=4321.5).replace("4321.5", "NaN"),
        "malformed JSON": '{"age": 39, "workclass": "Private"',
        "empty body": "",
        "empty batch": "[]",
    }[case]
    r = post(server, body)
    assert r.status_code == status, r.text
    out = r.json()
    assert out["error"] and out["request_id"] == r.headers["x-request-id"]
    if field:
        assert f"field '{field}'" in out["error"] and out["errors"][0]["field"] == field


def test_oversized_bodies_are_413(server, serving_package):
    limit = serving_package.serving["limits"]["max_body_bytes"]
    r = post(server, b" " * (limit + 1))
    assert r.status_code == 413 and str(limit) in r.json()["error"]

    def chunks():  # no Content-Length: counted while it arrives
        for _ in range(limit // (1 << 20) + 2):
            yield b" " * (1 << 20)

    r = server.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413
    assert server.get("/readyz").status_code == 200  # and the server is fine afterwards


def test_serve_without_a_promoted_model_fails_fast(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "bentoml", "serve", "--host", "127.0.0.1", "--port",
                           str(free_port())], cwd=BENTO_DIR, env=server_env(tmp_path / "empty"),
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0
    assert "no production model" in proc.stdout + proc.stderr


def _uv() -> str | None:
    local = ROOT / ".tools" / "bin" / "uv"
    return str(local) if local.exists() else shutil.which("uv")


BENTO_IMPORTS = textwrap.dedent("""
    import importlib.metadata as md, json, sys
    from packaging.requirements import Requirement

    src, requirements, record = sys.argv[1], sys.argv[2], sys.argv[3]
    # the project's own source tree (editable install) must not be where workbench comes from
    sys.path[:] = [src] + [p for p in sys.path if p and not p.rstrip("/").endswith("/src") and p != "."]
    import service

    instance = service.Predict.inner()  # loads onnxruntime and the model, as a worker does
    assert instance.predictor.ready
    assert instance.predictor.handle(json.dumps(json.loads(record)).encode()).status == 200

    def closure(names):
        seen, todo = set(), [n.lower().replace("_", "-") for n in names]
        while todo:
            name = todo.pop()
            if name in seen:
                continue
            seen.add(name)
            try:
                reqs = md.requires(name) or []
            except md.PackageNotFoundError:
                continue
            for r in map(Requirement, reqs):  # optional extras count: httpcore tries `import trio`, etc.
                todo.append(r.name.lower().replace("_", "-"))
        return seen

    wanted = [Requirement(line).name for line in open(requirements).read().split()
              if line and not line.startswith(("#", "-", "."))]
    allowed = closure(wanted)
    dists = md.packages_distributions()
    loaded = sorted({d.lower().replace("_", "-") for m in list(sys.modules) for d in dists.get(m.split(".")[0], [])})
    print(json.dumps({"workbench_from": sys.modules["workbench"].__file__, "loaded": loaded,
                      "outside_requirements": [d for d in loaded if d not in allowed and d != "workbench"]}))
""")


@pytest.mark.skipif(_uv() is None, reason="bentoml build needs uv on PATH (make setup installs .tools/bin/uv)")
def test_bentoml_build_works_offline_and_the_bento_keeps_its_model(serving_package, tmp_path):
    env = server_env(serving_package.home, PATH=f"{Path(_uv()).parent}{os.pathsep}{os.environ['PATH']}",
                     # no network: an attempt to reach a package index fails instead of hanging
                     UV_OFFLINE="1", PIP_NO_INDEX="1", HTTPS_PROXY="http://127.0.0.1:9",
                     HTTP_PROXY="http://127.0.0.1:9")
    proc = subprocess.run([sys.executable, str(BENTO_DIR / "build.py"), "--output", "tag"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    bento_tag = proc.stdout.strip().splitlines()[-1].removeprefix("__tag__:")
    assert bento_tag.startswith("workbench:")
    bento = serving_package.home / "bentos" / "workbench" / bento_tag.split(":")[1]
    assert serving_package.tag in (bento / "bento.yaml").read_text()  # the model it will serve
    assert (bento / "src" / "service.py").exists() and (bento / "env" / "python" / "requirements.txt").exists()
    # the workbench code the service imports travels in the Bento ...
    assert (bento / "src" / "workbench" / "serving" / "predictor.py").exists()
    # ... and everything the service imports (loading the model included) comes from the Bento's src/ or from
    # the serving packages its image installs (requirements.txt and their dependencies, optional ones included:
    # some packages import an optional one when it happens to be installed), not the research stack
    check = subprocess.run([sys.executable, "-c", BENTO_IMPORTS, str(bento / "src"),
                            str(bento / "env" / "python" / "requirements.txt"), json.dumps(serving_package.records[0])],
                           capture_output=True, text=True, timeout=120, cwd=bento / "src", env=env)
    assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-3000:]
    report = json.loads(check.stdout.strip().splitlines()[-1])
    assert report["workbench_from"].startswith(str(bento / "src")), report
    assert report["outside_requirements"] == [], report
    assert {"onnxruntime", "bentoml", "numpy"} <= set(report["loaded"]), report
    research = {"scikit-learn", "shap", "fairlearn", "polars", "pandas", "scipy", "matplotlib", "papermill"}
    assert research.isdisjoint(report["loaded"]), report

    # The Bento serves the model it was built with, even once the pointer names another one.
    pointer = serving_package.home / "workbench" / "production.json"
    saved = pointer.read_text()
    pointer.write_text(json.dumps({"tag": "workbench-adult-income:somethingelse", "sha256": "0" * 64}))
    try:
        # not from bento/: BentoML would import ./service.py instead of the Bento's copy
        with bentoml_serve(serving_package.home, tmp_path / "bento-serve.log", bento_tag, cwd=tmp_path) as url:
            r = httpx.post(f"{url}/predict", content=json.dumps(serving_package.records[0]), timeout=30.0,
                           headers={"Content-Type": "application/json"})
    finally:
        pointer.write_text(saved)
    assert r.status_code == 200 and r.json()["model_version"] == serving_package.tag
