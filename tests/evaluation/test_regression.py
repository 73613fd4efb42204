"""workbench.evaluation.regression: metrics against scikit-learn, the report, fairness slices and their intervals."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
import pytest
from fairlearn.metrics import MetricFrame
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    median_absolute_error,
    r2_score,
    root_mean_squared_error,
)

from workbench.errors import EvaluationError
from workbench.evaluation import (
    REGRESSION_GREATER_IS_BETTER,
    REGRESSION_METRICS,
    RegressionFairnessReport,
    RegressionReport,
    evaluate_regression,
    regression_fairness_report,
    regression_strata,
)


def make_data(n: int = 1500, *, under: float = 0.0, seed: int = 0):
    """Positive target; group B is under-predicted by ``under`` (target units)."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["A", "B"], n, p=[0.6, 0.4])
    region = rng.choice(["north", "south", "east"], n)
    y = rng.gamma(4.0, 5.0, n) + 1.0
    yhat = y + rng.normal(0, 2.0, n) - np.where(group == "B", under, 0.0)
    return y, yhat, pl.DataFrame({"group": group, "region": region})


# ---------------------------------------------------------------------------------------------- metrics
def test_metrics_equal_scikit_learn():
    y, yhat, _ = make_data()
    r = evaluate_regression(y, yhat)
    expected = {"mae": mean_absolute_error(y, yhat), "rmse": root_mean_squared_error(y, yhat),
                "r2": r2_score(y, yhat), "median_ae": median_absolute_error(y, yhat),
                "mape": mean_absolute_percentage_error(y, yhat)}
    assert r.metrics == pytest.approx(expected, rel=1e-12)
    assert r.primary == "mae" and r.primary_value == r.metrics["mae"]
    assert set(REGRESSION_METRICS) == set(expected) and REGRESSION_GREATER_IS_BETTER["r2"]
    assert not any(REGRESSION_GREATER_IS_BETTER[m] for m in ("mae", "rmse", "median_ae", "mape"))
    res = y - yhat
    assert r.residual["mean"] == pytest.approx(res.mean()) and r.target["mean"] == pytest.approx(y.mean())
    assert r.target["std"] == pytest.approx(np.std(y, ddof=1))
    assert r.residual["quantiles"] == pytest.approx(np.quantile(res, r.residual["levels"]).tolist())


def test_mape_omitted_when_a_target_is_not_positive():
    y, yhat, _ = make_data(200)
    y[3] = 0.0
    r = evaluate_regression(y, yhat, primary="rmse")
    assert "mape" not in r.metrics and any("mape omitted" in n for n in r.notes)
    assert r.primary_value == pytest.approx(root_mean_squared_error(y, yhat))
    with pytest.raises(EvaluationError, match="argument 'primary': mape is undefined"):
        evaluate_regression(y, yhat, primary="mape")
    assert np.isnan(REGRESSION_METRICS["mape"](y, yhat))


def test_r2_of_a_constant_target_is_nan():
    r = evaluate_regression(np.full(10, 3.0), np.arange(10.0))
    assert np.isnan(r.metrics["r2"]) and any("r2 undefined" in n for n in r.notes)
    assert evaluate_regression([1.0, 2.0, 3.0], [1.0, 2.0, 3.0]).metrics["r2"] == 1.0


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"y_pred": [1.0, np.nan, 2.0]}, "argument 'y_pred': 1 values are NaN"),
    ({"y_pred": [1.0, 2.0]}, "lengths differ"),
    ({"y_true": ["a", "b", "c"]}, "argument 'y_true': expected numbers"),
    ({"primary": "mse"}, "argument 'primary': unknown value 'mse'"),
])
def test_bad_inputs_raise(kwargs, match):
    args = {"y_true": [1.0, 2.0, 3.0], "y_pred": [1.0, 2.5, 2.0], **kwargs}
    primary = args.pop("primary", "mae")
    with pytest.raises(EvaluationError, match=match):
        evaluate_regression(args["y_true"], args["y_pred"], primary=primary)


