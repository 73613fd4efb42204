"""The run report (report.html): self-contained, built from the run folder, written by the runner without ever
changing a run's outcome."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nbformat
import pytest

from testkit import ADULT_BRIEF
from workbench.config import Settings
from workbench.report import REPORT_NAME, run_report_html, write_run_report
from workbench.runs import execute_run, read_manifest


def _png(path: Path, title: str) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(2, 1.5))
    fig.add_subplot().bar([0, 1], [1, 2])
    fig.suptitle(title)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=40)


def _run_folder(root: Path, *, status: str = "succeeded", error: dict | None = None) -> Path:
    d = root / "20260101-000000-demo"
    (d / "reports").mkdir(parents=True)
    manifest = {
        "run_id": d.name, "status": status, "phases": ["discovery", "prototype"], "seed": 7,
        "started_at": "2026-01-01T00:00:00+00:00", "finished_at": "2026-01-01T00:00:30+00:00", "duration_s": 30.0,
        "brief": {"name": "demo", "content": {"name": "demo", "objective": "Predict <churn> & keep customers."}},
        "git": {"commit": "abcdef1234567", "dirty": False},
        "gates": {"data_quality": {"passed": True, "value": 24, "threshold": 18, "message": "proceed"},
                  "kill_criteria": {"passed": True, "value": [], "threshold": "none triggered", "message": "continue"}},
        "results": {"audit": {"quality_score": 24, "quality_verdict": "proceed"},
                    "prototype": {"selected": "hgb", "primary_metric": "pr_auc", "primary_value": 0.81,
                                  "best_baseline": "rule", "baseline_value": 0.42, "delta_vs_baseline": 0.39,
                                  "fairness_verdict": "within threshold", "kill_verdict": "continue"}},
        "notebooks": [{"phase": "discovery", "output": "01_discovery.ipynb", "status": "succeeded", "duration_s": 3.2}],
        "parameters": {"discovery": {"seed": 7, "sample_rows": 100, "run_dir": "/x"}},
        "data": {"train": {"path": "/d/train.parquet", "rows": 100, "sha256": "f" * 64}},
        "error": error,
    }
    (d / "manifest.json").write_text(json.dumps(manifest))
    reports = {
        "contract": {"target": "churned", "positive_label": 1, "columns": [
            {"name": "tenure", "role": "feature", "kind": "numeric", "sensitive": False},
            {"name": "region", "role": "feature", "kind": "categorical", "sensitive": True},
            {"name": "customer_id", "role": "excluded", "kind": "categorical", "reason": "identifier-like"}]},
        "audit": {"quality": {"total": 24, "max": 30, "threshold": 18, "verdict": "proceed", "dimensions": [
            {"name": "completeness", "score": 5, "max": 5, "evidence": ["no missing cells"]}]}, "warnings": []},
        "leaderboard": {"primary": "pr_auc", "selected": "hgb", "best_baseline": "rule", "min_improvement": 0.05,
                        "comparisons": {"hgb": {"primary_delta": 0.39}},
                        "models": {"rule": {"kind": "baseline", "test": {"metrics": {"pr_auc": 0.42}}},
                                   "hgb": {"kind": "candidate", "test": {"metrics": {"pr_auc": 0.81, "roc_auc": 0.9}},
                                           "cv": {"mean": {"pr_auc": 0.8}, "std": {"pr_auc": 0.01}}}}},
        "fairness": {"verdict": "within threshold", "confidence_level": 0.95, "n_bootstrap": 100, "min_slice_size": 50,
                     "gaps": [{"feature": "region", "metric": "equalized_odds_difference", "value": 0.05,
                               "ci_low": 0.01, "ci_high": 0.09, "threshold": 0.3, "verdict": "within threshold"}]},
        "shap": {"model": "hgb", "explainer": "tree", "sample_size": 50, "importance": {"tenure": 0.9, "region": 0.1},
                 "additivity": {"max_abs_error": 1e-15, "passed": True}},
        "kill_criteria": {"verdict": "continue", "criteria": [{"id": "KC-1", "description": "quality below 18",
                                                               "triggered": False, "evidence": "24/30"}]},
    }
    for name, body in reports.items():
        (d / "reports" / f"{name}.json").write_text(json.dumps(body))
    # A saved view with something that would fetch from outside: the report must not carry it over.
    (d / "reports" / "audit.html").write_text(
        "<!doctype html><style>x{}</style><div class='wb-report'><h3>Discovery audit</h3><img src='https://x/y.png'>"
        "<script>alert(1)</script><p>audit detail</p></div>")
    for name in ("quality", "fairness_region", "shap_importance", "extra_plot"):
        _png(d / "figures" / f"{name}.png", name)
    return d


def test_report_is_self_contained_and_has_every_section(tmp_path):
    d = _run_folder(tmp_path)
    path = write_run_report(d)
    assert path == d / REPORT_NAME
    html = path.read_text()
    for text in ("Run 20260101-000000-demo", "succeeded", "Gates", "data quality", "Discovery", "identifier-like",
                 "Prototype", "pr_auc", "Fairness: within threshold", "Explanations (SHAP)", "Kill criteria: continue",
                 "Provenance", "Other figures", "audit detail", "24/30"):
        assert text in html, text
    assert "Predict &lt;churn&gt; &amp; keep customers." in html  # escaped
    # Every figure embedded exactly once, nothing fetched from outside, no script.
    assert html.count("src='data:image/png;base64,") == 4
    assert "<script" not in html.lower() and "https://x" not in html
    refs = re.findall(r"""(?:src|href)=['"]([^'"]*)""", html)
    assert refs and all(r.startswith(("data:", "#")) for r in refs), refs
    assert html.index("quality</figcaption>") < html.index("<h2 id='prototype'>")  # placed in its section


