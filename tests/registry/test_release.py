"""Stages, the ledger's replay (old and new lines), release (a rehearsal against a real `bentoml serve`), compare.

Packages are built cheaply: a logistic regression on synthetic rows, converted with skl2onnx and saved to a
throwaway BentoML home (no notebook run). :func:`build` is shared with test_champion.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from testkit import isolated_workbench
from workbench.errors import WorkbenchError
from workbench.registry import ledger

NUMERIC = ["size", "weight"]
CATEGORICAL = ["colour", "region"]


def frame(n: int, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    size, weight = rng.normal(10, 3, n), rng.gamma(2.0, 5.0, n)
    colour, region = rng.choice(["red", "green", "blue"], n), rng.choice(["north", "south"], n)
    z = 0.8 * (size - 10) + 0.1 * (weight - 10) + np.where(colour == "red", 1.0, 0.0)
    y = (rng.random(n) < 1 / (1 + np.exp(-z))).astype(int)
    return pd.DataFrame({"size": size, "weight": weight, "colour": colour, "region": region}), y


def build(*, name: str = "workbench-toy", brief: str = "toy", seed: int = 0, worse: bool = False,
          drop: tuple[str, ...] = (), n: int = 800, deployment: dict | None = None) -> dict:
    """Fit, convert and register a binary package (not touching the ledger or the pointer); ``deployment``: the
    ``deployment`` section of its ``monitoring.json`` (the release gates' figures)."""
    import warnings

    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from workbench.registry.store import get_model, save_model_package

    X, y = frame(n, 0)
    if worse:  # trained on flipped labels: clearly worse than any honest model
        y = 1 - y
    num = [c for c in NUMERIC if c not in drop]
    cat = [c for c in CATEGORICAL if c not in drop]
    numeric = Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())])
    categorical = Pipeline([("impute", SimpleImputer(missing_values="", strategy="constant", fill_value="__m__")),
                            ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False))])
    pipe = Pipeline([("prep", ColumnTransformer([("num", numeric, num), ("cat", categorical, cat)])),
                     ("model", LogisticRegression(max_iter=500, random_state=seed))]).fit(X[num + cat], y)
    types = [(c, FloatTensorType([None, 1])) for c in num] + [(c, StringTensorType([None, 1])) for c in cat]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        onnx = to_onnx(pipe, initial_types=types, options={id(pipe.steps[-1][1]): {"zipmap": False}}).SerializeToString()
    sha = hashlib.sha256(onnx).hexdigest()
    inputs = [{"name": c, "kind": "numeric", "nullable": False, "categories": None, "min": 0.0, "max": 50.0}
              for c in num]
    inputs += [{"name": c, "kind": "categorical", "nullable": False,
                "categories": sorted(set(X[c])), "min": None, "max": None} for c in cat]
    serving = {"model_name": name, "run_id": f"run-{seed}", "task": "binary_classification", "onnx_file": "model.onnx",
               "onnx_sha256": sha, "inputs": inputs, "target": "churned", "threshold": 0.5, "positive_label": "1",
               "negative_label": "0", "limits": {"max_batch_rows": 10_000, "max_body_bytes": 10 << 20}}
    files = {"model.onnx": onnx, "serving.json": serving}
    if deployment is not None:
        files["monitoring.json"] = {"task": "binary_classification", "deployment": deployment}
    tag = save_model_package(files, name=name,
                             labels={"stage": "certified", "brief": brief},
                             metadata={"run_id": f"run-{seed}", "onnx_sha256": sha, "brief": brief})
    meta = get_model(tag).info.metadata
    return {"tag": tag, "sha": sha, "package_sha256": meta["package_sha256"], "inputs": inputs, "onnx": onnx,
            "pipeline": pipe, "brief": brief}


def register_first(pkg: dict) -> None:
    """What promote's register does for the first model of a brief."""
    d = {"sha256": pkg["sha"], "package_sha256": pkg["package_sha256"], "run_id": "r", "brief": pkg["brief"]}
    ledger.record("certified", pkg["tag"], reason="passed", from_stage=None, **d)
    ledger.record("released", pkg["tag"], reason="first model: no champion to compare", **d)
    ledger.set_production(pkg["tag"], sha256=pkg["sha"], run_id="r", brief=pkg["brief"],
                          package_sha256=pkg["package_sha256"])


