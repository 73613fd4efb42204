"""Regression and multiclass end to end, on the bundled briefs: papermill run (both notebooks), promotion (ONNX
export + the task's parity policy + registration), the served answers equal to the notebook pipeline row for row
(in-process Predictor, the code `bentoml serve` runs), drift and feedback on logged answers."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from testkit import ROOT, isolated_workbench
from workbench.config import Settings
from workbench.runs import execute_run

pytestmark = [pytest.mark.notebook, pytest.mark.timeout(900)]

QUICK = {"cv_folds": "3", "shap_sample": "100", "bootstrap_samples": "50"}
# Wage fits the linear model and HGB with default parameters; penguins (344 rows) also runs the LightGBM/XGBoost
# search through the notebook, on a small trial budget.
TASK_PARAMS = {"regression": {"candidates": "ridge,hgb"},
               "multiclass_classification": {"search_trials": "3", "search_timeout": "20"}}
BRIEFS = {"regression": ROOT / "briefs" / "wage.yaml", "multiclass_classification": ROOT / "briefs" / "penguins.yaml"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with isolated_workbench(tmp_path_factory.mktemp("tasks"), log=True) as base:
        yield base


@pytest.fixture(scope="module", params=list(BRIEFS))
def promoted(request, env):
    from workbench.registry.promote import promote

    task = request.param
    r = execute_run(brief_path=BRIEFS[task], params={**QUICK, **TASK_PARAMS[task]}, cfg=Settings(root=ROOT))
    assert r.status == "succeeded", r.error
    result = promote(r.run_id, cfg=Settings(root=ROOT), latency_calls=100)
    assert result.promoted, [(g.name, g.detail) for g in result.gates.failed]
    return task, r, result


def test_run_reports_the_tasks_own_metrics(promoted):
    task, r, _ = promoted
    lb = json.loads((r.run_dir / "reports" / "leaderboard.json").read_text())
    assert lb["task"] == task
    if task == "regression":
        assert lb["primary"] == "mae" and {"median", "mean", "rule", "ridge", "hgb"} <= set(lb["models"])
        best = lb["models"][lb["best_baseline"]]["test"]["metrics"]["mae"]
        assert lb["models"][lb["selected"]]["test"]["metrics"]["mae"] < best  # lower is better
    else:
        assert lb["primary"] == "macro_f1" and lb["classes"] == ["Adelie", "Chinstrap", "Gentoo"]
        assert {"majority", "rule", "logreg", "hgb"} <= set(lb["models"])
    frozen = r.run_dir / "brief.yaml"
    m = json.loads((r.run_dir / "manifest.json").read_text())
    import hashlib

    assert m["brief"]["frozen"]["sha256"] == hashlib.sha256(frozen.read_bytes()).hexdigest()
    for nb in m["parameters"].values():
        assert nb["brief_path"] == str(frozen)


def test_parity_policy_of_the_task(promoted):
    task, _, result = promoted
    cert = result.parity
    assert cert["passed"] and cert["task"] == task
    if task == "regression":
        assert cert["target_std"] > 0 and cert["tolerance"] == pytest.approx(1e-4 * cert["target_std"])
    else:
        assert cert["label_agreement"] == 1.0 and len(cert["classes"]) == 3


def _pipeline_and_frames(r):
    from workbench.artifacts import RunFolder
    from workbench.data import load_dataset
    from workbench.experiments import model_frames

    run = RunFolder(r.run_dir)
    m = run.manifest()
    sel = m["results"]["prototype"]["selected"]
    model = run.load_model(sel, m)
    brief = run.brief(m)
    data = load_dataset(brief)
    frames = model_frames(data, brief, run.contract())
    return brief, model, frames, data


def test_served_answers_equal_the_pipeline_row_for_row(promoted):
    from workbench.registry.store import get_model
    from workbench.serving.predictor import Predictor

    task, r, result = promoted
    brief, model, frames, data = _pipeline_and_frames(r)
    stored = get_model(result.tag)
    pred = Predictor.load(stored.path, tag=result.tag)
    X = frames.X_test
    records = [{c: (None if (isinstance(v, float) and np.isnan(v)) or v == "" else v) for c, v in row.items()}
               for row in X.to_dict(orient="records")]
    answer = pred.predict(records)["predictions"]
    assert len(answer) == len(X)
    if task == "regression":
        served = np.array([a["prediction"] for a in answer])
        np.testing.assert_allclose(served, model.predict(X), atol=1e-3 * frames.target_std)
    else:
        proba = model.predict_proba(X)
        served = np.array([[a["probabilities"][c] for c in frames.classes] for a in answer])
        np.testing.assert_allclose(served.sum(axis=1), 1.0, atol=1e-6)
        np.testing.assert_allclose(served, proba, atol=1e-4)
        assert [a["label"] for a in answer] == [frames.classes[k] for k in np.argmax(proba, axis=1)]


def test_drift_and_feedback_on_logged_answers(promoted, env):
    from workbench.feedback import feedback_report, join_labels
    from workbench.monitoring.drift import drift_report
    from workbench.monitoring.log import PredictionLog, read_log
    from workbench.registry.store import get_model
    from workbench.serving.predictor import Predictor

    task, r, result = promoted
    brief, model, frames, data = _pipeline_and_frames(r)
    stored = get_model(result.tag)
    pred = Predictor.load(stored.path, tag=result.tag)
    root = Path(os.environ["WORKBENCH_LOG_DIR"]) / task
    pred.log = PredictionLog(result.tag, root=root)
    test = data.test.filter(pl.col(brief.target.column).is_not_null())
    feats = [c for c in frames.X_test.columns]
    ids = []
    for row in test.select(feats).iter_rows(named=True):
        ids.append(pred.predict(row)["request_id"])
    pred.log.close()
    log = read_log(root, model_version=result.tag)
    assert log.height == len(ids)
    profile = json.loads((Path(stored.path) / "reference_profile.json").read_text())
    mon = json.loads((Path(stored.path) / "monitoring.json").read_text())
    report = drift_report(log, profile, psi_warning=mon["psi_warning"], psi_critical=mon["psi_critical"])
    assert report.prediction is not None
    labels = pl.DataFrame({"request_id": ids, brief.target.column: test.get_column(brief.target.column)})
    joined = join_labels(log, labels, label_column=brief.target.column)
    fb = feedback_report(joined, mon)
    assert fb.primary == mon["primary_metric"]
    assert fb.live_value == pytest.approx(fb.certified_value, rel=0.05, abs=0.05)  # same rows, same model


def test_an_altered_model_artifact_is_never_loaded(promoted, tmp_path):
    import shutil

    from workbench.artifacts import RunFolder
    from workbench.errors import RunError

    _, r, _ = promoted
    copy = tmp_path / r.run_dir.name
    shutil.copytree(r.run_dir, copy)
    run = RunFolder(copy)
    m = run.manifest()
    sel = m["results"]["prototype"]["selected"]
    art = copy / m["artifacts"][f"model_{sel}"]["path"]
    art.write_bytes(art.read_bytes() + b"x")
    with pytest.raises(RunError, match="sha256"):
        run.load_model(sel, m)
    (copy / "brief.yaml").write_text((copy / "brief.yaml").read_text() + "\n# edited\n")
    with pytest.raises(RunError, match="frozen brief was edited"):
        run.brief(m)
