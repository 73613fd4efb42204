"""Reading saved reports back is light: a fresh process that reads every task's saved evaluation and fairness
report (``workbench.evaluation._saved``), shows them (``to_dict``, ``summary``, HTML, plots, the app's chart),
reads a run folder's reports as objects (``RunFolder.report_object``) and writes the run report imports neither
scikit-learn, SciPy, Fairlearn nor SHAP -- and shows exactly what this process computed. The package resolves its
public names lazily, and every old import path gives the same object."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

import workbench.evaluation as evaluation
from workbench._report import jsonable
from workbench.artifacts import RunFolder
from workbench.evaluation import (
    CVReport,
    evaluate_binary,
    evaluate_multiclass,
    evaluate_regression,
    fairness_report,
    multiclass_fairness_report,
    regression_fairness_report,
)
from workbench.report import run_report_html

HEAVY = ("sklearn", "scipy", "fairlearn", "shap")
TASKS = ("binary_classification", "multiclass_classification", "regression")
CLASSES = ["a", "b", "c"]
PRIMARY = {"binary_classification": "pr_auc", "multiclass_classification": "macro_f1", "regression": "mae"}

# Run in a fresh interpreter: stage by stage, the heavy modules loaded so far, and what each report showed.
CHILD = r"""
import json, sys
HEAVY = ("sklearn", "scipy", "fairlearn", "shap")
def heavy():
    return sorted(m for m in HEAVY if m in sys.modules)

import workbench.evaluation._saved as s
from workbench._report import jsonable
data = json.loads(open(sys.argv[1]).read())
out = {"views": {}, "runs": {}}
for task, d in data["reports"].items():
    ev = s.evaluation_report_from_dict(d["evaluation"])
    fair = s.fairness_report_from_dict(d["fairness"])
    out["views"][task] = {name: [type(r).__name__, r.to_json(), json.dumps(jsonable(r.summary())), r._html_body()]
                          for name, r in (("evaluation", ev), ("fairness", fair))}
out["read"] = heavy()

from matplotlib.figure import Figure
from workbench.artifacts import RunFolder
from workbench.evaluation import EvaluationReport, FairnessReport, GAP_METRICS, GREATER_IS_BETTER, CVReport
from workbench.report import run_report_html
for task, d in data["reports"].items():
    ev = s.evaluation_report_from_dict(d["evaluation"])
    fair = s.fairness_report_from_dict(d["fairness"])
    plots = {"binary_classification": ("plot_calibration", "plot_pr_curve"),
             "multiclass_classification": ("plot_confusion", "plot_calibration"),
             "regression": ("plot_residuals", "plot_predicted_vs_actual")}[task]
    for plot in plots:
        getattr(ev, plot)(ax=Figure().add_subplot())
    feature = fair.features[0]
    fair.plot(feature, ax=Figure().add_subplot())
    fair.slice_frame(feature, fair.figures[0])
    fair.chart(feature).to_dict()
    run = RunFolder(data["runs"][task])
    objects = {name: run.report_object(name) for name in ("evaluation", "fairness", "cv")}
    out["runs"][task] = {"objects": {n: [type(o).__name__, o.to_json()] for n, o in objects.items()},
                         "html": run_report_html(run.path)}
out["views_and_run_report"] = heavy()

