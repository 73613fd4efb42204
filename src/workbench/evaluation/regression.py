"""Evaluation of regressors: the metric registry, held-out evaluation and fairness slices.

* :data:`REGRESSION_METRICS` / :data:`REGRESSION_GREATER_IS_BETTER` -- every metric a regression brief may name;
* :func:`evaluate_regression` -- a :class:`RegressionReport`: metrics, target and residual summaries and a
  thinned, seeded sample of (actual, predicted) points for the residual and predicted-vs-actual plots;
* :func:`regression_fairness_report` -- per group (Fairlearn ``MetricFrame``) MAE, mean prediction and mean
  residual with bootstrap intervals, and the gaps ``mae_difference``, ``mae_relative_difference`` and
  ``mean_residual_difference`` with intervals and verdicts (:class:`RegressionFairnessReport`);
* :func:`regression_strata` -- quantile bins of the target, the ``stratify`` labels of
  :func:`~workbench.evaluation.cross_validate_task` for a regressor.

The residual is ``y_true - y_pred``: a positive mean residual means the group is *under*-predicted.

The fairness report object is :class:`RegressionFairnessReport`, the shape of
:class:`~workbench.evaluation.TaskFairnessReport` (:mod:`._fairness_report`); the feature groups, option checks and
the per-feature loop it shares with the multiclass report are in :mod:`._task_fairness`, the per-feature seeded
bootstrap streams in :mod:`._bootstrap` and the gap rows and verdicts in :mod:`._gaps`. The report classes,
:data:`REGRESSION_GREATER_IS_BETTER` and :data:`REGRESSION_GAP_METRICS` are defined without scikit-learn or
Fairlearn (:mod:`._heldout`, :mod:`._fairness_report`) and re-exported here.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np
from fairlearn.metrics import MetricFrame
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    median_absolute_error,
    r2_score,
    root_mean_squared_error,
)

from ..errors import EvaluationError
from . import _bootstrap as bs
from ._bootstrap import feature_rng, resample_chunks
from ._checks import as_1d, check_choice, check_same_length
from ._fairness_report import REGRESSION_GAP_METRICS, RegressionFairnessReport, TaskFairnessReport
from ._gaps import Component, extremes, gap_row, num
from ._heldout import REGRESSION_GREATER_IS_BETTER, RegressionReport
from ._task_fairness import check_fairness_options, task_fairness_report

__all__ = [
    "REGRESSION_METRICS",
    "REGRESSION_GREATER_IS_BETTER",
    "REGRESSION_GAP_METRICS",
    "REGRESSION_GROUP_FIGURES",
    "RegressionReport",
    "RegressionFairnessReport",
    "TaskFairnessReport",
    "evaluate_regression",
    "regression_fairness_report",
    "regression_strata",
]

log = logging.getLogger(__name__)

MAX_PLOT_POINTS = 2000  # the (y_true, y_pred) sample a report keeps for its plots
RESIDUAL_QUANTILES = (0.0, 0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99, 1.0)
_CHUNK = 1 << 22  # values per chunk of (replicates x rows) drawn at once: about 32 MB of int64 indices


# ---------------------------------------------------------------------------------------------- metrics
def _r2(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true = np.asarray(y_true, dtype=np.float64)
    if y_true.size < 2 or np.all(y_true == y_true[0]):
        return math.nan  # undefined for a constant target (scikit-learn would return 0 or 1)
    return float(r2_score(y_true, y_pred))


def _mape(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    y_true = np.asarray(y_true, dtype=np.float64)
    if not np.all(y_true > 0):
        return math.nan
    return float(mean_absolute_percentage_error(y_true, y_pred))


#: Metric functions ``f(y_true, y_pred) -> float``. ``mape`` (a fraction, not a percentage) is NaN unless every
#: ``y_true`` is positive; ``r2`` is NaN for a constant target.
REGRESSION_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "mae": lambda y, yhat: float(mean_absolute_error(y, yhat)),
    "rmse": lambda y, yhat: float(root_mean_squared_error(y, yhat)),
    "r2": _r2,
    "median_ae": lambda y, yhat: float(median_absolute_error(y, yhat)),
    "mape": _mape,
}
# REGRESSION_GREATER_IS_BETTER (only r2) is kept with the report, in ._heldout.


def check_values(values: Any, *, argument: str) -> np.ndarray:
    """A one-dimensional float64 array of finite numbers."""
    arr = as_1d(values, argument=argument)
    if not np.issubdtype(arr.dtype, np.number) or arr.dtype == bool:
        raise EvaluationError(f"expected numbers, got values of type {arr.dtype} (e.g. {arr[0]!r})",
                              argument=argument, hint="pass the numeric target and model.predict(X)")
    arr = arr.astype(np.float64)
    bad = ~np.isfinite(arr)
    if bad.any():
        raise EvaluationError(f"{int(bad.sum())} values are NaN or infinite", argument=argument,
                              hint="drop rows without a target; a NaN prediction usually means a missing "
                                   "numeric input the pipeline does not impute")
    return arr


def regression_strata(y: Any, *, n_splits: int, n_bins: int = 10) -> np.ndarray:
    """Quantile-bin labels of a numeric target, for stratified cross-validation of a regressor.

    Uses at most ``n_bins`` bins, fewer when needed so that every bin holds at least ``n_splits`` rows.

    Returns
    -------
    numpy.ndarray
        int64 bin index per row (0 = lowest values).
    """
    yy = check_values(y, argument="y")
    if isinstance(n_bins, bool) or not isinstance(n_bins, numbers.Integral) or n_bins < 1:
        raise EvaluationError(f"expected a whole number of at least 1, got {n_bins!r}", argument="n_bins")
    for k in range(int(min(n_bins, max(1, yy.size // max(int(n_splits), 1)))), 0, -1):
        edges = np.unique(np.quantile(yy, np.linspace(0, 1, k + 1))[1:-1])
        bins = np.searchsorted(edges, yy, side="right")
        if np.bincount(bins).min() >= n_splits or k == 1:
            return bins.astype(np.int64)
    return np.zeros(yy.size, dtype=np.int64)  # pragma: no cover - the loop always returns


# ---------------------------------------------------------------------------------------------- report
def _thinned_sample(y: np.ndarray, yhat: np.ndarray) -> dict[str, list]:
    idx = np.arange(y.size)
    if y.size > MAX_PLOT_POINTS:
        idx = np.sort(np.random.default_rng(0).choice(y.size, size=MAX_PLOT_POINTS, replace=False))
    return {"index": idx.tolist(), "y_true": y[idx].tolist(), "y_pred": yhat[idx].tolist()}


def _std(x: np.ndarray) -> float:
    return float(np.std(x, ddof=1)) if x.size > 1 else math.nan


def evaluate_regression(y_true: Any, y_pred: Any, *, primary: str = "mae") -> RegressionReport:
    """Evaluate predictions of a numeric target.

    Parameters
    ----------
    y_true:
        Actual values (float).
    y_pred:
        Predicted values for the same rows.
    primary:
        The metric the report leads with (a key of :data:`REGRESSION_METRICS`).

    Returns
    -------
    RegressionReport

    Raises
    ------
    EvaluationError
        Lengths differ, values are not finite numbers, ``primary`` is unknown, or ``primary`` is ``"mape"``
        while some ``y_true`` is zero or negative.
    """
    y = check_values(y_true, argument="y_true")
    yhat = check_values(y_pred, argument="y_pred")
    n = check_same_length(y_true=y, y_pred=yhat)
    check_choice(primary, tuple(REGRESSION_METRICS), argument="primary")
    notes: list[str] = []
    metrics = {m: f(y, yhat) for m, f in REGRESSION_METRICS.items()}
    if not np.all(y > 0):
        if primary == "mape":
            raise EvaluationError(f"mape is undefined: {int(np.sum(y <= 0))} values of y_true are <= 0",
                                  argument="primary", hint="choose mae, rmse, median_ae or r2")
        del metrics["mape"]
        notes.append(f"mape omitted: {int(np.sum(y <= 0))} values of y_true are zero or negative")
    if math.isnan(metrics["r2"]):
        notes.append("r2 undefined: y_true is constant (or has one row)")
    res = y - yhat
    report = RegressionReport(
        n=n, primary=primary, metrics=metrics,
        target={"mean": float(y.mean()), "std": _std(y), "min": float(y.min()), "max": float(y.max()),
                "prediction_mean": float(yhat.mean()), "prediction_std": _std(yhat)},
        residual={"mean": float(res.mean()), "std": _std(res), "levels": list(RESIDUAL_QUANTILES),
                  "quantiles": np.quantile(res, RESIDUAL_QUANTILES).tolist()},
        sample=_thinned_sample(y, yhat), notes=notes)
    return report


# ---------------------------------------------------------------------------------------------- fairness
REGRESSION_GROUP_FIGURES = ("mae", "mean_prediction", "mean_residual")  # per group, with an interval


def _figures(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """MetricFrame metric: MAE, mean prediction and mean residual (``y_true - y_pred``) of a group."""
    y_true, y_pred = np.asarray(y_true, dtype=np.float64), np.asarray(y_pred, dtype=np.float64)
    return np.array([mean_absolute_error(y_true, y_pred), y_pred.mean(), (y_true - y_pred).mean()])


def _regression_feature(feature: str, codes: np.ndarray, groups: np.ndarray, y: np.ndarray, yhat: np.ndarray,
                        *, seed: int, n_bootstrap: int, min_slice_size: int, confidence_level: float,
                        thresholds: Mapping[str, float], overall_mae: float, acks: Mapping[str, Mapping[str, str]]
                        ) -> tuple[list[dict], list[dict]]:
    # One MetricFrame metric returning every figure of a group (Fairlearn's cost grows with the metrics).
    mf = MetricFrame(metrics={"figures": _figures}, y_true=y, y_pred=yhat, sensitive_features=groups[codes])
    by = np.stack([np.asarray(mf.by_group["figures"].loc[g], dtype=np.float64) for g in groups])
    count = np.bincount(codes, minlength=groups.size)
    point = {m: by[:, j] for j, m in enumerate(REGRESSION_GROUP_FIGURES)}

    rng = feature_rng(seed, feature)
    res = y - yhat
    sources = {"mae": np.abs(res), "mean_prediction": yhat, "mean_residual": res}
    reps = {m: np.empty((n_bootstrap, groups.size)) for m in REGRESSION_GROUP_FIGURES}
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(count)])
    for i in range(groups.size):
        rows_i = order[starts[i]:starts[i + 1]]
        values = {m: src[rows_i] for m, src in sources.items()}
        for sl, idx in resample_chunks(rows_i.size, n_bootstrap, rng):
            for m in REGRESSION_GROUP_FIGURES:
                reps[m][sl, i] = values[m][idx].mean(axis=1)
    ci = {m: bs.interval(reps[m], confidence_level) for m in REGRESSION_GROUP_FIGURES}

    enough = count >= min_slice_size
    rows = [{"group": str(g), "count": int(count[i]), **{m: num(point[m][i]) for m in REGRESSION_GROUP_FIGURES},
             "evidence": "ok" if enough[i] else "insufficient evidence",
             "note": "" if enough[i] else (f"{int(count[i])} rows < min_slice_size {min_slice_size}; kept with its "
                                           "interval and in the all-groups gaps"),
             "ci": {m: [num(ci[m][0][i]), num(ci[m][1][i])] for m in REGRESSION_GROUP_FIGURES}}
            for i, g in enumerate(groups)]

    fl = _fairlearn_gaps(y, yhat, groups[codes])
    opts = {"thresholds": thresholds, "confidence_level": confidence_level, "acks": acks}
    from ._gaps import mean_bounds

    mae = Component(point["mae"], reps["mae"], enough,
                    *mean_bounds(np.abs(res), codes, groups.size, confidence_level))
    residual = Component(point["mean_residual"], reps["mean_residual"], enough,
                         *mean_bounds(res, codes, groups.size, confidence_level))
    overall_reps = reps["mae"] @ count / count.sum()  # every row of the feature's groups, resampled
    gaps = [gap_row(feature, "mae_difference", groups, [mae], fairlearn_value=fl["mae_difference"],
                    **extremes(point["mae"], enough, groups), **opts),
            gap_row(feature, "mae_relative_difference", groups, [mae], scale=overall_mae, scale_reps=overall_reps,
                    fairlearn_value=fl["mae_relative_difference"], **extremes(point["mae"], enough, groups), **opts),
            gap_row(feature, "mean_residual_difference", groups, [residual],
                    fairlearn_value=fl["mean_residual_difference"],
                    **extremes(point["mean_residual"], enough, groups), **opts)]
    return rows, gaps


def _mean_residual(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    return float(np.mean(np.asarray(y_true, dtype=np.float64) - np.asarray(y_pred, dtype=np.float64)))


def _fairlearn_gaps(y: np.ndarray, yhat: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """The gaps over every group as Fairlearn computes them: ``MetricFrame(...).difference()`` (max - min
    between groups) of scikit-learn's MAE and of the mean residual; the relative gap over ``overall`` MAE."""
    mf = MetricFrame(metrics={"mae": mean_absolute_error, "mean_residual": _mean_residual}, y_true=y, y_pred=yhat,
                     sensitive_features=labels)
    diff = mf.difference(method="between_groups")
    overall = float(mf.overall["mae"])
    return {"mae_difference": float(diff["mae"]),
            "mae_relative_difference": float(diff["mae"]) / overall if overall > 0 else math.nan,
            "mean_residual_difference": float(diff["mean_residual"])}