def test_plot_sample_is_thinned_and_deterministic():
    rng = np.random.default_rng(1)
    y = rng.normal(size=5000)
    a, b = evaluate_regression(y, y + 0.1), evaluate_regression(y, y + 0.1)
    assert len(a.sample["index"]) == 2000 and a.sample == b.sample
    assert np.array_equal(np.asarray(a.sample["y_true"]), y[a.sample["index"]])
    small = evaluate_regression(y[:50], y[:50])
    assert small.sample["index"] == list(range(50))


def test_report_round_trip_html_and_plots(tmp_path):
    y, yhat, _ = make_data(300)
    r = evaluate_regression(y, yhat, primary="r2")
    d = json.loads(r.to_json())
    assert d["task"] == "regression" and d["greater_is_better"]["r2"] is True
    again = RegressionReport.from_dict(json.loads(r.save(tmp_path / "r.json").read_text()))
    assert again.to_dict() == r.to_dict() and again.primary_value == r.primary_value
    assert "primary metric <b>r2</b>" in r._repr_html_() and r.summary()["target_std"] == r.target["std"]
    for ax in (r.plot_residuals(), r.plot_predicted_vs_actual()):
        assert ax.get_title() and len(ax.collections) == 1
    fig, ax = plt.subplots()
    assert r.plot_residuals(ax=ax) is ax
    plt.close("all")


def test_regression_strata_give_every_bin_enough_rows():
    y = np.random.default_rng(0).exponential(size=53)
    bins = regression_strata(y, n_splits=5, n_bins=10)
    assert np.bincount(bins).min() >= 5 and bins.max() >= 3
    assert np.all(np.diff(bins[np.argsort(y)]) >= 0)  # ordered by the target
    assert regression_strata(y[:6], n_splits=5).max() == 0  # too few rows: a single stratum


# ---------------------------------------------------------------------------------------------- fairness
def _gap(report, feature, metric):
    return next(g for g in report.gaps if g["feature"] == feature and g["metric"] == metric)


def _group(report, feature, group):
    return next(r for r in report.groups[feature] if r["group"] == group)


def test_group_figures_match_fairlearn_and_numpy():
    y, yhat, s = make_data(under=1.0)
    r = regression_fairness_report(y, yhat, s, thresholds=None, n_bootstrap=50)
    labels = s["group"].to_numpy()
    mf = MetricFrame(metrics=mean_absolute_error, y_true=y, y_pred=yhat, sensitive_features=labels)
    for g in ("A", "B"):
        row, m = _group(r, "group", g), labels == g
        assert row["count"] == m.sum() and row["mae"] == pytest.approx(mf.by_group[g])
        assert row["mean_prediction"] == pytest.approx(yhat[m].mean())
        assert row["mean_residual"] == pytest.approx((y[m] - yhat[m]).mean())
        lo, hi = row["ci"]["mean_residual"]
        assert lo < row["mean_residual"] < hi
    gap = _gap(r, "group", "mae_difference")
    assert gap["value"] == pytest.approx(mf.difference())
    rel = _gap(r, "group", "mae_relative_difference")
    assert rel["value"] == pytest.approx(gap["value"] / mean_absolute_error(y, yhat))
    assert r.features == ["group", "region", "group & region"] and len(r.groups["group & region"]) == 6
    assert r.overall["mae"] == pytest.approx(mean_absolute_error(y, yhat))


def test_under_predicted_group_has_a_positive_mean_residual_and_exceeds():
    y, yhat, s = make_data(under=2.0)
    r = regression_fairness_report(y, yhat, s, thresholds={"mean_residual_difference": 0.5})
    b, a = _group(r, "group", "B"), _group(r, "group", "A")
    assert b["mean_residual"] == pytest.approx(2.0, abs=0.3) and b["ci"]["mean_residual"][0] > 1.0
    assert abs(a["mean_residual"]) < 0.3 and b["mean_prediction"] < b["mean_prediction"] + b["mean_residual"]
    gap = _gap(r, "group", "mean_residual_difference")
    assert gap["verdict"] == "exceeds threshold" and gap["max_group"] == "B" and gap["min_group"] == "A"
    assert gap["ci_low"] > 1.5 and r.verdict == "exceeds threshold"
    assert _gap(r, "group", "mae_difference")["verdict"] == "no threshold"


