"""Seeded k-fold cross-validation (private; public through :mod:`workbench.evaluation.metrics` and
:mod:`workbench.evaluation`).

* :func:`cross_validate_scores` -- binary classifiers: stratified folds, the binary metric registry;
* :func:`cross_validate_task` -- any task: the caller passes how to score a fold (``score``), the metrics and
  their direction, and the labels to stratify on (class codes, quantile bins of a numeric target, or None
  for plain shuffled folds).

Both return a :class:`~workbench.evaluation.CVReport`, defined without scikit-learn in :mod:`._cv_report`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from sklearn.model_selection import KFold, StratifiedKFold

from ..brief import PRIMARY_METRICS
from ..errors import EvaluationError
from ._checks import as_1d, check_choice, check_probabilities, check_target, check_threshold
from ._cv_report import CVReport
from ._scoring import METRICS

log = logging.getLogger(__name__)


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


def cross_validate_task(make_model: Callable[[], Any], X: Any, y: Any, *,
                        score: Callable[[Any, Any], Any],
                        metrics: Mapping[str, Callable[[np.ndarray, np.ndarray], float]],
                        greater_is_better: Mapping[str, bool], n_splits: int = 5, seed: int = 0,
                        stratify: Any = None) -> CVReport:
    """Shuffled, seeded k-fold cross-validation of a model factory, for any task.

    Parameters
    ----------
    make_model:
        Called once per fold; returns a new unfitted estimator with ``fit``.
    X:
        Feature frame (pandas; polars frames and numpy arrays also work), one row per target value.
    y:
        Target passed to ``fit`` and to the metrics: class codes (multiclass), floats (regression), 0/1.
    score:
        ``score(fitted_model, X_fold) -> scores``: what the metrics receive, e.g.
        ``lambda m, X: m.predict_proba(X)`` (multiclass, shape (n, K)) or ``lambda m, X: m.predict(X)``.
    metrics:
        ``name -> fn(y_fold, scores) -> float``, e.g. :data:`~workbench.evaluation.MULTICLASS_METRICS`.
    greater_is_better:
        ``name -> bool`` for every metric (kept in the report, so a reader knows which way is better).
    n_splits, seed:
        Number of folds, and the seed of the shuffle (same seed, same folds).
    stratify:
        Labels to stratify the folds on (``StratifiedKFold``): the class codes for a classifier, quantile bins
        of ``y`` for a regressor (:func:`~workbench.evaluation.regression_strata`). None: plain shuffled
        ``KFold``.

    Returns
    -------
    CVReport
        With ``threshold`` None and ``greater_is_better`` set.

    Raises
    ------
    EvaluationError
        Lengths differ, a metric has no direction, a stratum has fewer rows than ``n_splits`` (the message
        names it), a factory that does not return a new estimator, or a fold whose fit or score fails (the
        message names the fold).
    """
    yy = as_1d(y, argument="y")
    n = yy.size
    if len(X) != n:
        raise EvaluationError(f"lengths differ: X has {len(X)} rows, y has {n}", argument="X",
                              hint="pass features and targets for the same rows")
    if not metrics:
        raise EvaluationError("is empty", argument="metrics", hint="pass at least one name -> fn(y, scores)")
    names = [str(m) for m in metrics]
    missing = [m for m in names if m not in greater_is_better]
    if missing:
        raise EvaluationError(f"has no entry for {missing}", argument="greater_is_better",
                              hint="give every metric a direction: True when larger values are better")
    if isinstance(n_splits, bool) or not isinstance(n_splits, int) or n_splits < 2 or n_splits > n:
        raise EvaluationError(f"cannot make {n_splits!r} folds of {n} rows", argument="n_splits",
                              hint="use 2 <= n_splits <= number of rows")
    if stratify is None:
        splits = KFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(n))
    else:
        strata = as_1d(stratify, argument="stratify")
        if len(strata) != n:
            raise EvaluationError(f"lengths differ: stratify has {len(strata)} rows, y has {n}",
                                  argument="stratify", hint="pass one label per row of X")
        labels, counts = np.unique(strata.astype(str) if strata.dtype == object else strata, return_counts=True)
        small = counts < n_splits
        if small.any():
            shown = ", ".join(f"label {labels[i].item()!r} has {int(counts[i])}" for i in np.flatnonzero(small)[:5])
            raise EvaluationError(
                f"cannot make {n_splits} stratified folds: {shown} row(s), fewer than n_splits",
                argument="stratify",
                hint=f"use n_splits <= {int(counts.min())}, merge rare classes, or (for a numeric target) use "
                     "fewer quantile bins (regression_strata chooses them)")
        splits = StratifiedKFold(n_splits=n_splits, shuffle=True, random_state=seed).split(np.zeros(n), strata)
    folds: list[dict[str, Any]] = []
    previous = None
    for k, (train, test) in enumerate(splits):
        model = make_model()
        if not hasattr(model, "fit") or model is previous:
            raise EvaluationError(f"returned {type(model).__name__}, not a new estimator with fit",
                                  argument="make_model",
                                  hint="pass a function that builds the estimator each time it is called")
        previous = model
        start = time.perf_counter()
        try:
            model.fit(_rows(X, train), yy[train])
        except Exception as exc:
            raise EvaluationError(f"fold {k}: fitting {type(model).__name__} failed: {exc}",
                                  argument="make_model") from exc
        seconds = time.perf_counter() - start
        try:
            scores = np.asarray(score(model, _rows(X, test)))
        except Exception as exc:
            raise EvaluationError(f"fold {k}: scoring failed: {exc}", argument="score") from exc
        if len(scores) != test.size or not np.issubdtype(scores.dtype, np.number) or not np.isfinite(scores).all():
            raise EvaluationError(f"fold {k}: expected {test.size} finite scores, got shape {scores.shape}",
                                  argument="score", hint="return predict(X) or predict_proba(X) of the fold")
        row: dict[str, Any] = {"fold": k, "n_train": int(train.size), "n_test": int(test.size),
                               "fit_seconds": seconds}
        row.update({m: float(metrics[m](yy[test], scores)) for m in names})
        log.debug("fold %d: fit %.3fs, %s", k, seconds, {m: round(row[m], 4) for m in names})
        folds.append(row)
    return CVReport(n_splits=n_splits, seed=seed, threshold=None, metrics=names, folds=folds,
                    greater_is_better={m: bool(greater_is_better[m]) for m in names},
                    stratified=stratify is not None)