from workbench.evaluation import evaluate_binary  # computing: the module that defines it imports scikit-learn
out["compute"] = heavy()
print(json.dumps(out))
"""


def _sensitive(n: int, rng) -> pl.DataFrame:
    return pl.DataFrame({"sex": rng.choice(["f", "m"], n).tolist(),
                         "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.44, 0.06]).tolist()})


def _reports(task: str):
    """(evaluation report, fairness report) of one task on small synthetic data."""
    rng = np.random.default_rng(11)
    n = 300
    sens = _sensitive(n, rng)
    if task == "binary_classification":
        y = rng.integers(0, 2, n)
        p = np.clip(0.35 * y + rng.uniform(0, 0.65, n), 0, 1)
        return (evaluate_binary(y, p, primary="pr_auc"),
                fairness_report(y, p, sens, thresholds={"equalized_odds_difference": 0.3}, n_bootstrap=20))
    if task == "multiclass_classification":
        y = rng.integers(0, 3, n)
        logits = rng.normal(0, 1, (n, 3))
        logits[np.arange(n), y] += 2.0
        proba = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
        return (evaluate_multiclass(y, proba, classes=CLASSES),
                multiclass_fairness_report(y, proba, sens, classes=CLASSES, thresholds={"accuracy_difference": 0.2},
                                           n_bootstrap=20))
    y = rng.normal(50, 10, n)
    yhat = y + rng.normal(0, 3, n)
    return (evaluate_regression(y, yhat, primary="mae"),
            regression_fairness_report(y, yhat, sens, thresholds={"mae_difference": 2.0}, n_bootstrap=20))


def _run_folder(root: Path, task: str, ev, fair, cv: CVReport) -> RunFolder:
    """A run folder with the reports the run report reads: the manifest, the contract, the leaderboard, the
    selected model's held-out and fairness reports and its cross-validation."""
    run = RunFolder(root / task / "20260101-000000-demo")
    primary = PRIMARY[task]
    metrics = {k: v for k, v in ev.to_dict()["metrics"].items() if v is not None}
    leaderboard = {"task": task, "primary": primary, "selected": "hgb", "best_baseline": "rule",
                   "min_improvement": 0.05, "comparisons": {"hgb": {"primary_delta": 0.1}},
                   **({"classes": CLASSES} if task == "multiclass_classification" else {}),
                   "models": {"rule": {"kind": "baseline", "test": {"metrics": {m: v / 2 for m, v in metrics.items()}}},
                              "hgb": {"kind": "candidate", "test": {"metrics": metrics},
                                      "cv": {"mean": {primary: 0.7}, "std": {primary: 0.02}}}}}
    manifest = {"run_id": run.run_id, "status": "succeeded", "phases": ["discovery", "prototype"], "seed": 0,
                "brief": {"name": "demo", "content": {"name": "demo", "task": task, "objective": "Demo.",
                                                      "target": {"column": "y"}}}}
    contract = {"task": task, "target": "y", "columns": []}
    run.report_path("x").parent.mkdir(parents=True)
    run.manifest_path.write_text(json.dumps(manifest))
    for name, body in (("leaderboard", leaderboard), ("contract", contract)):
        run.report_path(name).write_text(json.dumps(body))
    ev.save(run.report_path("evaluation"))
    fair.save(run.report_path("fairness"))
    cv.save(run.report_path("cv"))
    return run


@pytest.fixture(scope="module")
def fresh_process(tmp_path_factory):
    """(what this process computed, what a fresh process that only reads showed)."""
    root = tmp_path_factory.mktemp("light")
    cv = CVReport(n_splits=2, seed=0, threshold=None, metrics=["accuracy"],
                  folds=[{"fold": 0, "n_train": 5, "n_test": 5, "fit_seconds": 0.1, "accuracy": 0.8},
                         {"fold": 1, "n_train": 5, "n_test": 5, "fit_seconds": 0.1, "accuracy": 0.6}],
                  greater_is_better={"accuracy": True}, stratified=False)
    expected = {"views": {}, "runs": {}}
    data = {"reports": {}, "runs": {}}
    for task in TASKS:
        ev, fair = _reports(task)
        data["reports"][task] = {"evaluation": json.loads(ev.to_json()), "fairness": json.loads(fair.to_json())}
        expected["views"][task] = {name: [type(r).__name__, r.to_json(), json.dumps(jsonable(r.summary())),
                                          r._html_body()] for name, r in (("evaluation", ev), ("fairness", fair))}
        run = _run_folder(root, task, ev, fair, cv)
        data["runs"][task] = str(run.path)
        expected["runs"][task] = {"objects": {n: [type(r).__name__, r.to_json()]
                                              for n, r in (("evaluation", ev), ("fairness", fair), ("cv", cv))},
                                  "html": run_report_html(run.path)}
    (root / "saved.json").write_text(json.dumps(data))
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", CHILD, str(root / "saved.json")], capture_output=True, text=True,
                          env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return expected, json.loads(done.stdout.strip().splitlines()[-1])


