"""Promotion from primary evidence only: the run's evidence record, forged reports, forged predictions, a pickle
payload in place of the model, skops' trusted types, the package manifest. Two real runs (papermill), shared."""

from __future__ import annotations

import hashlib
import json
import pickle
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from testkit import ROOT, isolated_workbench, make_churn, write_brief
from workbench.config import Settings

pytestmark = [pytest.mark.notebook, pytest.mark.timeout(900)]

FAST = {"cv_folds": "3", "shap_sample": "50", "bootstrap_samples": "50", "candidates": "logreg"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with isolated_workbench(tmp_path_factory.mktemp("evidence")) as base:
        yield base


def _run(base: Path, name: str, df: pl.DataFrame, **brief):
    from workbench.runs import execute_run

    (base / name).mkdir()
    df.write_csv(base / name / "data.csv")
    b = write_brief(base / name / "brief.yaml", "data.csv", name=name, **brief)
    r = execute_run(brief_path=b, params=FAST, cfg=Settings(root=ROOT))
    assert r.status == "succeeded", r.error
    return r


@pytest.fixture(scope="module")
def clean_run(env):
    """A run whose truth passes every gate."""
    return _run(env, "churn-clean", make_churn(2000, seed=1),
                fairness={"min_slice_size": 30, "thresholds": {"demographic_parity_difference": 0.3}})


@pytest.fixture(scope="module")
def biased_run(env):
    """A run whose truth fails the fairness gate (a planted bias) and the success threshold."""
    rng = np.random.default_rng(3)
    df = make_churn(2000, seed=3)
    south = (df["Region"] == "south").to_numpy()
    churn = np.where(south, rng.random(len(df)) < 0.03, rng.random(len(df)) < 0.45).astype(int)
    return _run(env, "churn-biased", df.with_columns(pl.Series("Churned", churn)),
                success={"metric": "pr_auc", "threshold": 0.97},
                fairness={"min_slice_size": 30, "thresholds": {"demographic_parity_difference": 0.1}})


def _copy(run, tmp_path: Path) -> Path:
    copy = tmp_path / "runs" / run.run_id
    shutil.copytree(run.run_dir, copy)
    return copy


def _rehash(copy: Path, rel: str) -> None:
    """What a forger who knows the layout does: rewrite the file's sha256 in the manifest too."""
    m = json.loads((copy / "manifest.json").read_text())
    sha = hashlib.sha256((copy / rel).read_bytes()).hexdigest()
    m["evidence"][rel] = sha
    for art in (m.get("artifacts") or {}).values():
        if art.get("path") == rel:
            art["sha256"] = sha
    (copy / "manifest.json").write_text(json.dumps(m, indent=2))


def _promote(path: Path):
    from workbench.registry.promote import promote

    return promote(str(path), cfg=Settings(root=ROOT), latency_calls=20)


def _forge_fairness(copy: Path) -> None:
    p = copy / "reports" / "fairness.json"
    f = json.loads(p.read_text())
    for g in f["gaps"]:
        g.update(value=0.001, ci_low=0.0, ci_high=0.002, verdict="within threshold", threshold=0.5)
    p.write_text(json.dumps(f))


# ----------------------------------------------------------------------------------------------- the record
def test_run_records_evidence_and_saves_models_with_skops(clean_run):
    m = clean_run.manifest
    ev = m["evidence"]
    on_disk = {p.relative_to(clean_run.run_dir).as_posix() for pat in ("reports/*.json", "artifacts/*")
               for p in clean_run.run_dir.glob(pat) if not p.name.startswith(".")}
    assert on_disk | {"brief.yaml", "results.json"} == set(ev)
    for rel, sha in ev.items():
        assert hashlib.sha256((clean_run.run_dir / rel).read_bytes()).hexdigest() == sha, rel
    assert "artifacts/model_logreg.skops" in ev and "artifacts/predictions.parquet" in ev
    assert not list(clean_run.run_dir.rglob("*.pkl"))
    assert m["artifacts"]["model_logreg"]["format"] == "skops"


def test_clean_run_promotes_and_the_package_is_verified_whole(clean_run, env):
    from workbench.artifacts import ModelPackage
    from workbench.registry import ledger
    from workbench.registry.store import get_model
    from workbench.serving.pointer import production_pointer

    result = _promote(clean_run.run_dir)
    assert result.promoted, [(g.name, g.detail) for g in result.gates.failed]
    names = [g.name for g in result.gates.gates]
    assert {"integrity: evidence", "evidence: held-out predictions", "evidence: predictions are the model's",
            "kill criteria", "leakage"} <= set(names)
    assert next(g for g in result.gates.gates if g.name == "leakage").detail.startswith("recomputed")
    model = get_model(result.tag)
    pkg = Path(model.path)
    listing = json.loads((pkg / "package.json").read_text())
    assert listing["format"] == 1
    assert set(listing["files"]) == {p.relative_to(pkg).as_posix() for p in pkg.rglob("*") if p.is_file()} - {
        "package.json", "model.yaml"}
    sha = hashlib.sha256((pkg / "package.json").read_bytes()).hexdigest()
    assert model.info.metadata["package_sha256"] == sha == production_pointer()["package_sha256"]
    ModelPackage(pkg).verify(sha)
    ledger.check_consistent()
    assert ledger.read_ledger()[-1]["package_sha256"] == sha


def test_package_verify_refuses_an_edited_or_added_file(clean_run, env, tmp_path):
    from workbench.artifacts import ModelPackage
    from workbench.errors import WorkbenchError
    from workbench.registry.store import list_models

    src = Path(list_models()[0].path)
    copy = tmp_path / "pkg"
    shutil.copytree(src, copy)
    serving = json.loads((copy / "serving.json").read_text())
    serving["threshold"] = 0.01
    (copy / "serving.json").write_text(json.dumps(serving))
    with pytest.raises(WorkbenchError, match="serving.json"):
        ModelPackage(copy).verify()
    shutil.rmtree(copy)
    shutil.copytree(src, copy)
    (copy / "extra.json").write_text("{}")
    with pytest.raises(WorkbenchError, match="extra.json .*not listed"):
        ModelPackage(copy).verify()
    with pytest.raises(WorkbenchError, match="registry recorded"):
        ModelPackage(src).verify("0" * 64)


# ----------------------------------------------------------------------------------------------- forgeries
def test_truth_is_refused(biased_run):
    result = _promote(biased_run.run_dir)
    failed = [g.name for g in result.gates.failed]
    assert not result.promoted
    assert "fairness: demographic_parity_difference by region" in failed and "success threshold (pr_auc)" in failed
    assert "integrity: evidence" not in failed


def test_forged_fairness_report_with_rewritten_hash_is_still_refused(biased_run, tmp_path):
    copy = _copy(biased_run, tmp_path)
    _forge_fairness(copy)
    _rehash(copy, "reports/fairness.json")
    m = json.loads((copy / "manifest.json").read_text())  # and the manifest's own story
    m["gates"]["kill_criteria"] = {"passed": True, "value": [], "threshold": "none triggered", "message": "continue"}
    (copy / "manifest.json").write_text(json.dumps(m, indent=2))
    result = _promote(copy)
    failed = {g.name: g for g in result.gates.failed}
    assert not result.promoted
    assert "integrity: evidence" not in failed  # the forger rewrote the hash: integrity holds, the truth does not
    gate = failed["fairness: demographic_parity_difference by region"]
    assert gate.value > 0.1 and gate.threshold == "<= 0.1"  # the brief's threshold, recomputed bound


def test_forged_leaderboard_with_rewritten_hash_is_still_refused(biased_run, tmp_path):
    copy = _copy(biased_run, tmp_path)
    p = copy / "reports" / "leaderboard.json"
    lb = json.loads(p.read_text())
    sel = lb["selected"]
    lb["models"][sel]["test"]["metrics"]["pr_auc"] = 0.999
    lb["comparisons"][sel].update(primary_delta=0.5, beats_baseline=True)
    p.write_text(json.dumps(lb))
    _rehash(copy, "reports/leaderboard.json")
    _forge_fairness(copy)
    _rehash(copy, "reports/fairness.json")
    result = _promote(copy)
    failed = {g.name: g for g in result.gates.failed}
    assert not result.promoted and "success threshold (pr_auc)" in failed
    assert failed["success threshold (pr_auc)"].value < 0.97


def test_edited_report_without_the_hash_fails_integrity_naming_the_file(biased_run, tmp_path):
    copy = _copy(biased_run, tmp_path)
    _forge_fairness(copy)
    result = _promote(copy)
    gate = {g.name: g for g in result.gates.failed}["integrity: evidence"]
    assert "reports/fairness.json" in gate.value and "edited" in gate.detail
    assert not result.promoted


def test_forged_predictions_are_not_the_models(clean_run, tmp_path):
    copy = _copy(clean_run, tmp_path)
    p = copy / "artifacts" / "predictions.parquet"
    pred = pl.read_parquet(p)
    pred = pred.with_columns(pl.col("y_true").cast(pl.Float64).alias("proba_logreg"))  # a perfect model
    pred.write_parquet(p)
    _rehash(copy, "artifacts/predictions.parquet")
    result = _promote(copy)
    failed = [g.name for g in result.gates.failed]
    assert not result.promoted and "evidence: predictions are the model's" in failed


def test_pickle_payload_as_the_model_never_runs(clean_run, tmp_path):
    from workbench.artifacts import RunFolder, UntrustedModelError

    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.write_text, (marker, "code ran"))

    copy = _copy(clean_run, tmp_path)
    rel = "artifacts/model_logreg.skops"
    (copy / rel).write_bytes(pickle.dumps(Payload()))
    _rehash(copy, rel)
    result = _promote(copy)
    failed = [g.name for g in result.gates.failed]
    assert not result.promoted and "model artifact loads" in failed and "ONNX export" in failed
    assert "integrity: evidence" not in failed and not marker.exists()
    with pytest.raises(UntrustedModelError, match="not a skops model file"):
        RunFolder(copy).load_model("logreg")
    assert not marker.exists()


