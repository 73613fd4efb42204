"""Metrics for binary classifiers: the metric registry, the choice of the primary metric, held-out evaluation,
stratified cross-validation and the comparison with a baseline.

* :data:`METRICS` / :data:`GREATER_IS_BETTER` -- every metric a brief may name, by name;
* :func:`choose_metrics` -- the methodology's choice: PR-AUC when the minority class is under 35%;
* :func:`evaluate_binary` -- an :class:`EvaluationReport`: metrics, confusion counts, calibration, PR curve;
* :func:`cross_validate_scores` -- seeded stratified k-fold, a :class:`CVReport` (per fold, mean and std);
* :func:`compare_to_baseline` -- metric deltas signed so that positive means the candidate is better.

A probability counts as a positive prediction when it is *above* the threshold (``>``), as in the brief's
``target.decision_threshold`` and scikit-learn's ``predict`` at 0.5 (:func:`predict_labels`). Ranking metrics
(PR-AUC, ROC-AUC) and balanced accuracy are NaN when ``y_true`` holds only one class.

The report classes and :data:`GREATER_IS_BETTER` are defined without scikit-learn (:mod:`._heldout`,
:mod:`._cv_report`) and re-exported here, so reading a saved report back never imports it.
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve

from ..brief import PRIMARY_METRICS
from ..errors import EvaluationError
from ._checks import (
    check_choice,
    check_probabilities,
    check_same_length,
    check_target,
    check_threshold,
)
from ._crossval import CVReport, cross_validate_scores
from ._heldout import EvaluationReport
from ._scoring import GREATER_IS_BETTER, METRICS, both_classes, predict_labels

__all__ = [
    "METRICS",
    "GREATER_IS_BETTER",
    "IMBALANCE_CUTOFF",
    "CVReport",
    "EvaluationReport",
    "choose_metrics",
    "compare_to_baseline",
    "cross_validate_scores",
    "evaluate_binary",
    "predict_labels",
]

log = logging.getLogger(__name__)

IMBALANCE_CUTOFF = 0.35  # minority-class rate below which the data counts as imbalanced
_CURVE_POINTS = 200  # the PR curve kept in a report is thinned to about this many points


def choose_metrics(task: Literal["binary_classification"], positive_rate: float, *,
                   override: str | None = None) -> tuple[str, list[str]]:
    """The primary and secondary metrics the methodology prescribes for this class balance.

    Parameters
    ----------
    task:
        Only ``"binary_classification"`` is supported.
    positive_rate:
        Share of positive labels in the training data.
    override:
        The brief's ``success.metric``: when given it becomes the primary, and the suggested primary moves to
        the secondary list.

    Returns
    -------
    (primary, secondary)
        Imbalanced data (minority class under :data:`IMBALANCE_CUTOFF`): ``pr_auc`` and
        ``[roc_auc, f1, accuracy, brier]``; balanced data: ``roc_auc`` and ``[pr_auc, f1, accuracy, brier]``.
    """
    check_choice(task, ("binary_classification",), argument="task")
    ok = isinstance(positive_rate, numbers.Real) and not isinstance(positive_rate, bool)
    if not (ok and 0 <= positive_rate <= 1):
        raise EvaluationError(f"expected a rate in [0, 1], got {positive_rate!r}", argument="positive_rate")
    if min(positive_rate, 1 - positive_rate) < IMBALANCE_CUTOFF:
        primary, secondary = "pr_auc", ["roc_auc", "f1", "accuracy", "brier"]
    else:
        primary, secondary = "roc_auc", ["pr_auc", "f1", "accuracy", "brier"]
    if override is not None and override != primary:
        check_choice(override, PRIMARY_METRICS, argument="override")
        secondary = [primary, *(m for m in secondary if m != override)]
        primary = override
    return primary, secondary


def _calibration(y: np.ndarray, p: np.ndarray, n_bins: int) -> dict[str, Any]:
    out: dict[str, Any] = {"strategy": "quantile", "n_bins": n_bins, "prob_pred": [], "prob_true": [],
                           "count": [], "ece": None}
    if not both_classes(y):
        return out
    prob_true, prob_pred = calibration_curve(y, p, n_bins=n_bins, strategy="quantile")
    edges = np.percentile(p, np.linspace(0, 100, n_bins + 1))  # the same bins as scikit-learn's
    count = np.bincount(np.searchsorted(edges[1:-1], p), minlength=n_bins)
    count = count[count > 0]
    out.update(prob_pred=prob_pred.tolist(), prob_true=prob_true.tolist(), count=count.tolist(),
               ece=float(np.sum(count / y.size * np.abs(prob_true - prob_pred))))
    return out


def _pr_curve(y: np.ndarray, p: np.ndarray) -> dict[str, list[float]]:
    if not both_classes(y):
        return {"precision": [], "recall": []}
    precision, recall, _ = precision_recall_curve(y, p)
    keep = np.linspace(0, precision.size - 1, min(_CURVE_POINTS, precision.size)).round().astype(int)
    keep = np.unique(keep)
    return {"precision": precision[keep].tolist(), "recall": recall[keep].tolist()}


def evaluate_binary(y_true: Any, y_prob: Any, *, threshold: float = 0.5, primary: str = "pr_auc",
                    n_bins: int = 10) -> EvaluationReport:
    """Evaluate predicted probabilities against 0/1 labels.

    Parameters
    ----------
    y_true:
        0/1 (or boolean) labels, 1 for the positive label.
    y_prob:
        Probability of the positive label, in [0, 1].
    threshold:
        Probability above which a prediction is positive (f1, accuracy, balanced accuracy, confusion counts).
    primary:
        The metric the report leads with (a key of :data:`METRICS`).
    n_bins:
        Quantile bins of the calibration curve.

    Returns
    -------
    EvaluationReport

    Raises
    ------
    EvaluationError
        Lengths differ, labels are not 0/1, probabilities are NaN or outside [0, 1], or an option is unknown.
    """
    y = check_target(y_true)
    p = check_probabilities(y_prob)
    n = check_same_length(y_true=y, y_prob=p)
    threshold = check_threshold(threshold)
    check_choice(primary, PRIMARY_METRICS, argument="primary")
    if not both_classes(y):
        log.warning("y_true holds one class only: PR-AUC, ROC-AUC, balanced accuracy and calibration "
                    "are undefined")
    yhat = predict_labels(p, threshold=threshold)
    tp = int(np.sum(yhat & y))
    fp = int(yhat.sum()) - tp
    fn = int(y.sum()) - tp
    return EvaluationReport(
        n=n, positive_rate=float(y.mean()), predicted_positive_rate=float(yhat.mean()), threshold=threshold,
        primary=primary, metrics={m: f(y, p, threshold=threshold) for m, f in METRICS.items()},
        confusion={"tn": n - tp - fp - fn, "fp": fp, "fn": fn, "tp": tp},
        calibration=_calibration(y, p, n_bins), pr_curve=_pr_curve(y, p),
    )


def compare_to_baseline(candidate: Mapping[str, float], baseline: Mapping[str, float], *, primary: str,
                        min_improvement: float = 0.0) -> dict[str, Any]:
    """Candidate minus baseline for every metric both have, signed so that a positive delta means better.

    Parameters
    ----------
    candidate, baseline:
        Metric values by name (e.g. ``EvaluationReport.metrics`` or ``CVReport.mean``).
    primary:
        The metric that decides; both sides must have it.
    min_improvement:
        The margin (the brief's ``baseline.min_improvement``) the primary delta must exceed.

    Returns
    -------
    dict
        ``primary``, ``primary_delta``, ``min_improvement``, ``beats_baseline`` (primary delta above the
        margin), ``deltas`` (every common metric), ``missing`` (metrics only one side has), ``candidate`` and
        ``baseline`` (the values compared).
    """
    check_choice(primary, PRIMARY_METRICS, argument="primary")
    for side, values in (("candidate", candidate), ("baseline", baseline)):
        for m in values:
            check_choice(m, PRIMARY_METRICS, argument=side)
        if primary not in values:
            raise EvaluationError(f"has no value for the primary metric {primary!r}", argument=side)
    common = [m for m in PRIMARY_METRICS if m in candidate and m in baseline]
    deltas = {m: (1.0 if GREATER_IS_BETTER[m] else -1.0) * (float(candidate[m]) - float(baseline[m]))
              for m in common}
    return {"primary": primary, "primary_delta": deltas[primary], "min_improvement": float(min_improvement),
            "beats_baseline": bool(deltas[primary] > min_improvement), "deltas": deltas,
            "missing": sorted(set(candidate) ^ set(baseline)),
            "candidate": {m: float(candidate[m]) for m in common},
            "baseline": {m: float(baseline[m]) for m in common}}