def register_staged(pkg: dict) -> None:
    d = {"sha256": pkg["sha"], "package_sha256": pkg["package_sha256"], "run_id": "r", "brief": pkg["brief"]}
    ledger.record("certified", pkg["tag"], reason="passed", from_stage=None, **d)
    ledger.record("staged", pkg["tag"], reason="passed the champion/challenger gate", **d)


def split(n: int = 300, seed: int = 5):
    from workbench.registry.release import TestSplit

    X, y = frame(n, seed)
    return TestSplit(X=X, y=y, task="binary_classification", primary="roc_auc", threshold=0.5, source="toy test")


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bento"))
    monkeypatch.delenv("WORKBENCH_MODEL_TAG", raising=False)
    monkeypatch.delenv("WORKBENCH_LOG_DIR", raising=False)
    return tmp_path / "bento"


# ----------------------------------------------------------------------------------------------- ledger
def test_an_old_ledger_replays_to_stages_and_still_rolls_back(home):
    """Lines from before stages (action promote, no stage) count as releases; the pointer's tag is production."""
    path = ledger.ledger_path()
    path.parent.mkdir(parents=True)
    old = [{"at": "2026-01-01T00:00:00", "user": "u", "action": "promote", "tag": f"workbench-t:v{i}",
            "sha256": f"s{i}", "run_id": f"r{i}", "brief": "t"} for i in range(3)]
    path.write_text("".join(json.dumps(e) + "\n" for e in old))
    ledger.set_production("workbench-t:v2", sha256="s2", run_id="r2", brief="t")
    st = ledger.stages()
    assert st["workbench-t:v2"]["stage"] == "production"
    assert st["workbench-t:v0"]["stage"] == st["workbench-t:v1"]["stage"] == "retired"
    ledger.check_consistent()
    # a new-style release on top of the old history, then a rollback through both kinds of line
    ledger.record("certified", "workbench-t:v3", reason="passed", from_stage=None, brief="t")
    ledger.record("staged", "workbench-t:v3", reason="gate", brief="t")
    with pytest.raises(WorkbenchError, match="cannot move to shadow"):
        ledger.record("shadow", "workbench-t:v0", reason="x")  # retired -> shadow is not a transition
    ledger.record("retired", "workbench-t:v2", reason="replaced", by="alice")
    e = ledger.record("released", "workbench-t:v3", reason="approved", by="alice", sha256="s3", brief="t")
    ledger.set_production("workbench-t:v3", sha256="s3", run_id="r3", brief="t")
    assert (e["from_stage"], e["to_stage"], e["by"], e["reason"]) == ("staging", "production", "alice", "approved")
    assert ledger.stages()["workbench-t:v2"]["stage"] == "retired"
    ledger.check_consistent()

    class _Model:  # rollback looks the previous model up in the store
        info = type("I", (), {"metadata": {}})()

    with ledger.transition():
        back = ledger._rollback(reason="bad", get_model=lambda tag: _Model(), by="bob")
    assert back["tag"] == "workbench-t:v2" and back["from_tag"] == "workbench-t:v3" and back["by"] == "bob"
    st = ledger.stages()
    assert st["workbench-t:v2"]["stage"] == "production" and st["workbench-t:v3"]["stage"] == "staging"
    ledger.check_consistent()


def test_transition_lines_name_who_and_default_to_the_os_user(home):
    import getpass

    e = ledger.record("certified", "workbench-t:a", reason="passed", from_stage=None)
    assert e["by"] == getpass.getuser() and e["from_stage"] is None and e["to_stage"] == "certified"
    with pytest.raises(WorkbenchError, match="not a stage transition"):
        ledger.record("promote", "workbench-t:a", reason="x")
    with pytest.raises(WorkbenchError, match="cannot move to certified"):
        ledger.record("certified", "workbench-t:a", reason="again")


