"""The metric registry (private; public through :mod:`workbench.evaluation.metrics`).

Each metric is ``f(y_true, y_prob, *, threshold=0.5) -> float`` over validated arrays: 0/1 int8 labels and
float64 probabilities. A probability counts as a positive prediction when it is *above* the threshold (``>``),
as in the brief's ``target.decision_threshold`` and scikit-learn's ``predict`` at 0.5. Ranking metrics and
balanced accuracy are NaN when ``y_true`` holds only one class.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    brier_score_loss,
    f1_score,
    log_loss,
    roc_auc_score,
)

from ._heldout import GREATER_IS_BETTER

__all__ = ["GREATER_IS_BETTER", "METRICS", "MetricFn", "both_classes", "predict_labels"]

MetricFn = Callable[..., float]


def predict_labels(y_prob: np.ndarray, *, threshold: float = 0.5) -> np.ndarray:
    """0/1 labels (int8): 1 where the probability is above ``threshold``."""
    return (np.asarray(y_prob) > threshold).astype(np.int8)


def both_classes(y: np.ndarray) -> bool:
    return 0 < int(y.sum()) < y.size


def _pr_auc(y_true: np.ndarray, y_prob: np.ndarray, *, threshold: float = 0.5) -> float:
    return float(average_precision_score(y_true, y_prob)) if both_classes(y_true) else math.nan


def _roc_auc(y_true: np.ndarray, y_prob: np.ndarray, *, threshold: float = 0.5) -> float:
    return float(roc_auc_score(y_true, y_prob)) if both_classes(y_true) else math.nan


def _f1(y_true: np.ndarray, y_prob: np.ndarray, *, threshold: float = 0.5) -> float:
    return float(f1_score(y_true, predict_labels(y_prob, threshold=threshold), zero_division=0.0))


def _accuracy(y_true: np.ndarray, y_prob: np.ndarray, *, threshold: float = 0.5) -> float:
    return float(accuracy_score(y_true, predict_labels(y_prob, threshold=threshold)))


def _balanced_accuracy(y_true: np.ndarray, y_prob: np.ndarray, *, threshold: float = 0.5) -> float:
    if not both_classes(y_true):
        return math.nan
    return float(balanced_accuracy_score(y_true, predict_labels(y_prob, threshold=threshold)))


def _log_loss(y_true: np.ndarray, y_prob: np.ndarray, *, threshold: float = 0.5) -> float:
    return float(log_loss(y_true, y_prob, labels=[0, 1]))


def _brier(y_true: np.ndarray, y_prob: np.ndarray, *, threshold: float = 0.5) -> float:
    return float(brier_score_loss(y_true, y_prob, labels=[0, 1]))


#: Metric functions ``f(y_true, y_prob, *, threshold=0.5) -> float``, keyed like ``brief.PRIMARY_METRICS``.
METRICS: dict[str, MetricFn] = {
    "pr_auc": _pr_auc, "roc_auc": _roc_auc, "f1": _f1, "accuracy": _accuracy,
    "balanced_accuracy": _balanced_accuracy, "log_loss": _log_loss, "brier": _brier,
}
# GREATER_IS_BETTER (log loss and the Brier score are losses) is kept with the report, in ._heldout.
