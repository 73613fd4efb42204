"""Every task's evaluation and fairness report reads back from its saved JSON as its own object (``from_dict``),
and a run folder hands them back as objects (``RunFolder.report_object``); the fairness report draws the app's
interactive chart from the same rows as its per-group frame."""

from __future__ import annotations

import json
import math

import numpy as np
import polars as pl
import pytest

from workbench._report import jsonable
from workbench.artifacts import RunFolder
from workbench.errors import EvaluationError, RunError
from workbench.evaluation import (
    CVReport,
    EvaluationReport,
    FairnessReport,
    MulticlassFairnessReport,
    MulticlassReport,
    RegressionFairnessReport,
    RegressionReport,
    evaluate_binary,
    evaluate_multiclass,
    evaluate_regression,
    evaluation_report_from_dict,
    fairness_report,
    fairness_report_from_dict,
    multiclass_fairness_report,
    regression_fairness_report,
)

CLASSES = ["a", "b", "c"]
TASKS = ["binary_classification", "multiclass_classification", "regression"]


def _sensitive(n: int, rng) -> pl.DataFrame:
    return pl.DataFrame({"sex": rng.choice(["f", "m"], n).tolist(),
                         "region": rng.choice(["north", "south", "east"], n, p=[0.5, 0.44, 0.06]).tolist()})


