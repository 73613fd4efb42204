"""The task concept: brief keys checked against the task, target checks and encoding, stratification, and the
per-task baselines and candidates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
import yaml

from testkit import ROOT
from workbench.brief import load_brief
from workbench.errors import BriefError, DataError
from workbench.modeling import baselines_for, candidates_for, fit_model
from workbench.tasks import TASKS, get_task


def _brief(tmp_path, **over):
    raw = {"name": "t", "objective": "x", "task": "regression", "data": {"train": "d.parquet"},
           "target": {"column": "y"}, "success": {"metric": "mae", "threshold": 1.0}, "latency_budget_ms": 10}
    raw.update(over)
    p = tmp_path / "b.yaml"
    p.write_text(yaml.safe_dump(raw))
    return p


def test_every_task_names_its_own_catalogue():
    assert set(TASKS) == {"binary_classification", "multiclass_classification", "regression"}
    assert get_task("regression").default_primary == "mae"
    assert get_task("multiclass_classification").default_primary == "macro_f1"
    assert get_task("binary_classification").default_primary == "pr_auc"
    for t in TASKS.values():
        assert t.default_primary in t.metrics
        assert set(t.default_gap_thresholds) <= set(t.gap_metrics)
    assert not get_task("regression").metrics["mae"] and get_task("regression").metrics["r2"]
    with pytest.raises(ValueError, match="unknown task"):
        get_task("ranking")


def test_brief_refuses_a_metric_of_another_task(tmp_path):
    with pytest.raises(BriefError) as e:
        load_brief(_brief(tmp_path, success={"metric": "pr_auc", "threshold": 0.5}))
    assert e.value.key == "success.metric"
    assert "mae, rmse, r2" in str(e.value)


def test_brief_refuses_positive_label_for_regression(tmp_path):
    with pytest.raises(BriefError) as e:
        load_brief(_brief(tmp_path, target={"column": "y", "positive_label": 1}))
    assert "target.positive_label" in str(e.value) and "does not apply" in str(e.value)


def test_brief_requires_positive_label_for_binary(tmp_path):
    with pytest.raises(BriefError, match="target.positive_label"):
        load_brief(_brief(tmp_path, task="binary_classification", success={"metric": "pr_auc", "threshold": .5}))


def test_brief_refuses_a_fairness_gap_of_another_task(tmp_path):
    with pytest.raises(BriefError) as e:
        load_brief(_brief(tmp_path, fairness={"thresholds": {"equalized_odds_difference": 0.2}}))
    assert "fairness.thresholds.equalized_odds_difference" in str(e.value)
    assert "mae_difference" in str(e.value)


def test_brief_defaults_follow_the_task(tmp_path):
    b = load_brief(_brief(tmp_path, success={"threshold": 1.0}))
    assert b.primary_metric == "mae" and b.threshold is None
    assert set(b.fairness.thresholds) <= set(get_task("regression").gap_metrics)


def test_binned_sensitive_feature_in_the_brief(tmp_path):
    b = load_brief(_brief(tmp_path, sensitive_features=["race", {"column": "Age", "bins": [35, 50]}]))
    assert b.sensitive_features == ["race", "age"]
    assert b.sensitive_bins["age"].bins == [35.0, 50.0]
    with pytest.raises(BriefError, match="strictly increasing"):
        load_brief(_brief(tmp_path, sensitive_features=[{"column": "age", "bins": [50, 35]}]))


def test_bundled_briefs_load():
    for name, task in (("adult", "binary_classification"), ("wage", "regression"),
                       ("penguins", "multiclass_classification")):
        assert load_brief(ROOT / "briefs" / f"{name}.yaml").task == task


@pytest.mark.parametrize("values, task, match", [
    (["a", "b", "c", "d"] * 5, "regression", "must be numeric"),
    ([1, 2] * 10, "multiclass_classification", "at least three classes"),
    (["a", "b", "c", "c"] * 5 + ["z"], "multiclass_classification", "class 'z' has 1 row"),
    ([0.5, 1.5, 2.25] * 5, "multiclass_classification", "fractional"),
    ([1.0] * 20, "regression", "constant"),
])
def test_target_checks_name_the_problem(values, task, match):
    brief = type("B", (), {"target": type("T", (), {"column": "y", "positive_label": None})(), "source": None})()
    with pytest.raises(DataError, match=match) as e:
        get_task(task).check_target(pl.Series("y", values), brief=brief, path="f.csv")
    assert e.value.column == "y"


def test_targets_that_fit_pass_and_encode():
    brief = type("B", (), {"target": type("T", (), {"column": "y", "positive_label": None})()})()
    mc = get_task("multiclass_classification")
    col = pl.Series("y", ["b", "a", "c", None, "a"])
    mc.check_target(pl.Series("y", ["b", "a", "c"] * 3), brief=brief)
    assert mc.classes(col, brief=brief) == ["a", "b", "c"]
    assert mc.encode_target(col, brief=brief).tolist() == [1, 0, 2, -1, 0]
    reg = get_task("regression")
    reg.check_target(pl.Series("y", np.arange(20.0)), brief=brief)
    assert reg.encode_target(pl.Series("y", [1, 2]), brief=brief).dtype == np.float64


def test_regression_stratifies_on_quantile_bins():
    y = np.random.default_rng(0).lognormal(size=1000)
    bins = get_task("regression").stratify_labels(y)
    assert len(np.unique(bins)) == 10
    assert np.bincount(bins).min() >= 90  # every bin holds about a tenth of the rows
    # ordered: a higher bin never holds a smaller value than a lower bin
    order = np.argsort(y)
    assert np.all(np.diff(bins[order]) >= 0)


def _frame(n=500, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                      "c": rng.choice(["x", "y", "z", ""], n).astype(object)})
    X.loc[:4, "a"] = np.nan
    return X, rng


def test_regression_baselines_and_candidates_fit_and_describe():
    X, rng = _frame()
    y = 3 * X["a"].fillna(0).to_numpy() + np.where(X["c"] == "x", 2.0, 0.0) + rng.normal(size=len(X))
    assert list(baselines_for("regression")) == ["median", "mean", "rule"]
    assert {"ridge", "hgb"} <= set(candidates_for("regression"))
    fitted = {n: fit_model(n, X, y, seed=0, task="regression") for n in [*baselines_for("regression"), "ridge",
                                                                          "hgb"]}
    assert "training median" in fitted["median"].description
    assert fitted["rule"].description.startswith("one-feature rule on a:")
    mae = {n: float(np.mean(np.abs(f.scores(X) - y))) for n, f in fitted.items()}
    assert mae["hgb"] < mae["rule"] < mae["median"]  # each level of model does better on its own data
    assert fitted["ridge"].scores(X).shape == (len(X),)


def test_multiclass_baselines_and_candidates_fit_and_describe():
    X, rng = _frame()
    y = np.where(X["a"].fillna(0) > 0.5, 2, np.where(X["c"] == "x", 1, 0))
    classes = ["low", "mid", "high"]
    fitted = {n: fit_model(n, X, y, seed=0, task="multiclass_classification", classes=classes)
              for n in [*baselines_for("multiclass_classification"), "logreg", "hgb"]}
    assert "low" in fitted["majority"].description and "class shares" in fitted["majority"].description
    assert "high" in fitted["rule"].description
    for f in fitted.values():
        p = f.scores(X)
        assert p.shape == (len(X), 3) and np.allclose(p.sum(axis=1), 1.0)
    acc = {n: float(np.mean(np.argmax(f.scores(X), axis=1) == y)) for n, f in fitted.items()}
    assert acc["hgb"] > acc["majority"]


def test_a_name_of_another_task_is_refused():
    X, _ = _frame(60)
    from workbench.errors import ModelError

    with pytest.raises(ModelError, match="ridge"):
        fit_model("logreg", X, np.arange(60.0), seed=0, task="regression")