# ----------------------------------------------------------------------------------------------- compare
def test_compare_offline_on_the_test_split(home):
    from workbench.registry.release import compare

    champ, worse = build(seed=0), build(seed=2, worse=True)
    register_first(champ)
    register_staged(worse)
    rep = compare(champ["tag"], worse["tag"], split=split(), log_dir=home / "no-log")
    d = rep.to_dict()
    assert d["source"] == "toy test" and d["answered"] == {"champion": 300, "challenger": 300}
    assert d["n_shared"] == 300 and 0 <= d["agreement"] <= 1 and d["abs_delta"]["p99"] > 0
    assert d["metrics"]["champion"]["roc_auc"] > d["metrics"]["challenger"]["roc_auc"] + 0.1
    assert "offline" in d["notes"][0]
    assert "champion" in rep._html_body() and json.loads(rep.to_json())["champion"] == champ["tag"]
    same = compare(champ["tag"], champ["tag"], split=split(), log_dir=home / "no-log")
    assert same.agreement == 1.0 and same.abs_delta["max"] == 0.0


def test_compare_from_the_prediction_log_on_shared_request_ids(home, tmp_path):
    from workbench.monitoring.log import PredictionLog
    from workbench.registry.release import compare

    champ, chal = build(seed=0), build(seed=1, n=900)
    logs = tmp_path / "log"
    a, b = PredictionLog(champ["tag"], root=logs), PredictionLog(chal["tag"], root=logs)
    X, _ = frame(50, 9)
    for i in range(50):
        inputs = {c: [X[c].iloc[i]] for c in X.columns}
        p = float(champ["pipeline"].predict_proba(X.iloc[[i]])[0, 1])
        a.append(f"req-{i}", inputs, [p], ["1" if p > 0.5 else "0"])
        if i < 40:  # the challenger shadowed 40 of them
            q = p + (0.2 if i < 4 else 0.0)
            b.append(f"req-{i}", inputs, [q], ["1" if q > 0.5 else "0"])
    a.close()
    b.close()
    rep = compare(champ["tag"], chal["tag"], log_dir=logs)
    assert rep.source == "prediction log" and rep.answered == {"champion": 50, "challenger": 40}
    assert rep.n_shared == 40 and rep.abs_delta["max"] == pytest.approx(0.2)
    assert rep.abs_delta["p50"] == pytest.approx(0.0)
    assert rep.metrics is None and any("latency" in n for n in rep.notes)


def test_models_of_different_briefs_are_never_compared(home):
    from workbench.registry.release import compare

    a, b = build(seed=0), build(name="workbench-other", brief="other", seed=1)
    with pytest.raises(WorkbenchError, match="different briefs"):
        compare(a["tag"], b["tag"], split=split())


# ----------------------------------------------------------------------------------------------- release
# One module home for the release tests: a champion in production, the staged challenger the tests share, and two
# staged packages made to fail (one with a p99 limit no server meets, one altered after registration). Each release
# below starts (and stops) its own real `bentoml serve` of the staged package on 127.0.0.1, one worker.
@pytest.fixture(scope="module")
def stage(tmp_path_factory):
    base = tmp_path_factory.mktemp("release")
    saved = os.environ.get("WORKBENCH_WORKERS")
    os.environ["WORKBENCH_WORKERS"] = "1"  # the rehearsal server starts in ~2 s with one worker
    with isolated_workbench(base, log=True):
        champ, chal = build(seed=0), build(seed=1, n=900)
        tight = build(seed=3, deployment={"load_test_p99_ms": 0.001, "replay_requests": 50})
        broken = build(seed=4)
        register_first(champ)
        for pkg in (chal, tight, broken):
            register_staged(pkg)
        from workbench.registry.store import get_model

        (Path(get_model(broken["tag"]).path) / "serving.json").write_text("{}")  # altered after registration
        yield {"base": base, "champ": champ, "chal": chal, "tight": tight, "broken": broken,
               "children": {p.pid for p in psutil.Process().children(recursive=True)}}
    if saved is None:
        os.environ.pop("WORKBENCH_WORKERS", None)
    else:
        os.environ["WORKBENCH_WORKERS"] = saved