def _reports(task: str):
    """(evaluation report, fairness report) of one task on small synthetic data."""
    rng = np.random.default_rng(7)
    n = 400
    sens = _sensitive(n, rng)
    if task == "binary_classification":
        y = rng.integers(0, 2, n)
        p = np.clip(0.35 * y + rng.uniform(0, 0.65, n), 0, 1)
        return (evaluate_binary(y, p, threshold=0.5, primary="pr_auc"),
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


@pytest.fixture(scope="module", params=TASKS)
def reports(request):
    return request.param, *_reports(request.param)


EVALUATION = {"binary_classification": EvaluationReport, "multiclass_classification": MulticlassReport,
              "regression": RegressionReport}
FAIRNESS = {"binary_classification": FairnessReport, "multiclass_classification": MulticlassFairnessReport,
            "regression": RegressionFairnessReport}


def test_every_report_round_trips_as_its_own_class(reports, tmp_path):
    task, ev, fair = reports
    for r, cls, reader in ((ev, EVALUATION[task], evaluation_report_from_dict),
                           (fair, FAIRNESS[task], fairness_report_from_dict)):
        d = r.to_dict()
        again = type(r).from_dict(d)
        assert type(again) is cls and again.task == task
        assert again.to_dict() == d
        # through the saved JSON (NaN saved as null), picked by the task the file records
        saved = json.loads(r.save(tmp_path / f"{type(r).__name__}.json").read_text())
        back = reader(saved)
        assert type(back) is cls and back.to_json() == r.to_json()
        assert json.dumps(jsonable(back.summary())) == json.dumps(jsonable(r.summary()))
        assert back._repr_html_() == r._repr_html_()
        assert reader(r) is r  # an object passes through
    assert ev.primary_value == pytest.approx(EVALUATION[task].from_dict(ev.to_dict()).primary_value)


def test_undefined_metrics_come_back_as_nan():
    """A one-class test split: ranking metrics are NaN, saved as null, read back as NaN (not None)."""
    r = evaluate_binary(np.zeros(50, dtype=int), np.linspace(0.1, 0.6, 50), primary="accuracy")
    saved = json.loads(r.to_json())
    assert saved["metrics"]["pr_auc"] is None and saved["calibration"]["ece"] is None
    back = EvaluationReport.from_dict(saved)
    assert math.isnan(back.metrics["pr_auc"]) and back.calibration["ece"] is None
    assert back.to_json() == r.to_json()


def test_the_task_a_report_records_wins_and_a_report_without_one_is_binary(reports):
    task, ev, fair = reports
    for r, table, reader in ((ev, EVALUATION, evaluation_report_from_dict), (fair, FAIRNESS, fairness_report_from_dict)):
        d = json.loads(r.to_json())
        assert ("task" in d) == (task != "binary_classification")  # the binary shape predates round 2
        other = "regression" if task != "regression" else "multiclass_classification"
        expected = table[other] if task == "binary_classification" else table[task]
        assert type(reader(d, task=other)) is expected
        assert type(reader({k: v for k, v in d.items() if k != "task"})) is table["binary_classification"]


def test_a_partial_report_reads_with_empty_fields_and_bad_input_is_refused():
    cut = fairness_report_from_dict({"gaps": [{"feature": "region", "metric": "equalized_odds_difference",
                                               "value": 0.05, "ci_low": 0.0, "ci_high": 0.09, "threshold": 0.3,
                                               "verdict": "within threshold"}], "n_bootstrap": 100})
    assert type(cut) is FairnessReport and cut.groups == {} and cut.features == [] and cut.notes == []
    assert cut.verdict == "within threshold" and cut.n_bootstrap == 100 and cut.figures == []
    with pytest.raises(EvaluationError, match="unknown task 'regresion'.*Did you mean 'regression'"):
        evaluation_report_from_dict({"task": "regresion"})
    with pytest.raises(EvaluationError, match="expected the dict a saved fairness report holds, got list"):
        fairness_report_from_dict([])


def test_the_fairness_chart_draws_the_report_s_own_rows(reports):
    task, _, fair = reports
    figure = fair.figures[-1]
    frame = fair.slice_frame("region", figure)
    assert frame["group"].to_list() == [g["group"] for g in fair.groups["region"]]
    assert frame["n"].to_list() == [g["count"] for g in fair.groups["region"]]
    spec = fair.chart("region", figure).to_dict()  # a valid Vega-Lite spec, tagged for the app
    assert spec["usermeta"] == {"wb_chart": "wb-chart-fairness"} and spec["title"].endswith(
        "by region (hollow grey: too little evidence)")
    points = spec["datasets"][spec["layer"][-1]["data"]["name"]]
    shown = frame.filter(pl.col("value").is_not_null())
    assert [p["group"] for p in points] == shown["group"].to_list()
    assert [p["value"] for p in points] == pytest.approx(shown["value"].to_list())
    small = {g["group"] for g in fair.groups["region"] if fair.figure_evidence(g, figure) != "ok"}
    assert {p["group"] for p in points if p["evidence"] == "too few people to compare"} == small & set(shown["group"])
    assert fair.chart("region").to_dict()["title"].startswith(fair.chart("region", fair.figures[0]).to_dict()["title"])
    with pytest.raises(EvaluationError, match="argument 'figure'"):
        fair.chart("region", "zodiac_rate")
    with pytest.raises(EvaluationError, match="unknown feature 'regoin'"):
        fair.slice_frame("regoin", figure)


def test_a_run_folder_reads_its_reports_back_as_objects(tmp_path):
    ev, fair = _reports("multiclass_classification")
    run = RunFolder(tmp_path / "20260101-000000-demo")
    ev.save(run.report_path("evaluation"))
    fair.save(run.report_path("fairness"))
    cv = CVReport(n_splits=2, seed=0, threshold=None, metrics=["accuracy"],
                  folds=[{"fold": 0, "n_train": 5, "n_test": 5, "fit_seconds": 0.1, "accuracy": 0.8},
                         {"fold": 1, "n_train": 5, "n_test": 5, "fit_seconds": 0.1, "accuracy": 0.6}])
    cv.save(run.report_path("cv"))
    assert run.report_names() == ["cv", "evaluation", "fairness"]
    got = {name: run.report_object(name) for name in ("evaluation", "fairness", "cv")}
    assert type(got["evaluation"]) is MulticlassReport and got["evaluation"].to_json() == ev.to_json()
    assert type(got["fairness"]) is MulticlassFairnessReport and got["fairness"].to_json() == fair.to_json()
    assert got["cv"].to_dict() == cv.to_dict()
    assert run.report_object("leakage", required=False) is None
    with pytest.raises(RunError, match="has no reports/leakage.json"):
        run.report_object("leakage")
    with pytest.raises(RunError, match="reports/leaderboard.json has no report object"):
        run.report_object("leaderboard")
    run.report_path("evaluation").write_text("[1, 2]")  # edited into something that is not a report
    with pytest.raises(RunError, match="reports/evaluation.json does not read back as a report"):
        run.report_object("evaluation")
