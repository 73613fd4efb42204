"""workbench.evaluation.metrics: values cross-checked against direct scikit-learn calls; bad inputs."""

from __future__ import annotations

import json
import logging

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import polars as pl
import pytest
from sklearn.calibration import calibration_curve
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    confusion_matrix,
    f1_score,
    log_loss,
    roc_auc_score,
)
from sklearn.model_selection import StratifiedKFold

from workbench.brief import PRIMARY_METRICS
from workbench.errors import EvaluationError, WorkbenchError
from workbench.evaluation.metrics import (
    GREATER_IS_BETTER,
    METRICS,
    choose_metrics,
    compare_to_baseline,
    cross_validate_scores,
    evaluate_binary,
    predict_labels,
)


def scores(n: int = 800, seed: int = 0, rate: float = 0.25) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(int)
    p = np.clip(0.15 + 0.45 * y + rng.normal(0, 0.2, n), 0, 1)
    return y, p


def frame(n: int = 300, seed: int = 1) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    y = (X["a"] + 0.5 * X["b"] + rng.normal(0, 1, n) > 0.8).astype(int).to_numpy()
    return X, y


# ----------------------------------------------------------------------------------------------- registry
def test_registry_covers_the_brief_metrics():
    assert set(METRICS) == set(PRIMARY_METRICS)
    assert GREATER_IS_BETTER["pr_auc"] and GREATER_IS_BETTER["roc_auc"]
    assert not GREATER_IS_BETTER["log_loss"] and not GREATER_IS_BETTER["brier"]


def test_probability_at_the_threshold_is_negative():
    assert predict_labels(np.array([0.49, 0.5, 0.51]), threshold=0.5).tolist() == [0, 0, 1]


@pytest.mark.parametrize(("rate", "primary"), [(0.24, "pr_auc"), (0.8, "pr_auc"), (0.5, "roc_auc"),
                                               (0.35, "roc_auc")])
def test_choose_metrics_follows_class_balance(rate, primary):
    got, secondary = choose_metrics("binary_classification", rate)
    assert got == primary
    assert primary not in secondary and "f1" in secondary and "brier" in secondary


def test_choose_metrics_override_and_bad_input():
    primary, secondary = choose_metrics("binary_classification", 0.2, override="f1")
    assert primary == "f1" and secondary[0] == "pr_auc" and "f1" not in secondary
    with pytest.raises(EvaluationError, match="task"):
        choose_metrics("regression", 0.2)  # type: ignore[arg-type]
    with pytest.raises(EvaluationError, match="positive_rate"):
        choose_metrics("binary_classification", 1.5)
    with pytest.raises(EvaluationError, match="Did you mean 'pr_auc'"):
        choose_metrics("binary_classification", 0.2, override="pr_acu")


# ------------------------------------------------------------------------------------------ evaluate_binary
def test_evaluate_binary_matches_sklearn():
    y, p = scores()
    t = 0.4
    r = evaluate_binary(y, p, threshold=t, primary="pr_auc")
    yhat = (p > t).astype(int)
    expected = {
        "pr_auc": average_precision_score(y, p), "roc_auc": roc_auc_score(y, p), "f1": f1_score(y, yhat),
        "accuracy": accuracy_score(y, yhat), "balanced_accuracy": balanced_accuracy_score(y, yhat),
        "log_loss": log_loss(y, p), "brier": brier_score_loss(y, p),
    }
    assert r.metrics == pytest.approx(expected, rel=1e-12, abs=1e-12)
    tn, fp, fn, tp = confusion_matrix(y, yhat).ravel()
    assert r.confusion == {"tn": tn, "fp": fp, "fn": fn, "tp": tp}
    prob_true, prob_pred = calibration_curve(y, p, n_bins=10, strategy="quantile")
    assert r.calibration["prob_true"] == pytest.approx(prob_true.tolist())
    assert r.calibration["prob_pred"] == pytest.approx(prob_pred.tolist())
    assert sum(r.calibration["count"]) == y.size and len(r.calibration["count"]) == prob_true.size
    assert r.positive_rate == pytest.approx(y.mean())
    assert r.predicted_positive_rate == pytest.approx(yhat.mean())
    assert r.primary_value == r.metrics["pr_auc"]
    assert len(r.pr_curve["precision"]) <= 200


def test_evaluate_binary_accepts_series_and_booleans():
    y, p = scores(200)
    a = evaluate_binary(pl.Series(y.astype(bool)), pd.Series(p))
    b = evaluate_binary(y, p)
    assert a.metrics == b.metrics


def test_evaluation_report_views(tmp_path):
    y, p = scores(300)
    r = evaluate_binary(y, p, primary="roc_auc")
    d = json.loads(r.to_json())
    assert d["primary"] == "roc_auc" and d["greater_is_better"]["brier"] is False
    assert r.summary()["primary_value"] == r.metrics["roc_auc"]
    assert json.loads(r.save(tmp_path / "eval.json").read_text())["n"] == 300
    assert "roc_auc" in r._repr_html_() and "Calibration" in r._repr_html_()
    ax = r.plot_calibration()
    assert len(ax.lines) == 2
    assert r.plot_pr_curve(ax=ax) is ax