def test_failed_run_report_shows_the_error(tmp_path):
    d = _run_folder(tmp_path, status="failed", error={"type": "NotebookCellError", "message": "ZeroDivisionError",
                                                      "hint": "open the executed notebook", "notebook": "01.ipynb",
                                                      "cell": 3})
    html = run_report_html(d)
    assert "b-failed" in html and "ZeroDivisionError" in html and "open the executed notebook" in html
    # A folder with nothing but a manifest still gets a report.
    bare = tmp_path / "bare"
    bare.mkdir()
    (bare / "manifest.json").write_text(json.dumps({"run_id": "bare", "status": "failed"}))
    assert "No gate was recorded" in run_report_html(bare)


def _project(tmp_path: Path, body: str) -> Settings:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell('brief_path: str = ""  # brief\nrun_dir: str = ""  # run folder\n'
                                          'seed: int = 42  # seed\nsample_rows: int = 0  # rows',
                                          metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(body)]
    dest = tmp_path / "proj" / "notebooks" / "01_discovery.ipynb"
    dest.parent.mkdir(parents=True)
    nbformat.write(nb, dest)
    return Settings(root=tmp_path / "proj")


@pytest.mark.notebook
def test_runner_writes_the_report_at_the_end(tmp_path, runs_dir):
    r = execute_run(brief_path=ADULT_BRIEF, phases=["discovery"], cfg=_project(tmp_path, "print('ok')"))
    assert r.status == "succeeded"
    m = read_manifest(r.run_dir)
    assert m["report"] == {"path": REPORT_NAME, "error": None} and m["status"] == "succeeded"
    assert (r.run_dir / REPORT_NAME).is_file()
    assert r.run_id in (r.run_dir / REPORT_NAME).read_text()


@pytest.mark.notebook
@pytest.mark.parametrize("body, status", [("print('ok')", "succeeded"), ("1 / 0", "failed")])
def test_report_failure_never_changes_the_run_status(tmp_path, runs_dir, monkeypatch, caplog, body, status):
    def broken(run_dir):
        raise OSError("disk full")

    monkeypatch.setattr("workbench.report.write_run_report", broken)
    r = execute_run(brief_path=ADULT_BRIEF, phases=["discovery"], cfg=_project(tmp_path, body))
    assert r.status == status
    m = read_manifest(r.run_dir)
    assert m["status"] == status
    assert m["report"] == {"path": None, "error": "OSError: disk full"}
    assert not (r.run_dir / REPORT_NAME).exists()
    assert "could not write the run report" in caplog.text