def test_reading_saved_reports_back_imports_no_compute_library(fresh_process):
    _, got = fresh_process
    assert got["read"] == []  # evaluation_report_from_dict / fairness_report_from_dict, every task's views
    assert got["views_and_run_report"] == []  # plots, charts, RunFolder.report_object, the run report


def test_the_check_sees_a_compute_library_when_one_is_imported(fresh_process):
    """The negative case: the same process, once it asks for a compute function, has scikit-learn and SciPy."""
    _, got = fresh_process
    assert "sklearn" in got["compute"] and "scipy" in got["compute"]


def test_a_fresh_reader_shows_exactly_what_was_computed(fresh_process):
    expected, got = fresh_process
    assert got["views"] == expected["views"]  # class, to_json, summary and HTML of each task's two reports
    for task in TASKS:
        assert got["runs"][task]["objects"] == expected["runs"][task]["objects"]
        html = got["runs"][task]["html"]
        assert html == expected["runs"][task]["html"]
        # the sections drawn from the report objects, not only from the leaderboard
        assert "<h3>Selected model on held-out data</h3>" in html and "<h3 id='fairness'>Fairness: " in html


def test_every_public_name_resolves_lazily_to_the_object_of_its_old_path():
    from workbench.evaluation import (
        _crossval,
        _cv_report,
        _fairness_report,
        _heldout,
        _saved,
        _scoring,
        explain,
        fairness,
        metrics,
        multiclass,
        regression,
    )

    for name in evaluation.__all__:
        assert getattr(evaluation, name) is getattr(
            __import__(f"workbench.evaluation.{evaluation._DEFINED_IN[name]}", fromlist=[name]), name)
    assert evaluation.explain is explain and callable(explain)
    same = [
        (metrics.EvaluationReport, _heldout.EvaluationReport, _saved.EVALUATION_REPORTS["binary_classification"]),
        (multiclass.MulticlassReport, _heldout.MulticlassReport),
        (regression.RegressionReport, _heldout.RegressionReport),
        (fairness.FairnessReport, _fairness_report.FairnessReport),
        (multiclass.MulticlassFairnessReport, _fairness_report.MulticlassFairnessReport),
        (regression.RegressionFairnessReport, _fairness_report.RegressionFairnessReport),
        (regression.TaskFairnessReport, _fairness_report.TaskFairnessReport),
        (metrics.CVReport, _crossval.CVReport, _cv_report.CVReport),
        (metrics.GREATER_IS_BETTER, _scoring.GREATER_IS_BETTER, _heldout.GREATER_IS_BETTER),
        (multiclass.MULTICLASS_GREATER_IS_BETTER, _heldout.MULTICLASS_GREATER_IS_BETTER),
        (regression.REGRESSION_GREATER_IS_BETTER, _heldout.REGRESSION_GREATER_IS_BETTER),
        (fairness.GAP_METRICS, _fairness_report.GAP_METRICS), (fairness.GROUP_METRICS, _fairness_report.GROUP_METRICS),
        (multiclass.MULTICLASS_GAP_METRICS, _fairness_report.MULTICLASS_GAP_METRICS),
        (regression.REGRESSION_GAP_METRICS, _fairness_report.REGRESSION_GAP_METRICS),
    ]
    for objects in same:
        assert all(o is objects[0] for o in objects)
    # the directions the reports carry name every metric the compute modules define, in the same order
    assert list(metrics.GREATER_IS_BETTER) == list(metrics.METRICS)
    assert list(multiclass.MULTICLASS_GREATER_IS_BETTER) == list(multiclass.MULTICLASS_METRICS)
    assert list(regression.REGRESSION_GREATER_IS_BETTER) == list(regression.REGRESSION_METRICS)
    assert set(evaluation.__all__) <= set(dir(evaluation)) and "metrics" in dir(evaluation)


