"""workbench.evaluation.cross_validate_task: folds equal scikit-learn's, strata errors, the binary path unchanged."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.model_selection import KFold, StratifiedKFold

from workbench.errors import EvaluationError
from workbench.evaluation import (
    MULTICLASS_GREATER_IS_BETTER,
    MULTICLASS_METRICS,
    REGRESSION_GREATER_IS_BETTER,
    REGRESSION_METRICS,
    CVReport,
    cross_validate_scores,
    cross_validate_task,
    regression_strata,
)


def regression_data(n: int = 200, seed: int = 0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = 3 * X["a"].to_numpy() - X["b"].to_numpy() + rng.normal(0, 0.5, n) + 10
    return X, y


def multiclass_data(n: int = 240, seed: int = 0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = pd.DataFrame({"a": y + rng.normal(0, 0.8, n), "b": rng.normal(size=n)})
    return X, y


def predict(model, X):
    return model.predict(X)


def proba(model, X):
    return model.predict_proba(X)


@pytest.mark.parametrize("stratified", [False, True])
def test_regression_folds_equal_a_manual_loop(stratified):
    X, y = regression_data()
    strata = regression_strata(y, n_splits=4) if stratified else None
    r = cross_validate_task(LinearRegression, X, y, score=predict, metrics=REGRESSION_METRICS,
                            greater_is_better=REGRESSION_GREATER_IS_BETTER, n_splits=4, seed=2, stratify=strata)
    splitter = (StratifiedKFold(4, shuffle=True, random_state=2).split(X, strata) if stratified
                else KFold(4, shuffle=True, random_state=2).split(X))
    for fold, (train, test) in zip(r.folds, splitter, strict=True):
        yhat = LinearRegression().fit(X.iloc[train], y[train]).predict(X.iloc[test])
        assert fold["n_test"] == test.size
        for m, fn in REGRESSION_METRICS.items():
            assert fold[m] == pytest.approx(fn(y[test], yhat))
    assert r.threshold is None and r.stratified is stratified and r.metrics == list(REGRESSION_METRICS)
    d = r.to_dict()
    assert d["greater_is_better"]["r2"] is True and d["stratified"] is stratified
    assert ("stratified" in r._repr_html_()) and "threshold" not in r._repr_html_()
    assert CVReport.from_dict(json.loads(r.to_json())).to_dict() == json.loads(r.to_json())


def test_multiclass_folds_are_stratified_on_the_classes():
    X, y = multiclass_data()
    r = cross_validate_task(lambda: LogisticRegression(max_iter=500), X, y, score=proba, metrics=MULTICLASS_METRICS,
                            greater_is_better=MULTICLASS_GREATER_IS_BETTER, n_splits=3, seed=0, stratify=y)
    for fold, (train, test) in zip(r.folds, StratifiedKFold(3, shuffle=True, random_state=0).split(X, y),
                                   strict=True):
        p = LogisticRegression(max_iter=500).fit(X.iloc[train], y[train]).predict_proba(X.iloc[test])
        assert fold["macro_f1"] == pytest.approx(MULTICLASS_METRICS["macro_f1"](y[test], p))
    assert 0.4 < r.mean["accuracy"] <= 1 and r.std["log_loss"] >= 0
    again = cross_validate_task(lambda: LogisticRegression(max_iter=500), X, y, score=proba,
                                metrics={"accuracy": MULTICLASS_METRICS["accuracy"]},
                                greater_is_better={"accuracy": True}, n_splits=3, seed=0, stratify=y)
    assert again.scores("accuracy").tolist() == r.scores("accuracy").tolist()


def test_a_rare_class_is_named_in_the_error():
    X, y = multiclass_data(120)
    y = y.copy()
    y[np.flatnonzero(y == 2)[2:]] = 1  # class 2 keeps two rows
    with pytest.raises(EvaluationError, match=r"argument 'stratify'.*label 2 has 2 row\(s\), fewer than n_splits") as e:
        cross_validate_task(LogisticRegression, X, y, score=proba, metrics=MULTICLASS_METRICS,
                            greater_is_better=MULTICLASS_GREATER_IS_BETTER, n_splits=3, stratify=y)
    assert "n_splits <= 2" in e.value.hint and "merge rare classes" in e.value.hint
    r = cross_validate_task(LogisticRegression, X, y, score=proba, metrics={"accuracy": MULTICLASS_METRICS["accuracy"]},
                            greater_is_better={"accuracy": True}, n_splits=2, stratify=y)
    assert r.n_splits == 2


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"greater_is_better": {"mae": False}}, "argument 'greater_is_better': has no entry"),
    ({"metrics": {}}, "argument 'metrics': is empty"),
    ({"n_splits": 1}, "argument 'n_splits'"),
    ({"stratify": np.zeros(10)}, "argument 'stratify': lengths differ"),
    ({"score": lambda m, X: m.predict(X)[:3]}, "argument 'score': fold 0"),
    ({"score": lambda m, X: m.no_such_method(X)}, "argument 'score': fold 0: scoring failed"),
])
def test_bad_arguments(kwargs, match):
    X, y = regression_data(60)
    args = {"score": predict, "metrics": REGRESSION_METRICS, "greater_is_better": REGRESSION_GREATER_IS_BETTER,
            "n_splits": 3, **kwargs}
    with pytest.raises(EvaluationError, match=match):
        cross_validate_task(LinearRegression, X, y, **args)
    model = LinearRegression()
    with pytest.raises(EvaluationError, match="argument 'make_model'"):
        cross_validate_task(lambda: model, X, y, score=predict, metrics=REGRESSION_METRICS,
                            greater_is_better=REGRESSION_GREATER_IS_BETTER, n_splits=2)


def test_binary_cv_report_is_unchanged():
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(size=120)})
    y = (X["a"] + rng.normal(0, 1, 120) > 0).astype(int).to_numpy()
    r = cross_validate_scores(LogisticRegression, X, y, n_splits=3, seed=1, metrics=["roc_auc"])
    d = r.to_dict()
    assert list(d) == ["n_splits", "seed", "threshold", "metrics", "folds", "mean", "std", "fit_seconds"]
    assert r.greater_is_better is None and r.threshold == 0.5
    assert "3-fold stratified cross-validation (shuffled, seed 1), threshold 0.5" in r._repr_html_()
    assert CVReport.from_dict(json.loads(r.to_json())).to_dict() == json.loads(r.to_json())