def regression_fairness_report(y_true: Any, y_pred: Any, sensitive: Any, *, thresholds: Mapping[str, float] | None,
                               min_slice_size: int = 30, confidence_level: float = 0.95, n_bootstrap: int = 200,
                               seed: int = 0, acknowledge: Iterable[Any] | None = None) -> RegressionFairnessReport:
    """Slice a regressor's errors by each sensitive feature and their intersection; bound the gaps.

    Parameters
    ----------
    y_true, y_pred:
        Actual and predicted values of the held-out rows.
    sensitive:
        polars or pandas DataFrame holding only the sensitive columns, same rows. Missing values become the
        group ``"(missing)"``.
    thresholds:
        Largest allowed gap per metric (keys among :data:`REGRESSION_GAP_METRICS`; ``mae_difference`` and
        ``mean_residual_difference`` in target units, ``mae_relative_difference`` a fraction of the overall
        MAE). Gaps without a threshold get the verdict "no threshold"; None means no thresholds.
    min_slice_size:
        Groups with fewer rows are "insufficient evidence": left out of ``value`` / ``ci_*`` (listed in
        ``groups_insufficient``) but kept, with their intervals, in the all-groups gap and in the verdict.
    confidence_level, n_bootstrap, seed:
        Percentile bootstrap: interval level, replicates, and the seed; each feature draws from its own
        generator seeded by ``seed`` and the feature's name.
    acknowledge:
        The brief's ``fairness.acknowledge`` (``[{feature, groups, reason}]``), recorded in the gap rows.

    Returns
    -------
    RegressionFairnessReport

    Raises
    ------
    EvaluationError
        Lengths differ, values are not finite, a sensitive column is entirely missing, or an option is invalid.
    """
    start = time.perf_counter()
    y = check_values(y_true, argument="y_true")
    yhat = check_values(y_pred, argument="y_pred")
    n = check_same_length(y_true=y, y_pred=yhat)
    thresholds = check_fairness_options(thresholds, REGRESSION_GAP_METRICS, min_slice_size=min_slice_size,
                                        confidence_level=confidence_level, n_bootstrap=n_bootstrap, seed=seed,
                                        upper=None)
    overall_mae = float(mean_absolute_error(y, yhat))

    def slice_feature(feature: str, codes: np.ndarray, names: np.ndarray, **opts: Any) -> tuple[list, list]:
        return _regression_feature(feature, codes, names, y, yhat, overall_mae=overall_mae, **opts)

    def overall() -> dict[str, Any]:
        return {"count": n, "mae": overall_mae, "mean_prediction": float(yhat.mean()),
                "mean_residual": float((y - yhat).mean())}

    return task_fairness_report(RegressionFairnessReport, sensitive, n, slice_feature, thresholds=thresholds,
                                min_slice_size=min_slice_size, confidence_level=confidence_level,
                                n_bootstrap=n_bootstrap, seed=seed, acknowledge=acknowledge, overall=overall,
                                started=start)