def test_unbiased_model_is_within_threshold():
    y, yhat, s = make_data(under=0.0)
    r = regression_fairness_report(y, yhat, s.select("group"), thresholds={"mean_residual_difference": 0.5,
                                                                          "mae_relative_difference": 0.2})
    assert all(g["verdict"] == "within threshold" for g in r.gaps if g["threshold"] is not None)
    assert r.verdict == "within threshold" and r.features == ["group"]


def test_intervals_are_seeded_and_per_feature():
    y, yhat, s = make_data(under=1.0)
    one = regression_fairness_report(y, yhat, s.select("group"), thresholds=None, seed=3)
    again = regression_fairness_report(y, yhat, s.select("group"), thresholds=None, seed=3)
    two = regression_fairness_report(y, yhat, s, thresholds=None, seed=3)
    other = regression_fairness_report(y, yhat, s.select("group"), thresholds=None, seed=4)
    assert one.to_dict() == again.to_dict()
    assert two.groups["group"] == one.groups["group"]  # the second feature changes nothing of the first
    assert [g for g in two.gaps if g["feature"] == "group"] == one.gaps
    assert other.groups["group"] != one.groups["group"]
    reordered = regression_fairness_report(y, yhat, s.select("region", "group"), thresholds=None, seed=3)
    assert reordered.groups["group"] == one.groups["group"]


def test_small_group_is_insufficient_and_excluded():
    y, yhat, s = make_data(600, under=1.0)
    s = s.with_columns(pl.when(pl.int_range(pl.len()) < 12).then(pl.lit("C")).otherwise("group").alias("group"))
    s = s.with_columns(pl.when(pl.int_range(pl.len()) == 20).then(None).otherwise("region").alias("region"))
    r = regression_fairness_report(y, yhat, s, thresholds={"mae_difference": 5.0})
    c = _group(r, "group", "C")
    assert c["evidence"] == "insufficient evidence" and "12 rows" in c["note"]
    gap = _gap(r, "group", "mae_difference")
    assert gap["groups_excluded"] == ["C"] and gap["groups_used"] == ["A", "B"]
    assert "(missing)" in [row["group"] for row in r.groups["region"]]
    assert r.summary()["insufficient_groups"]["group"] == ["C"]
    one = regression_fairness_report(y[:40], yhat[:40], s.head(40).select("group"),
                                     thresholds={"mae_difference": 5.0})
    assert _gap(one, "group", "mae_difference")["verdict"] == "insufficient evidence — review"


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"thresholds": {"equalized_odds_difference": 0.1}}, "argument 'thresholds': unknown value"),
    ({"thresholds": {"mae_difference": -1.0}}, "argument 'thresholds': mae_difference"),
    ({"n_bootstrap": 5}, "argument 'n_bootstrap'"),
    ({"seed": -1}, "argument 'seed'"),
    ({"confidence_level": 1.5}, "argument 'confidence_level'"),
])
def test_bad_fairness_options(kwargs, match):
    y, yhat, s = make_data(100)
    with pytest.raises(EvaluationError, match=match):
        regression_fairness_report(y, yhat, s, **{"thresholds": None, **kwargs})


def test_fairness_report_views_and_round_trip(tmp_path):
    y, yhat, s = make_data(under=1.0)
    r = regression_fairness_report(y, yhat, s.to_pandas(), thresholds={"mae_difference": 1.0}, n_bootstrap=50)
    d = json.loads(r.to_json())
    assert d["task"] == "regression" and d["verdict"] == r.verdict and "threshold" not in d
    again = RegressionFairnessReport.from_dict(json.loads(r.save(tmp_path / "f.json").read_text()))
    assert again.to_dict() == d
    assert "mean_residual" in r._repr_html_() and r.summary()["worst_gaps"]["mae_difference"]["feature"]
    ax = r.plot("group", "mean_residual")
    assert ax.get_title().startswith("mean_residual by group") and len(ax.patches) == 2
    with pytest.raises(EvaluationError, match="argument 'metric'"):
        r.plot("group", "tpr")
    flat = r.group_table("region")
    assert {"mae_ci_low", "mae_ci_high"} <= set(flat[0])
    pd_equal = regression_fairness_report(y, yhat, s, thresholds={"mae_difference": 1.0}, n_bootstrap=50)
    assert pd_equal.to_dict() == r.to_dict()
    plt.close("all")