def test_run_without_evidence_is_refused(clean_run, tmp_path):
    copy = _copy(clean_run, tmp_path)
    m = json.loads((copy / "manifest.json").read_text())
    del m["evidence"]
    (copy / "manifest.json").write_text(json.dumps(m))
    result = _promote(copy)
    assert not result.promoted and "integrity: evidence" in [g.name for g in result.gates.failed]


# ----------------------------------------------------------------------------------------------- skops types
def _families(tmp: Path):
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.linear_model import LogisticRegression

    from workbench.brief import load_brief
    from workbench.data import infer_contract, load_dataset
    from workbench.modeling import candidates_for, make_candidate, to_model_frame

    make_churn(300, seed=5).write_csv(tmp / "x.csv")
    brief = load_brief(write_brief(tmp / "x.yaml", "x.csv"))
    df = load_dataset(brief).train
    contract = infer_contract(df, brief)
    X = to_model_frame(df, contract)
    rng = np.random.default_rng(0)
    targets = {"binary_classification": df["churned"].to_numpy(),
               "multiclass_classification": rng.integers(0, 3, df.height),
               "regression": rng.normal(size=df.height)}
    out = {}
    for task, y in targets.items():
        for name in candidates_for(task):
            model = make_candidate(name, contract, seed=0, task=task)
            out[f"{task}:{name}"] = (model.fit(X, y), X)
    cal = make_candidate("logreg", contract, seed=0)
    cal.steps[-1] = ("model", CalibratedClassifierCV(LogisticRegression(max_iter=200), cv=3, method="sigmoid"))
    out["calibrated"] = (cal.fit(X, targets["binary_classification"]), X)
    return out