# ------------------------------------------------------------------------------------------- per task
def _task_folder(root: Path, task: str) -> Path:
    """A run folder whose reports are real report objects' to_dict() for ``task``, and only
    ``figures/evaluation.png`` (the round-2 name) for the held-out figure."""
    import numpy as np
    import polars as pl

    from workbench.evaluation.multiclass import evaluate_multiclass, multiclass_fairness_report
    from workbench.evaluation.regression import evaluate_regression, regression_fairness_report

    d = _run_folder(root)
    rng = np.random.default_rng(0)
    n = 300
    sens = pl.DataFrame({"region": rng.choice(["north", "south"], n).tolist()})
    if task == "regression":
        y = rng.normal(50, 10, n)
        yhat = y + rng.normal(0, 3, n)
        ev = evaluate_regression(y, yhat, primary="mae").to_dict()
        fair = regression_fairness_report(y, yhat, sens, thresholds={"mae_relative_difference": 0.5},
                                          n_bootstrap=20).to_dict()
        contract = {"task": task, "target": "wage", "positive_label": None, "columns": []}
        metrics = {"mae": 2.4, "rmse": 3.0, "r2": 0.9, "median_ae": 2.0}
        lb_task = {"task": task, "primary": "mae"}
    else:
        classes = ["a", "b", "c"]
        y = rng.integers(0, 3, n)
        proba = rng.dirichlet([1, 1, 1], n)
        proba[np.arange(n), y] += 1
        proba /= proba.sum(axis=1, keepdims=True)
        ev = evaluate_multiclass(y, proba, classes=classes, primary="macro_f1").to_dict()
        fair = multiclass_fairness_report(y, proba, sens, classes=classes, thresholds={"accuracy_difference": 0.3},
                                          n_bootstrap=20).to_dict()
        contract = {"task": task, "target": "species", "classes": classes, "columns": []}
        metrics = {"macro_f1": 0.8, "balanced_accuracy": 0.8, "accuracy": 0.81, "weighted_f1": 0.8, "log_loss": 0.5}
        lb_task = {"task": task, "classes": classes, "primary": "macro_f1"}
    primary = lb_task["primary"]
    lb = {**lb_task, "selected": "hgb", "best_baseline": "rule", "min_improvement": 0.05,
          "comparisons": {"hgb": {"primary_delta": 0.3}},
          "models": {"rule": {"kind": "baseline", "test": {"metrics": {m: v / 2 for m, v in metrics.items()}}},
                     "hgb": {"kind": "candidate", "test": {"metrics": metrics},
                             "cv": {"mean": {primary: 0.7}, "std": {primary: 0.02}}}}}
    shap = {"model": "hgb", "explainer": "tree", "task": task, "sample_size": 50, "importance": {"tenure": 0.9},
            "additivity": {"max_abs_error": 1e-15, "passed": True},
            **({"importance_by_class": {c: {"tenure": 0.5 + i} for i, c in enumerate(["a", "b", "c"])}}
               if task != "regression" else {})}
    for name, body in {"evaluation": ev, "fairness": fair, "contract": contract, "leaderboard": lb,
                       "shap": shap}.items():
        (d / "reports" / f"{name}.json").write_text(json.dumps(body))
    _png(d / "figures" / "evaluation.png", "evaluation")
    return d


