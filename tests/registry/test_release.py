"""Stages, the ledger's replay (old and new lines), release with an approval and an integration check, compare.

Packages are built cheaply: a logistic regression on synthetic rows, converted with skl2onnx and saved to a
throwaway BentoML home (no notebook run). :func:`build` is shared with test_champion.py.
"""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pandas as pd
import pytest

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
          drop: tuple[str, ...] = (), n: int = 800) -> dict:
    """Fit, convert and register a binary package (not touching the ledger or the pointer)."""
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
    tag = save_model_package({"model.onnx": onnx, "serving.json": serving}, name=name,
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


# ----------------------------------------------------------------------------------------------- release
def test_release_needs_an_approval_and_a_staged_model_then_moves_production(home):
    from workbench.registry.release import models_overview, release
    from workbench.serving.pointer import production_pointer

    champ, chal = build(seed=0), build(seed=1, n=900)
    register_first(champ)
    register_staged(chal)
    assert ledger.stage_of(chal["tag"]) == "staging"
    with pytest.raises(WorkbenchError, match="needs an approval"):
        release(chal["tag"], approve="  ", split=split())
    with pytest.raises(WorkbenchError, match="needs a percent"):
        release(chal["tag"], to="canary", approve="ok", split=split())
    # shadow beside the champion: the pointer names the challenger, the champion stays; then back to staging
    sh = release(chal["tag"], to="shadow", approve="watch it on live traffic", split=split())
    assert sh.to_stage == "shadow" and ledger.stage_of(chal["tag"]) == "shadow"
    ptr = production_pointer()
    assert ptr["tag"] == champ["tag"] and ptr["challenger"] == {"tag": chal["tag"], "mode": "shadow",
                                                                 "percent": None,
                                                                 "package_sha256": chal["package_sha256"]}
    c = release(chal["tag"], to="canary", percent=25, approve="shadow looked fine", split=split())
    assert c.to_stage == "canary" and production_pointer()["challenger"]["percent"] == 25
    assert ledger.clear_challenger(chal["tag"], reason="back to staging") is not None
    assert "challenger" not in production_pointer() and ledger.stage_of(chal["tag"]) == "staging"
    assert ledger.clear_challenger(chal["tag"], reason="again") is None  # the pointer no longer names it
    with pytest.raises(WorkbenchError, match="only a staged model"):
        release(champ["tag"], approve="ok", split=split())
    assert production_pointer()["tag"] == champ["tag"]
    r = release(chal["tag"], approve="beats the champion on May data", by="carol", split=split())
    assert r.champion == champ["tag"] and r.integration.passed and r.integration.n == 300
    assert r.integration.agreement is not None and r.integration.agreement > 0.8
    assert r.integration.abs_delta["max"] is not None
    assert production_pointer()["tag"] == chal["tag"]
    assert production_pointer()["package_sha256"] == chal["package_sha256"]
    lines = ledger.read_ledger()
    retired, released = lines[-2], lines[-1]
    assert (retired["action"], retired["tag"], retired["from_stage"], retired["to_stage"]) == \
        ("retired", champ["tag"], "production", "retired")
    assert released["reason"] == "beats the champion on May data" and released["by"] == "carol"
    assert released["integration"]["answered"] == 300
    ledger.check_consistent()
    over = models_overview()
    stages = {m["tag"]: m["stage"] for m in over["models"]}
    assert stages == {champ["tag"]: "retired", chal["tag"]: "production"}
    assert over["ledger"][-1]["to_stage"] == "production" and over["ledger"][-1]["by"] == "carol"
    # a rollback returns the champion; the challenger goes back to staging
    back = ledger.rollback(reason="regret")
    assert back["tag"] == champ["tag"] and ledger.stage_of(chal["tag"]) == "staging"
    ledger.check_consistent()


def test_release_refuses_when_the_staged_package_does_not_verify(home):
    from pathlib import Path

    from workbench.registry.release import release
    from workbench.registry.store import get_model

    champ, chal = build(seed=0), build(seed=1)
    register_first(champ)
    register_staged(chal)
    (Path(get_model(chal["tag"]).path) / "serving.json").write_text("{}")  # altered after registration
    with pytest.raises(WorkbenchError):
        release(chal["tag"], approve="ok", split=split())
    from workbench.serving.pointer import production_pointer

    assert production_pointer()["tag"] == champ["tag"] and ledger.stage_of(chal["tag"]) == "staging"


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