def _no_process_left(stage: dict, server: dict | None = None) -> None:
    """No child process of this test remains, and none of the rehearsal server's processes runs."""
    left = [p for p in psutil.Process().children(recursive=True) if p.pid not in stage["children"]]
    assert not left, [p.cmdline() for p in left]
    for pid in (server or {}).get("pids", []):
        with contextlib.suppress(psutil.NoSuchProcess):
            assert psutil.Process(pid).status() == psutil.STATUS_ZOMBIE, f"server process {pid} still runs"


def test_release_refusals_before_any_server_starts(stage, tmp_path):
    from workbench.config import Settings
    from workbench.errors import ParameterError
    from workbench.registry.release import release, releases_dir

    chal, champ = stage["chal"]["tag"], stage["champ"]["tag"]
    lines = len(ledger.read_ledger())
    for kwargs, match in [({"approve": "  "}, "needs an approval"),
                          ({"approve": "ok", "to": "canary"}, "needs a percent"),
                          ({"approve": "ok", "to": "canary", "percent": 101}, "needs a percent"),
                          ({"approve": "ok", "to": "everywhere"}, "unknown release target"),
                          ({"approve": "ok", "clients": 0}, "parameter '--clients'"),
                          ({"approve": "ok", "load_seconds": 0}, "parameter '--load-seconds'"),
                          ({"approve": "ok", "load_seconds": 601}, "parameter '--load-seconds'"),
                          ({"approve": "ok", "replay": 0}, "parameter '--replay'")]:
        with pytest.raises(ParameterError, match=match) as e:
            release(chal, split=split(), **kwargs)
        assert e.value.exit_code == 2
    with pytest.raises(WorkbenchError, match="only a staged model") as e:
        release(champ, approve="ok", split=split())
    assert e.value.exit_code == 1
    with pytest.raises(WorkbenchError, match="no BentoML service at"):
        release(chal, approve="ok", split=split(), cfg=Settings(root=tmp_path))
    assert len(ledger.read_ledger()) == lines and not releases_dir().exists()
    assert ledger.stage_of(chal) == "staging"
    _no_process_left(stage)


def test_a_staged_package_the_server_will_not_serve_is_refused(stage):
    from workbench.registry.release import ReleaseRefused, release
    from workbench.serving.pointer import production_pointer

    with pytest.raises(ReleaseRefused) as e:
        release(stage["broken"]["tag"], approve="ok", split=split(), load_seconds=1, clients=2)
    exc = e.value
    assert exc.exit_code == 3 and "integration" in exc.message and "nothing was moved" in exc.hint
    ev = exc.evidence
    assert ev.failed == ["integration", "load test"] and ev.load_test is None
    checks = {c["check"]: c["verdict"] for c in ev.checks()}
    assert checks == {"integration": "fail", "load test": "not run", "approval": "pass"}
    err = ev.integration.error
    assert "does not serve the staged model" in err and "the model is not being served" in err
    assert "server output" in err  # the tail of bentoml serve's output
    server = ev.integration.server
    assert len(server["pids"]) >= 2 and not Path(server["work_dir"]).exists()  # the arbiter and its worker
    saved = json.loads((exc.evidence_dir / "release.json").read_text())
    assert saved["decision"] == "no-go" and (exc.evidence_dir / "release.html").is_file()
    last = ledger.read_ledger()[-1]
    assert (last["action"], last["tag"], last["passed"]) == ("release_checks", stage["broken"]["tag"], False)
    assert production_pointer()["tag"] == stage["champ"]["tag"]
    assert ledger.stage_of(stage["broken"]["tag"]) == "staging"
    _no_process_left(stage, server)