def test_regression_report_shows_target_units_and_residuals(tmp_path):
    html = run_report_html(_task_folder(tmp_path, "regression"))
    assert "Task <b>regression</b>" in html and "Primary metric <b>mae</b> (lower is better)" in html
    assert "Target <b>wage</b> (numeric, regression)" in html and "positive label" not in html
    for col in ("rmse", "r2", "median_ae"):  # the task's own secondary metrics, not roc_auc/f1
        assert f"<th>{col}</th>" in html
    assert "<th>roc_auc</th>" not in html and "threshold None" not in html
    assert "Residuals (actual - predicted, in the target's units)" in html and "residual quantile" in html
    assert "mae_relative_difference" in html and "in the target's units" in html
    assert "held-out rows of <b>hgb</b>, in the target&#x27;s units" in html
    assert html.index("evaluation</figcaption>") < html.index("<h2 id='provenance'>")


def test_multiclass_report_shows_classes_confusion_and_per_class_gaps(tmp_path):
    html = run_report_html(_task_folder(tmp_path, "multiclass_classification"))
    assert "Task <b>multiclass classification</b>" in html and "3 classes: <b>a, b, c</b>" in html
    assert "<th>balanced_accuracy</th>" in html and "<th>roc_auc</th>" not in html
    assert "Confusion counts" in html and "<th>support</th>" in html and "Macro calibration ECE" in html
    assert "<th>class</th>" in html and "recall_difference" in html  # per-class gaps name their class
    assert "Mean |SHAP| per class" in html and "raw class score" in html
    assert "src='data:image/png;base64," in html and "evaluation</figcaption>" in html


def test_old_binary_run_with_calibration_figure_still_shows_it(tmp_path):
    d = _run_folder(tmp_path)
    _png(d / "figures" / "calibration.png", "calibration")
    html = run_report_html(d)
    assert html.index("calibration</figcaption>") < html.index("<h3 id='fairness'>")
    assert "<th>roc_auc</th>" in html and "positive label" in html


# ------------------------------------------------------------------------------------------- for stakeholders
def test_report_leads_with_plain_sentences_and_explains_its_terms(tmp_path):
    html = run_report_html(_run_folder(tmp_path))
    plain = html[html.index("<h2 id='plain'>"):html.index("<h2 id='gates'>")]
    assert "The selected model, gradient-boosted trees (hgb), scores 0.810 on PR-AUC (" in plain
    assert "the best simple rule, a one-question rule (rule), scores 0.420" in plain
    assert "equalized-odds gap" in plain and "pr_auc" not in plain and "equalized_odds_difference" not in plain
    assert "reported, not gated" in plain  # the glossary explains "no threshold"


def test_parameters_show_the_values_the_run_used_and_where_they_came_from(tmp_path):
    d = _run_folder(tmp_path)
    m = json.loads((d / "manifest.json").read_text())
    m["parameters"]["prototype"] = {"seed": 7, "sample_rows": 0, "candidates": "", "cv_folds": 5,
                                    "shap_sample": 1000, "bootstrap_samples": 0, "run_dir": "/x"}
    m["brief"]["content"]["fairness"] = {"bootstrap_samples": 200}
    (d / "manifest.json").write_text(json.dumps(m))
    (d / "params.yaml").write_text("prototype:\n  cv_folds: 5\n  run_dir: /x\n")
    html = run_report_html(d)
    params = html[html.index("<h3>Parameters</h3>"):html.index("<h3>Data</h3>")]
    assert "bootstrap_samples=0" not in params and "<td>0</td>" not in params
    # the fairness report ran 100 replicates: that is the value used, and the brief is where it came from
    assert re.search(r"<td>bootstrap_samples</td><td>100</td><td>the brief \(fairness.bootstrap_samples\)", params)
    assert re.search(r"<td>sample_rows</td><td>all rows \(100 train\)</td>", params)
    assert re.search(r"<td>candidates</td><td>hgb</td>", params)
    assert re.search(r"<td>shap_sample</td><td>50 \(asked for 1000", params)
    assert re.search(r"<td>cv_folds</td><td>5</td><td>set for this run</td>", params)
    assert re.search(r"<td>seed</td><td>7</td><td>notebook default</td>", params)
    # without a fairness report, the brief's own value
    (d / "reports" / "fairness.json").unlink()
    assert re.search(r"<td>bootstrap_samples</td><td>200</td>", run_report_html(d))