def test_every_candidate_family_round_trips_through_skops(tmp_path):
    from workbench.artifacts import dump_model, load_model_bytes

    families = _families(tmp_path)
    assert any(k.startswith("regression:") for k in families)
    for key, (model, X) in families.items():
        back = load_model_bytes(dump_model(model), source=key)
        method = "predict_proba" if hasattr(model, "predict_proba") else "predict"
        np.testing.assert_allclose(getattr(back, method)(X), getattr(model, method)(X), err_msg=key)


class _Unlisted:
    def __init__(self):
        self.x = 1


def test_an_unlisted_type_is_refused_with_its_name():
    import skops.io as sio

    from workbench.artifacts import TRUSTED_TYPES, UntrustedModelError, load_model_bytes, register_trusted_types

    blob = sio.dumps({"model": _Unlisted()})
    name = f"{__name__}._Unlisted"
    with pytest.raises(UntrustedModelError, match=name.replace(".", r"\.")):
        load_model_bytes(blob)
    register_trusted_types(name)
    try:
        assert load_model_bytes(blob)["model"].x == 1
    finally:
        TRUSTED_TYPES.discard(name)


def test_a_calibrated_model_with_its_cv_splitter_round_trips_through_skops():
    # CalibratedClassifierCV keeps its ``cv`` (a StratifiedKFold) as a parameter: a calibrated model chosen by the
    # Prototype phase must save and load like any candidate.
    import numpy as np
    import pandas as pd
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.model_selection import StratifiedKFold

    from workbench.artifacts import dump_model, load_model_bytes
    from workbench.modeling import fit_model

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=400), "c": rng.choice(["x", "y", ""], 400).astype(object)})
    y = (X["a"] + rng.normal(size=400) > 0).astype(int).to_numpy()
    base = fit_model("hgb", X, y, seed=0).model
    cal = CalibratedClassifierCV(base, method="sigmoid", cv=StratifiedKFold(3, shuffle=True, random_state=0))
    cal.fit(X, y)
    back = load_model_bytes(dump_model(cal), source="test")
    np.testing.assert_allclose(back.predict_proba(X), cal.predict_proba(X))