def test_a_load_test_past_the_p99_limit_is_refused_after_a_passed_integration_test(stage):
    from workbench.registry.release import ReleaseRefused, release
    from workbench.serving.pointer import production_pointer

    tag = stage["tight"]["tag"]
    steps: list[str] = []
    with pytest.raises(ReleaseRefused, match=r"load test: .*p99 latency [0-9.]+ ms > 0.001 ms") as e:
        release(tag, approve="ok", split=split(), load_seconds=0.6, clients=2, on_step=steps.append)
    ev = e.value.evidence
    assert ev.failed == ["load test"]
    i = ev.integration  # replay_requests 50, from the package's deployment section: the test split's first 50 rows
    assert i.passed and (i.n, i.answered, i.requests) == (50, 50, 50) and "first 50 of 300" in i.source
    assert i.champion == stage["champ"]["tag"] and 0.8 < i.agreement <= 1 and i.abs_delta["max"] > 0
    lt = ev.load_test
    assert lt.requests > 0 and lt.non_2xx == 0 and lt.transport_errors == 0 and lt.clients == 2
    assert lt.latency_ms["p99"] > 0.001 and lt.p99_limit_ms == 0.001 and not lt.passed
    assert ev.deployment["load_test_p99_ms"] == 0.001 and ev.deployment["load_test_seconds"] == 0.6
    assert any(s.startswith("load test: 2 clients for 0.6 s") for s in steps)
    assert production_pointer()["tag"] == stage["champ"]["tag"] and ledger.stage_of(tag) == "staging"
    assert ledger.read_ledger()[-1]["failed"] == ["load test"]
    _no_process_left(stage, ev.integration.server)


def test_ctrl_c_during_the_load_test_stops_every_server_process_and_moves_nothing(stage):
    """A real SIGINT (what Ctrl-C sends) reaches the release while its load test runs: the release stops with
    KeyboardInterrupt, the server's whole tree is gone, its temporary folder removed, nothing recorded or moved."""
    import re
    import signal

    from workbench.registry.release import release
    from workbench.serving.pointer import production_pointer

    seen: dict = {"pids": set(), "ticks": 0}

    def on_step(msg: str) -> None:
        m = re.search(r"\(pid (\d+)\)", msg)
        if m:
            seen["pids"].add(int(m.group(1)))
        if msg.startswith("load test ") and "answered" in msg:  # the progress line, about once a second
            seen["ticks"] += 1
            arbiter = psutil.Process(max(seen["pids"]))
            seen["pids"].update(c.pid for c in arbiter.children(recursive=True))
            seen["log"] = Path(arbiter.environ()["WORKBENCH_LOG_DIR"])  # the rehearsal's own temporary folder
            os.kill(os.getpid(), signal.SIGINT)

    lines = len(ledger.read_ledger())
    with pytest.raises(KeyboardInterrupt):
        release(stage["chal"]["tag"], approve="ok", split=split(), replay=50, load_seconds=30, clients=2,
                on_step=on_step)
    assert seen["ticks"] == 1 and len(seen["pids"]) >= 2  # the arbiter and its worker
    _no_process_left(stage, {"pids": sorted(seen["pids"])})
    assert seen["log"].parent.name.startswith("workbench-rehearsal-") and not seen["log"].parent.exists()
    assert len(ledger.read_ledger()) == lines and ledger.stage_of(stage["chal"]["tag"]) == "staging"
    assert production_pointer()["tag"] == stage["champ"]["tag"]


@pytest.fixture(scope="module")
def champion_log(stage) -> Path:
    """Production traffic of the champion: single-record requests and three 4-row batches, answered in process by
    the verified champion and logged to a folder of their own (the champion's prediction log)."""
    from workbench.monitoring.log import PredictionLog
    from workbench.registry.release import load_verified

    root = stage["base"] / "production-log"
    pc = load_verified(stage["champ"]["tag"])
    pc.log = PredictionLog(pc.tag, root=root)
    X, _ = frame(150, 21)
    records = [{"size": float(r["size"]), "weight": float(r["weight"]), "colour": r["colour"],
                "region": r["region"]} for r in X.to_dict(orient="records")]
    i = 0
    while i < len(records):
        n = 4 if i in (60, 130, 146) else 1
        body = records[i] if n == 1 else records[i:i + n]
        assert pc.handle(json.dumps(body).encode()).status == 200
        i += n
    pc.log.close()
    return root


