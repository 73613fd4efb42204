"""What the stakeholder app, the run report and the model card show for a regression and a multiclass run: each
task's own fields and metrics (real runs, promoted through the real gates; see ``task_run`` in conftest)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from workbench import app_data as ad
from workbench.errors import DataError

from .conftest import APP, ROOT

pytestmark = [pytest.mark.notebook, pytest.mark.timeout(900)]


@pytest.fixture
def loaded(task_env):
    prod = ad.production_package()
    assert prod["status"] == "ok" and prod["tag"] == task_env.tag
    return task_env, prod, ad.load_run(task_env.run_id)


def _regression(run) -> bool:
    return run["task"] == "regression"


def test_run_and_card_name_the_task(loaded):
    t, prod, run = loaded
    assert run["task"] in ("regression", "multiclass_classification")
    assert ad.task_of(prod["package"]["serving"]) == run["task"]
    st = ad.promotion_status(run, prod)
    assert st["status"] == "production"
    card = st["card"]
    assert "decision threshold" not in card and "positive label" not in card
    assert f"| task | {run['task'].replace('_', ' ')} |" in card
    assert "| feature | mean \\|SHAP\\| |" in card and " on  held-out" not in card
    if _regression(run):
        assert "| group | n | MAE | mean prediction | mean residual | evidence |" in card
        assert "ONNX parity on" in card and "in the target's units" in card
    else:
        assert f"| classes | {', '.join(run['classes'])} |" in card and "**Per class**" in card
        assert f"recall {run['classes'][0]}" in card and "| class |" in card
    html = (t.run_dir / "report.html").read_text()
    assert f"Task <b>{run['task'].replace('_', ' ')}</b>" in html and "<th>roc_auc</th>" not in html
    assert ("Residuals (actual - predicted" in html) if _regression(run) else ("Confusion counts" in html)


def test_performance_and_fairness_use_the_tasks_figures(loaded):
    _, _, run = loaded
    lb = run["reports"]["leaderboard"]
    perf = ad.performance_frame(lb)
    sel = perf.filter(pl.col("role") == "selected").row(0, named=True)
    assert sel["beats_baseline"] is True and sel["delta_vs_baseline"] > 0
    if _regression(run):  # a loss: the selected model's MAE is below the best baseline's
        base = perf.filter(pl.col("role") == "best baseline").row(0, named=True)
        assert sel["mae"] < base["mae"]
    assert ad.plot_performance(lb, success_threshold=run["brief"]["success"]["threshold"]).axes
    fair = run["reports"]["fairness"]
    choices = ad.fairness_choices(fair)
    metrics = list(choices["metrics"].values())
    if _regression(run):
        assert metrics == ["mae", "mean_prediction", "mean_residual"]
        assert "mean absolute error (MAE)" in choices["metrics"]
    else:
        c = run["classes"]
        assert metrics == ["accuracy", *[f"recall[{k}]" for k in c], *[f"selection_rate[{k}]" for k in c]]
        assert f"recall of {c[0]}" in choices["metrics"]
    for feature in choices["features"]:
        for metric in metrics:
            s = ad.fairness_slice(fair, feature, metric)
            assert s.height == len(fair["groups"][feature])
            ok = s.filter(pl.col("ci_low").is_not_null() & pl.col("value").is_not_null())
            assert (ok["ci_low"] <= ok["value"] + 1e-9).all() and (ok["value"] <= ok["ci_high"] + 1e-9).all()
            assert ad.plot_fairness_slice(s, feature=feature, metric=metric).axes
    gaps = ad.fairness_gaps(fair, choices["features"][0])
    assert set(gaps["metric"]) == {g["metric"] for g in fair["gaps"] if g["feature"] == choices["features"][0]}
    assert ("class" in gaps.columns) == (not _regression(run))
    with pytest.raises(DataError, match="no slices"):
        ad.fairness_slice(fair, "zodiac", metrics[0])


def test_shap_drivers_per_group(loaded):
    _, _, run = loaded
    shap = run["reports"]["shap"]
    contrib = ad.load_contributions(run["dir"])
    assert contrib is not None and contrib.height == shap["sample_size"]
    assert ad.shap_unit(shap) == ("target units" if _regression(run) else "class score, mean over classes")
    feats = ad.driver_features(shap, contrib, run["reports"]["fairness"]["features"])
    drivers = ad.group_drivers(shap, contrib, feats[0])
    # one row per group and original column (multiclass per-class columns are not columns of the data)
    assert set(drivers["feature"]) == set(shap["importance"])
    for group, info in shap["group_drivers"][feats[0]].items():
        got = dict(zip(*drivers.filter(pl.col("group") == group).select("feature", "mean_abs_shap"), strict=True))
        for col, v in info["mean_abs_shap"].items():
            assert got[col] == pytest.approx(v, rel=1e-9, abs=1e-12)
    # signed direction only where the contributions are signed
    assert (drivers["mean_shap"].null_count() == 0) == _regression(run)


def test_whatif_answers_in_the_tasks_fields(loaded):
    from workbench.serving.scorer import OnnxScorer

    _, prod, run = loaded
    pkg = prod["package"]
    fields = ad.whatif_fields(pkg["serving"], pkg["profile"])
    row = ad.whatif_row(fields, {})
    score = ad.score_whatif(pkg, row)
    direct = OnnxScorer(pkg["path"] / "model.onnx", pkg["serving"]["inputs"], task=run["task"]).scores(
        {k: [v] for k, v in row.items()})
    model = ad.verified_model(run, pkg["metadata"]["model"])
    if _regression(run):
        assert set(score) >= {"prediction", "target", "target_std"} and "probability" not in score
        assert score["prediction"] == pytest.approx(float(direct[0]), abs=0)
        assert score["target"] == run["brief"]["target"]["column"]
        assert "predicted wage" in ad.whatif_headline(score)
        exp = ad.explain_whatif(model, run, row, background=ad.load_contributions(run["dir"]))
        assert exp["unit"] == "target units"
        tol = 1e-4 * (score["target_std"] or 1.0)
        assert exp["prediction"] == pytest.approx(score["prediction"], abs=tol)  # parity, in target units
    else:
        assert score["classes"] == run["classes"] and set(score["probabilities"]) == set(run["classes"])
        assert math.isclose(sum(score["probabilities"].values()), 1.0, abs_tol=1e-9)
        assert list(score["probabilities"].values()) == pytest.approx(direct[0].tolist(), abs=0)
        assert score["label"] == run["classes"][int(np.argmax(direct[0]))]
        assert ad.whatif_headline(score).startswith(score["label"])
        assert ad.plot_class_probabilities(score).axes
        exp = ad.explain_whatif(model, run, row, background=ad.load_contributions(run["dir"]),
                                class_name=score["label"])
        assert exp["class"] == score["label"]
        assert exp["probability"] == pytest.approx(score["probability"], abs=1e-4)
        other = next(c for c in run["classes"] if c != score["label"])
        assert ad.explain_whatif(model, run, row, class_name=other)["class"] == other
        with pytest.raises(DataError, match="no class"):
            ad.explain_whatif(model, run, row, class_name="Dodo")
    c = exp["contributions"]
    assert c.height == len(fields)
    assert exp["base_value"] + c["contribution"].sum() == pytest.approx(exp["margin"], rel=1e-6, abs=1e-6)
    assert ad.plot_contributions(exp).axes


def test_drift_with_a_prediction_log_of_the_tasks_outputs(loaded, tmp_path):
    from workbench.monitoring.log import PredictionLog
    from workbench.serving.scorer import OnnxScorer

    _, prod, run = loaded
    pkg = prod["package"]
    assert ad.drift_status(pkg, log_root=tmp_path / "none")["status"] == "no log"
    rows = ad.load_contributions(run["dir"])
    features = [i["name"] for i in pkg["serving"]["inputs"]]
    inputs = {f: [None if v == "" else v for v in rows[f].to_list()] for f in features}
    scores = OnnxScorer(pkg["path"] / "model.onnx", pkg["serving"]["inputs"], task=run["task"]).scores(inputs)
    log = PredictionLog(pkg["tag"], root=tmp_path / "log")
    if _regression(run):
        log.append_outputs("r1", inputs, {"prediction": scores.tolist()})
    else:
        labels = [run["classes"][int(k)] for k in scores.argmax(axis=1)]
        log.append_outputs("r1", inputs, {"label": labels, "probabilities": scores.tolist()})
    log.close()
    st = ad.drift_status(pkg, log_root=tmp_path / "log")
    assert st["status"] in ("ok", "warning", "critical") and st["rows"] == rows.height
    line = ad.prediction_drift_summary(st["report"])
    assert line.startswith("Predictions: PSI" if _regression(run) else "Predicted classes: PSI")


@pytest.mark.slow  # about 20 s per task (a headless marimo export); the binary export runs in the default suite
def test_static_export_shows_the_tasks_answer(task_env, tmp_path):
    """The app renders headless for this task: the what-if headline speaks the task's language."""
    env = {**os.environ, **task_env.env, "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache")}
    out = tmp_path / "app.html"
    proc = subprocess.run([sys.executable, "-m", "marimo", "export", "html", str(APP), "-o", str(out),
                           "--no-include-code", "--no-sandbox", "-f"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    html = out.read_text()
    assert "Traceback" not in html and "decision threshold" not in html
    for screen in ("overview", "performance", "fairness", "drivers", "whatif", "drift"):
        assert f"wb-lead-{screen}" in html, screen
    for chart in ("performance", "fairness", "importance", "drivers", "contributions"):  # interactive charts
        assert f"wb-chart-{chart}" in html, chart
    assert ("Prediction for the typical person" in html) if "wage" in task_env.run_id else (
        "Class for the typical person" in html)


def test_lead_sentences_speak_the_tasks_language(loaded):
    _, prod, run = loaded
    fair, lb = run["reports"]["fairness"], run["reports"]["leaderboard"]
    feature = ad.fairness_choices(fair)["features"][0]
    perf = ad.lead_performance(lb, brief=run["brief"], evaluation=run["reports"].get("evaluation"))
    if _regression(run):
        lead = ad.lead_fairness(fair, feature, "mean_residual")
        assert lead.startswith(f"By {feature}, the model ") and ("under-estimates" in lead or "over-estimates" in lead)
        assert "mean absolute error (" in perf and "Amounts are in the units of wage" in perf
    else:
        lead = ad.lead_fairness(fair, feature, "accuracy")
        assert lead.startswith(f"By {feature}, the model is right for ")
        assert any(f"{c} is recognised " in perf for c in run["classes"]) and "macro F1 (" in perf
    assert "_difference" not in lead and "_" not in perf.split("(")[0]
    pkg = prod["package"]
    score = ad.score_whatif(pkg, ad.whatif_row(ad.whatif_fields(pkg["serving"], pkg["profile"]), {}))
    assert ad.lead_whatif(score, submitted=False).startswith("For the typical case")