def test_explain_stays_the_function_when_the_import_system_binds_its_submodule():
    """``explain`` names both a submodule and the function in it; loading the submodule by its full name binds it
    on the package (``setattr``), which must not replace the public function."""
    function = evaluation.explain
    module = sys.modules["workbench.evaluation.explain"]
    assert callable(function) and function is module.explain
    evaluation.explain = module  # what importlib does once workbench.evaluation.explain is loaded
    assert evaluation.explain is function
    from workbench.evaluation import explain

    assert explain is function
    evaluation.anything_else = module  # other names bind as usual
    assert evaluation.anything_else is module
    del evaluation.anything_else


def test_an_unknown_name_is_an_attribute_error_naming_it():
    with pytest.raises(AttributeError, match="'workbench.evaluation' has no attribute 'evaluate_binery'"):
        evaluation.evaluate_binery  # noqa: B018
    with pytest.raises(ImportError, match="evaluate_binery"):
        from workbench.evaluation import evaluate_binery  # noqa: F401


# A saved SHAP report (shap.json's content and the contributions Parquet) read back and charted in a fresh
# interpreter; the frames and the chart specs are printed for comparison with this process's.
SHAP_CHILD = r"""
import json, sys
import polars as pl
from workbench.evaluation._shap_saved import SavedShap
saved = SavedShap.from_saved(json.loads(open(sys.argv[1]).read()), pl.read_parquet(sys.argv[2]))
out = {"importance": saved.importance_frame().to_dicts(), "chart": saved.chart().to_dict(),
       "drivers": saved.drivers_frame("sex").to_dicts(), "drivers_chart": saved.drivers_chart("sex & region").to_dict(),
       "features": saved.driver_features(["sex", "sex & region", "age group"])}
saved.plot(), saved.plot_drivers("sex")
out["heavy"] = sorted(m for m in ("sklearn", "scipy", "fairlearn", "shap") if m in sys.modules)
print(json.dumps(out))
"""


def test_a_saved_shap_report_reads_back_and_charts_without_a_compute_library(tmp_path):
    from workbench.errors import DataError
    from workbench.evaluation._shap_saved import SavedShap

    rng = np.random.default_rng(3)
    n = 80
    contributions = pl.DataFrame({"age": rng.uniform(20, 70, n), "sex": rng.choice(["f", "m"], n).tolist(),
                                  "region": rng.choice(["north", "south"], n).tolist(),
                                  "shap__age": rng.normal(0, 1, n), "shap__sex": rng.normal(0, 0.3, n),
                                  "shap__region": rng.normal(0, 0.5, n)})
    shap = {"task": "binary_classification", "model": "hgb",
            "importance": {"age": 0.8, "region": 0.4, "sex": 0.25},
            "group_drivers": {"age group": {"young": {"n": 40, "mean_abs_shap": {"age": 0.7, "sex": 0.2}}}}}
    (tmp_path / "shap.json").write_text(json.dumps(shap))
    contributions.write_parquet(tmp_path / "contrib.parquet")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", SHAP_CHILD, str(tmp_path / "shap.json"),
                           str(tmp_path / "contrib.parquet")], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["heavy"] == []
    here = SavedShap.from_saved(shap, contributions)
    assert got["importance"] == here.importance_frame().to_dicts()
    assert [r["feature"] for r in got["importance"]] == ["age", "region", "sex"]
    assert got["chart"] == json.loads(json.dumps(here.chart().to_dict()))
    assert got["drivers_chart"] == json.loads(json.dumps(here.drivers_chart("sex & region").to_dict()))
    drivers = here.drivers_frame("sex")
    assert got["drivers"] == drivers.to_dicts() and set(drivers["group"]) == {"f", "m"}
    assert drivers.filter(pl.col("group") == "f")["mean_shap"].to_list()[0] is not None  # binary: signed
    assert got["features"] == ["sex", "sex & region", "age group"]  # the last one from shap.json only
    assert here.drivers_frame("age group")["mean_shap"].null_count() == 2  # shap.json: unsigned
    with pytest.raises(DataError, match="no SHAP drivers for 'income'"):
        here.drivers_frame("income")