def test_release_replays_the_champions_log_then_moves_production(stage, champion_log):
    from workbench.monitoring.compact import read_columns
    from workbench.registry.release import release
    from workbench.serving.pointer import production_pointer

    champ, chal = stage["champ"], stage["chal"]
    logs = champion_log
    logged = read_columns(logs, champ["tag"]).sort(["ts", "request_id", "row"]).tail(100)
    r = release(chal["tag"], approve="beats the champion on May data", by="carol", split=split(), log_dir=logs,
                replay=100, load_seconds=1.0, clients=4)
    i, lt = r.integration, r.load_test
    assert i.passed and i.source.startswith(f"prediction log of {champ['tag']}: the last 100 of 150")
    assert (i.n, i.answered, i.failures) == (100, 100, 0)
    assert i.requests == logged.get_column("request_id").n_unique() < 100  # each logged batch replayed whole
    # the figures against an independent computation: the challenger's pipeline on the logged inputs
    X = logged.select(NUMERIC + CATEGORICAL).to_pandas()
    p_chal = chal["pipeline"].predict_proba(X)[:, 1]
    d = np.abs(p_chal - logged.get_column("probability").to_numpy())
    assert i.abs_delta["max"] == pytest.approx(d.max(), abs=1e-5)
    labels = np.where(p_chal > 0.5, "1", "0")
    clear = np.abs(p_chal - 0.5) > 1e-4
    agree = (labels == np.asarray(logged.get_column("label").to_list()))[clear].mean()
    assert i.agreement == pytest.approx(agree, abs=0.02)
    assert lt.passed and lt.requests > 0 and lt.non_2xx == lt.transport_errors == 0 and lt.clients == 4
    assert lt.rps > 0 and 0 < lt.latency_ms["p50"] <= lt.latency_ms["p99"] <= lt.latency_ms["max"]
    # moved: the pointer, the ledger (the attempt's checks, the retired champion, the release with its summary)
    assert production_pointer()["tag"] == chal["tag"]
    assert production_pointer()["package_sha256"] == chal["package_sha256"]
    checks, retired, released = ledger.read_ledger()[-3:]
    assert (checks["action"], checks["passed"], checks["failed"]) == ("release_checks", True, [])
    assert (retired["action"], retired["tag"], retired["to_stage"]) == ("retired", champ["tag"], "retired")
    assert released["reason"] == "beats the champion on May data" and released["by"] == "carol"
    assert released["integration"]["answered"] == 100 and released["load_test"]["passed"] is True
    assert Path(released["evidence"]) == r.evidence_dir
    saved = json.loads((r.evidence_dir / "release.json").read_text())
    assert saved["decision"] == "go" and [c["verdict"] for c in saved["checks"]] == ["pass"] * 3
    assert saved["load_test"]["requests"] == lt.requests and "go" in (r.evidence_dir / "release.html").read_text()
    ledger.check_consistent()
    # rehearsal traffic never entered a production log; its temporary folder is gone; every process stopped
    for root in (logs, Path(os.environ["WORKBENCH_LOG_DIR"])):
        assert not list(root.glob(f"{chal['tag'].split(':')[0]}_{chal['tag'].split(':')[1]}*"))
    assert i.server["work_dir"].startswith(tempfile.gettempdir()) and not Path(i.server["work_dir"]).exists()
    _no_process_left(stage, i.server)
    # a rollback returns the champion; the challenger goes back to staging (the next test releases it again)
    back = ledger.rollback(reason="regret")
    assert back["tag"] == champ["tag"] and ledger.stage_of(chal["tag"]) == "staging"


