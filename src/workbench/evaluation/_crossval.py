"""Seeded stratified k-fold cross-validation (private; public through :mod:`workbench.evaluation.metrics`)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from sklearn.model_selection import StratifiedKFold

from .._report import Report, html_table
from ..brief import PRIMARY_METRICS
from ..errors import EvaluationError
from ._checks import check_choice, check_probabilities, check_target, check_threshold
from ._scoring import METRICS

log = logging.getLogger(__name__)


@dataclass
class CVReport(Report):
    """Per-fold metric values and fit times of a stratified k-fold; ``mean`` and ``std`` (ddof=1) per metric.

    ``folds`` holds one dict per fold: ``fold``, ``n_train``, ``n_test``, ``fit_seconds`` and each metric.
    """

    n_splits: int
    seed: int
    threshold: float
    metrics: list[str]
    folds: list[dict[str, Any]]
    title: str = "Cross-validation"

    def scores(self, metric: str) -> np.ndarray:
        """The per-fold values of one metric."""
        check_choice(metric, self.metrics, argument="metric")
        return np.array([f[metric] for f in self.folds], dtype=float)

    @property
    def mean(self) -> dict[str, float]:
        return {m: float(np.mean(self.scores(m))) for m in self.metrics}

    @property
    def std(self) -> dict[str, float]:
        return {m: float(np.std(self.scores(m), ddof=1)) for m in self.metrics}

    @property
    def fit_seconds(self) -> list[float]:
        return [f["fit_seconds"] for f in self.folds]

    def to_dict(self) -> dict:
        fit = self.fit_seconds
        return {"n_splits": self.n_splits, "seed": self.seed, "threshold": self.threshold,
                "metrics": self.metrics, "folds": self.folds, "mean": self.mean, "std": self.std,
                "fit_seconds": {"mean": float(np.mean(fit)), "total": float(np.sum(fit))}}

    def summary(self) -> dict:
        mean, std = self.mean, self.std
        return {"cv": {m: {"mean": mean[m], "std": std[m]} for m in self.metrics},
                "fit_seconds_mean": float(np.mean(self.fit_seconds))}

    def _html_body(self) -> str:
        mean, std = self.mean, self.std
        rows = [{"metric": m, "mean ± std": f"{mean[m]:.4f} ± {std[m]:.4f}",
                 **{f"fold {f['fold']}": f[m] for f in self.folds}} for m in self.metrics]
        rows.append({"metric": "fit seconds", "mean ± std": f"{np.mean(self.fit_seconds):.3f}",
                     **{f"fold {f['fold']}": f["fit_seconds"] for f in self.folds}})
        return (f"<p>{self.n_splits}-fold stratified cross-validation (shuffled, seed {self.seed}), "
                f"threshold {self.threshold:g}</p>" + html_table(rows))


def _rows(X: Any, idx: np.ndarray) -> Any:
    return X.iloc[idx] if hasattr(X, "iloc") else X[idx]


def cross_validate_scores(make_model: Callable[[], Any], X: Any, y: Any, *, n_splits: int = 5, seed: int = 0,
                          metrics: Sequence[str] | None = None, threshold: float = 0.5) -> CVReport:
    """Stratified, shuffled, seeded k-fold cross-validation of a model factory.

    Parameters
    ----------
    make_model:
        Called once per fold; returns a new unfitted estimator with ``fit`` and ``predict_proba``.
    X:
        Feature frame (pandas; polars frames and numpy arrays also work), one row per label.
    y:
        0/1 labels.
    n_splits, seed:
        Number of folds, and the seed of the shuffle (same seed, same folds).
    metrics:
        Names from :data:`METRICS`; all of them by default.
    threshold:
        Probability above which a prediction is positive.

    Returns
    -------
    CVReport

    Raises
    ------
    EvaluationError
        Bad labels or lengths, too few rows of the minority class for ``n_splits``, a factory that does not
        return a new classifier, or a fold whose fit fails (the message names the fold).
    """
    yy = check_target(y, argument="y")
    n = yy.size
    if len(X) != n:
        raise EvaluationError(f"lengths differ: X has {len(X)} rows, y has {n}", argument="X",
                              hint="pass features and labels for the same rows")
    threshold = check_threshold(threshold)
    names = [check_choice(m, PRIMARY_METRICS, argument="metrics") for m in (metrics or list(METRICS))]
    minority = int(np.bincount(yy, minlength=2).min())
    if not isinstance(n_splits, int) or n_splits < 2 or minority < n_splits:
        raise EvaluationError(f"cannot make {n_splits!r} stratified folds: the minority class has "
                              f"{minority} rows", argument="n_splits",
                              hint="use 2 <= n_splits <= rows of the minority class")
    folds: list[dict[str, Any]] = []
    previous = None
    splitter = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    for k, (train, test) in enumerate(splitter.split(np.zeros(n), yy)):
        model = make_model()
        if not (hasattr(model, "fit") and hasattr(model, "predict_proba")) or model is previous:
            raise EvaluationError(f"returned {type(model).__name__}, not a new classifier with "
                                  "fit/predict_proba", argument="make_model",
                                  hint="pass a function that builds the estimator each time it is called")
        previous = model
        start = time.perf_counter()
        try:
            model.fit(_rows(X, train), yy[train])
        except Exception as exc:
            raise EvaluationError(f"fold {k}: fitting {type(model).__name__} failed: {exc}",
                                  argument="make_model") from exc
        seconds = time.perf_counter() - start
        proba = np.asarray(model.predict_proba(_rows(X, test)))[:, list(model.classes_).index(1)]
        p = check_probabilities(proba, argument=f"predict_proba (fold {k})")
        row = {"fold": k, "n_train": int(train.size), "n_test": int(test.size), "fit_seconds": seconds}
        row.update({m: METRICS[m](yy[test], p, threshold=threshold) for m in names})
        log.debug("fold %d: fit %.3fs, %s", k, seconds, {m: round(row[m], 4) for m in names})
        folds.append(row)
    return CVReport(n_splits=n_splits, seed=seed, threshold=threshold, metrics=names, folds=folds)