def test_one_class_gives_nan_ranking_metrics_and_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="workbench.evaluation.metrics"):
        r = evaluate_binary(np.zeros(20, int), np.linspace(0.1, 0.9, 20))
    assert np.isnan(r.metrics["pr_auc"]) and np.isnan(r.metrics["roc_auc"])
    assert r.metrics["accuracy"] == pytest.approx(0.5) and "one class" in caplog.text
    assert json.loads(r.to_json())["metrics"]["roc_auc"] is None


@pytest.mark.parametrize(("y", "p", "match"), [
    ([0, 1, 1], [0.1, 0.9], "lengths differ"),
    ([0, 1, 1], [0.1, 0.9, 1.2], "outside \\[0, 1\\]"),
    ([0, 1, 1], [0.1, np.nan, 0.5], "NaN"),
    ([0, 1, 2], [0.1, 0.9, 0.5], "not 0 or 1"),
    (["no", "yes", "yes"], [0.1, 0.9, 0.5], "0/1 labels"),
    ([0, 1], [[0.9, 0.1], [0.2, 0.8]], "predict_proba"),
    ([], [], "empty"),
])
def test_bad_inputs_raise_evaluation_error(y, p, match):
    with pytest.raises(EvaluationError, match=match) as info:
        evaluate_binary(y, p)
    assert isinstance(info.value, WorkbenchError)


def test_bad_options_raise():
    y, p = scores(50)
    with pytest.raises(EvaluationError, match="threshold"):
        evaluate_binary(y, p, threshold=1.0)
    with pytest.raises(EvaluationError, match="primary"):
        evaluate_binary(y, p, primary="auc")


# ----------------------------------------------------------------------------------------- cross-validation
def test_cross_validation_matches_a_manual_loop():
    X, y = frame()
    make = lambda: LogisticRegression(max_iter=200)  # noqa: E731
    r = cross_validate_scores(make, X, y, n_splits=4, seed=7, metrics=["roc_auc", "log_loss"], threshold=0.5)
    manual = []
    for train, test in StratifiedKFold(4, shuffle=True, random_state=7).split(X, y):
        m = make().fit(X.iloc[train], y[train])
        manual.append(roc_auc_score(y[test], m.predict_proba(X.iloc[test])[:, 1]))
    assert r.scores("roc_auc") == pytest.approx(manual, rel=1e-12)
    assert r.mean["roc_auc"] == pytest.approx(np.mean(manual))
    assert r.std["roc_auc"] == pytest.approx(np.std(manual, ddof=1))
    assert [f["n_test"] for f in r.folds] == [75] * 4 and all(f["fit_seconds"] > 0 for f in r.folds)
    assert set(r.summary()["cv"]) == {"roc_auc", "log_loss"}
    assert "± " in r._repr_html_() and json.loads(r.to_json())["n_splits"] == 4


def test_cross_validation_is_deterministic_and_accepts_polars():
    X, y = frame(200)
    make = lambda: LogisticRegression(max_iter=200)  # noqa: E731
    a = cross_validate_scores(make, X, y, n_splits=3, seed=3, metrics=["pr_auc"])
    b = cross_validate_scores(make, pl.from_pandas(X), y, n_splits=3, seed=3, metrics=["pr_auc"])
    assert a.scores("pr_auc").tolist() == b.scores("pr_auc").tolist()


def test_cross_validation_bad_inputs():
    X, y = frame(60)
    model = LogisticRegression()
    with pytest.raises(EvaluationError, match="not a new classifier"):
        cross_validate_scores(lambda: model, X, y, n_splits=2)
    with pytest.raises(EvaluationError, match="minority class"):
        cross_validate_scores(LogisticRegression, X, y, n_splits=int(y.sum()) + 1)
    with pytest.raises(EvaluationError, match="lengths differ"):
        cross_validate_scores(LogisticRegression, X.iloc[:10], y)
    with pytest.raises(EvaluationError, match="fold 0"):
        cross_validate_scores(lambda: LogisticRegression(C=-1.0), X, y, n_splits=2)


# ----------------------------------------------------------------------------------------------- baseline
def test_compare_to_baseline_signs_deltas_so_positive_is_better():
    cand = {"pr_auc": 0.70, "log_loss": 0.30, "brier": 0.10}
    base = {"pr_auc": 0.50, "log_loss": 0.45, "roc_auc": 0.7}
    out = compare_to_baseline(cand, base, primary="pr_auc", min_improvement=0.05)
    assert out["deltas"] == pytest.approx({"pr_auc": 0.20, "log_loss": 0.15})
    assert out["beats_baseline"] and out["missing"] == ["brier", "roc_auc"]
    worse = compare_to_baseline({"log_loss": 0.5}, {"log_loss": 0.4}, primary="log_loss")
    assert worse["primary_delta"] == pytest.approx(-0.1) and not worse["beats_baseline"]
    assert not compare_to_baseline(cand, base, primary="pr_auc", min_improvement=0.3)["beats_baseline"]


def test_compare_to_baseline_bad_input():
    with pytest.raises(EvaluationError, match="baseline"):
        compare_to_baseline({"pr_auc": 0.5}, {"roc_auc": 0.5}, primary="pr_auc")
    with pytest.raises(EvaluationError, match="candidate"):
        compare_to_baseline({"pr_auc": 0.5, "auc": 1.0}, {"pr_auc": 0.5}, primary="pr_auc")