def test_cli_release_validates_its_options_and_releases_to_shadow_with_the_table(stage, champion_log):
    from typer.testing import CliRunner

    from workbench import cli
    from workbench.serving.pointer import production_pointer

    chal = stage["chal"]["tag"]
    runner = CliRunner()
    for bad in (["--clients", "0"], ["--load-seconds", "-1"], ["--replay", "0"], ["--load-seconds", "abc"]):
        out = runner.invoke(cli.app, ["release", chal, "--approve", "ok", *bad], env={"COLUMNS": "200"})
        assert out.exit_code == 2, out.output
        assert bad[0] in out.output
    assert ledger.stage_of(chal) == "staging"
    out = runner.invoke(cli.app, ["release", chal, "--to", "shadow", "--approve", "watch it on live traffic",
                                  "--load-seconds", "0.5", "--clients", "2", "--replay", "40", "--log-dir",
                                  str(champion_log)],
                        env={"COLUMNS": "200"})
    assert out.exit_code == 0, out.output
    text = out.output
    assert "release checks" in text and "shadow" in text and "evidence:" in text
    rows = {check: [ln for ln in text.splitlines() if ln.strip().startswith(check)] for check in
            ("integration", "load test", "approval")}
    assert all(len(v) == 1 and " pass " in v[0] for v in rows.values()), text
    assert "40/40 records answered 200" in text and "req/s" in text and "> load test" in text
    ptr = production_pointer()
    assert ptr["tag"] == stage["champ"]["tag"] and ptr["challenger"]["tag"] == chal
    assert ptr["challenger"]["mode"] == "shadow" and ledger.stage_of(chal) == "shadow"
    # `workbench rollback` undoes the release in progress: the challenger out, production unchanged
    out = runner.invoke(cli.app, ["rollback"], env={"COLUMNS": "200"})
    assert out.exit_code == 2 and "--reason" in out.output, out.output
    out = runner.invoke(cli.app, ["rollback", "--reason", "shadow disagrees too often"], env={"COLUMNS": "200"})
    assert out.exit_code == 0 and "rolled back the challenger" in out.output, out.output
    ptr = production_pointer()
    assert ptr["tag"] == stage["champ"]["tag"] and "challenger" not in ptr and ledger.stage_of(chal) == "staging"
    assert ledger.read_ledger()[-1]["reason"] == "shadow disagrees too often"
    _no_process_left(stage)


# ----------------------------------------------------------------------------------------------- the HTTP client
def test_the_rehearsal_client_reads_chunked_and_closing_answers_and_counts_transport_errors():
    """The minimal keep-alive client against a canned HTTP/1.1 server (Content-Length, chunked, no length then
    close); a load test against a port nobody listens on counts transport errors and fails its gate."""
    import socketserver
    import threading

    from workbench.registry.rehearsal import Server, free_port, load_test, post_all

    answers = [b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
               b"HTTP/1.1 422 Unprocessable\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nbad\r\n4\r\n!!!!\r\n0\r\n\r\n",
               b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nbye"]

    class Handler(socketserver.StreamRequestHandler):
        def handle(self) -> None:
            for answer in answers:
                head = b""
                while not head.endswith(b"\r\n\r\n"):
                    head += self.rfile.readline()
                length = int(next(ln.split(b":")[1] for ln in head.split(b"\r\n") if ln.lower().startswith(b"content-length")))
                assert self.rfile.read(length) == b'{"x": 1}'
                self.wfile.write(answer)
                self.wfile.flush()

    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
        thread.start()
        try:
            server = Server(tag="t", host="127.0.0.1", port=httpd.server_address[1], pid=0)
            got = post_all(server, [b'{"x": 1}'] * 3, concurrency=1)
        finally:
            httpd.shutdown()
    assert got == [(200, b"ok"), (422, b"bad!!!!"), (200, b"bye")]
    nobody = Server(tag="t", host="127.0.0.1", port=free_port(), pid=0)
    assert post_all(nobody, [b"{}"])[0][0] is None
    rep = load_test(nobody, [b"{}"], clients=2, seconds=0.3, max_requests=1000, p99_ms=250, max_error_rate=0)
    assert rep.requests == rep.transport_errors > 0 and rep.answered == 0 and rep.errors.get("ConnectionRefusedError")
    assert not rep.passed and any("error share 100.00%" in f for f in rep.failures())
