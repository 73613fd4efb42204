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

This module also holds what the multiclass fairness report shares (:class:`TaskFairnessReport`, the feature
groups and option checks); the per-feature seeded bootstrap streams are in :mod:`._bootstrap` (each feature's
intervals come from resamples of that feature's own groups, drawn from a generator seeded by
``(seed, crc32(feature name))``, so adding a sensitive feature never changes another feature's intervals) and the
gap rows and verdicts in :mod:`._gaps`.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

import numpy as np
from fairlearn.metrics import MetricFrame
from sklearn.metrics import (
    mean_absolute_error,
    mean_absolute_percentage_error,
    median_absolute_error,
    r2_score,
    root_mean_squared_error,
)

from .._names import suggest
from .._report import Report, esc, html_table
from ..errors import EvaluationError
from . import _bootstrap as bs
from ._bootstrap import feature_rng, resample_chunks
from ._checks import as_1d, axes_or_new, check_choice, check_same_length
from ._fairness_report import REVIEW, FairnessReport, gap_html_row
from ._gaps import Component, ack_notes, extremes, gap_row, normalise_acks, num
from .fairness import INTERSECTION_SEP, _sensitive_columns, group_codes

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
#: Whether a larger value is better: only for ``r2``.
REGRESSION_GREATER_IS_BETTER: dict[str, bool] = {m: m == "r2" for m in REGRESSION_METRICS}


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
def _none_to_nan(d: Mapping[str, Any]) -> dict[str, float]:
    return {k: (math.nan if v is None else float(v)) for k, v in d.items()}


@dataclass
class RegressionReport(Report):
    """Held-out metrics of one regressor, with the target and residual summaries and a sample to plot.

    Attributes
    ----------
    n:
        Rows evaluated.
    primary:
        The metric the report leads with (a key of ``metrics``).
    metrics:
        Every defined metric of :data:`REGRESSION_METRICS` (``mape`` is left out unless every ``y_true`` > 0).
    target:
        ``mean``, ``std`` (ddof=1), ``min``, ``max`` of ``y_true``; ``prediction_mean`` and ``prediction_std``.
    residual:
        Residuals ``y_true - y_pred``: ``mean``, ``std`` (ddof=1), ``levels`` and ``quantiles``.
    sample:
        ``index`` (row positions), ``y_true``, ``y_pred``: at most 2,000 rows drawn without replacement with a
        fixed seed (all rows when fewer), so a saved report can be plotted again without the model.
    notes:
        What was left out and why.
    """

    n: int
    primary: str
    metrics: dict[str, float]
    target: dict[str, float]
    residual: dict[str, Any]
    sample: dict[str, list]
    notes: list[str] = field(default_factory=list)
    title: str = "Held-out evaluation (regression)"

    @property
    def primary_value(self) -> float:
        return self.metrics[self.primary]

    def to_dict(self) -> dict:
        return {"task": "regression", "n": self.n, "primary": self.primary, "primary_value": self.primary_value,
                "metrics": self.metrics,
                "greater_is_better": {m: REGRESSION_GREATER_IS_BETTER[m] for m in self.metrics},
                "target": self.target, "residual": self.residual, "sample": self.sample, "notes": self.notes}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RegressionReport:
        """Rebuild a report from :meth:`to_dict` output (e.g. a saved JSON file)."""
        return cls(n=int(d["n"]), primary=d["primary"], metrics=_none_to_nan(d["metrics"]),
                   target=_none_to_nan(d["target"]), residual=dict(d["residual"]), sample=dict(d["sample"]),
                   notes=list(d.get("notes", [])))

    def summary(self) -> dict:
        return {"primary": self.primary, "primary_value": self.primary_value, "metrics": self.metrics,
                "target_mean": self.target["mean"], "target_std": self.target["std"],
                "residual_mean": self.residual["mean"]}

    def _html_body(self) -> str:
        rows = [{"metric": ("★ " if m == self.primary else "") + m, "value": v,
                 "better": "higher" if REGRESSION_GREATER_IS_BETTER[m] else "lower"}
                for m, v in self.metrics.items()]
        t, r = self.target, self.residual
        res = [{"residual quantile": f"{q:g}", "value": v}
               for q, v in zip(r["levels"], r["quantiles"], strict=True)]
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        return (f"<p>{self.n} rows; target mean {t['mean']:.4g}, std {t['std']:.4g}; prediction mean "
                f"{t['prediction_mean']:.4g}; primary metric <b>{esc(self.primary)}</b> = "
                f"{self.primary_value:.4g}</p>" + (f"<ul>{notes}</ul>" if notes else "") + html_table(rows)
                + f"<h4>Residuals (y_true - y_pred): mean {r['mean']:.4g}, std {r['std']:.4g}</h4>"
                + html_table(res))

    def plot_residuals(self, ax: Any = None) -> Any:
        """Residual (``y_true - y_pred``) against the prediction, on the report's sample. Returns the Axes."""
        ax = axes_or_new(ax)
        yt, yp = np.asarray(self.sample["y_true"], float), np.asarray(self.sample["y_pred"], float)
        ax.scatter(yp, yt - yp, s=6, alpha=0.5, linewidths=0, label=f"{yt.size} of {self.n} rows")
        ax.axhline(0.0, ls="--", color="grey", lw=1)
        ax.set(xlabel="predicted", ylabel="residual (actual - predicted)", title="Residuals vs predicted")
        ax.legend(loc="best", fontsize=8)
        return ax

    def plot_predicted_vs_actual(self, ax: Any = None) -> Any:
        """Predicted against actual values on the report's sample, with the diagonal. Returns the Axes."""
        ax = axes_or_new(ax)
        yt, yp = np.asarray(self.sample["y_true"], float), np.asarray(self.sample["y_pred"], float)
        lo, hi = float(min(yt.min(), yp.min())), float(max(yt.max(), yp.max()))
        ax.plot([lo, hi], [lo, hi], ls="--", color="grey", lw=1, label="perfect prediction")
        ax.scatter(yt, yp, s=6, alpha=0.5, linewidths=0, label=f"{yt.size} of {self.n} rows")
        ax.set(xlabel="actual", ylabel="predicted", title="Predicted vs actual")
        ax.legend(loc="upper left", fontsize=8)
        return ax


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
_CSS = {"within threshold": "wb-ok", "exceeds threshold": "wb-bad", "insufficient evidence": "wb-warn",
        REVIEW: "wb-warn"}


def feature_groups(sensitive: Any, n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per sensitive feature, then their intersection when there are several: (group code of each row, group
    names in code order). Missing values form the group ``"(missing)"``."""
    columns = _sensitive_columns(sensitive, n)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    uniques = {}
    for name, labels in columns.items():
        names, codes = group_codes(labels)
        uniques[name] = names
        out[name] = (codes, names)
    if len(columns) > 1:
        cell, combos = bs.cells_of([out[name][0] for name in columns])
        labels = np.array([INTERSECTION_SEP.join(str(uniques[c][k]) for c, k in zip(columns, row, strict=True))
                           for row in combos])
        out[INTERSECTION_SEP.join(columns)] = (cell, labels)
    return out


def check_fairness_options(thresholds: Mapping[str, float] | None, gap_metrics: tuple[str, ...], *,
                           min_slice_size: int, confidence_level: float, n_bootstrap: int, seed: int,
                           upper: float | None) -> dict[str, float]:
    """Validated thresholds (keys among ``gap_metrics``, numbers in [0, upper]) and options."""
    if thresholds is not None and not isinstance(thresholds, Mapping):
        raise EvaluationError(f"expected a mapping of gap metric to largest allowed value, got "
                              f"{type(thresholds).__name__}", argument="thresholds")
    out = {}
    for metric, value in (thresholds or {}).items():
        check_choice(metric, gap_metrics, argument="thresholds")
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        if not (ok and value >= 0 and (upper is None or value <= upper)):
            allowed = f"[0, {upper:g}]" if upper is not None else "a finite number >= 0"
            raise EvaluationError(f"{metric}: expected {allowed}, got {value!r}", argument="thresholds")
        out[metric] = float(value)
    for name, value, least in (("min_slice_size", min_slice_size, 1), ("n_bootstrap", n_bootstrap, 10),
                               ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise EvaluationError(f"expected a whole number of at least {least}, got {value!r}", argument=name)
    if not (isinstance(confidence_level, numbers.Real) and 0.5 < confidence_level < 1):
        raise EvaluationError(f"expected a number between 0.5 and 1, got {confidence_level!r}",
                              argument="confidence_level")
    return out


@dataclass
class TaskFairnessReport(FairnessReport):
    """The shape of :class:`~workbench.evaluation.FairnessReport` for the regression and multiclass tasks.

    Rows of ``groups`` hold ``group``, ``count``, ``evidence``, ``note``, the task's figures and
    ``ci: {figure: [low, high]}``; ``gaps`` rows hold ``feature``, ``metric``, ``value``, ``ci_low``,
    ``ci_high``, ``threshold``, ``verdict``, ``groups_used``, ``groups_excluded``, ``groups_insufficient``,
    ``value_all_groups``, ``ci_low_all_groups``, ``ci_high_all_groups``, ``ci_low_insufficient`` /
    ``insufficient_group`` (the gap involving a group without enough evidence), ``fairlearn_value``,
    ``acknowledged``, ``groups_unacknowledged``, ``max_group`` and ``min_group`` (see
    :mod:`workbench.evaluation._gaps`). ``threshold`` (the binary decision threshold) is None.
    """

    task: str = ""
    gap_metrics: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        if not self.notes:
            self.notes = self._default_notes()

    def _default_notes(self) -> list[str]:
        return [
            f"value / ci are computed over groups with at least {self.min_slice_size} rows; smaller groups are "
            "'insufficient evidence' (groups_insufficient), kept with their (wide) intervals and counted in "
            "value_all_groups / ci_high_all_groups.",
            "A gap involving an insufficient group 'exceeds threshold' when even its lower bound does; otherwise "
            "the gap is 'insufficient evidence — review' until the brief's fairness.acknowledge names every such "
            "group with a reason. fairlearn_value is the same gap over every group computed by Fairlearn's "
            "MetricFrame (difference between groups).",
            f"Intervals: {self.confidence_level:.0%} percentile bootstrap, {self.n_bootstrap} replicates "
            f"resampled within each feature's groups; each feature has its own generator (seed {self.seed} "
            "and the feature's name), so adding a feature does not change another's intervals.",
            "A gap is 'within threshold' only when its whole interval is (upper bound <= threshold) and no "
            "group lacks evidence.",
        ]

    @property
    def figures(self) -> list[str]:
        """The per-group figures that carry an interval (the keys of each row's ``ci``)."""
        for rows in self.groups.values():
            if rows:
                return list(rows[0]["ci"])
        return []

    def to_dict(self) -> dict:
        return {"task": self.task, "verdict": self.verdict, "n_rows": self.n_rows, "thresholds": self.thresholds,
                "min_slice_size": self.min_slice_size, "confidence_level": self.confidence_level,
                "n_bootstrap": self.n_bootstrap, "seed": self.seed, "features": self.features,
                "overall": self.overall, "gaps": self.gaps, "groups": self.groups, "notes": self.notes,
                "acknowledge": self.acknowledge, **self._extra_dict()}

    def _extra_dict(self) -> dict:
        return {}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskFairnessReport:
        """Rebuild a report from :meth:`to_dict` output (e.g. a saved JSON file)."""
        names = {f.name for f in fields(cls) if f.init} - {"threshold", "title"}
        return cls(threshold=None, **{k: d[k] for k in names if k in d})

    def summary(self) -> dict:
        """Overall verdict and, per gap metric, the largest upper bound over features with its feature, plus
        the groups without enough evidence."""
        worst: dict[str, dict | None] = {}
        for metric in self.gap_metrics:
            rows = [g for g in self.gaps if g["metric"] == metric and g["ci_high"] is not None]
            if not rows:
                worst[metric] = None
                continue
            w = max(rows, key=lambda g: g["ci_high"])
            worst[metric] = {"feature": w["feature"], "value": w["value"], "bound": "ci_high",
                             "ci_high": w["ci_high"], "threshold": w["threshold"], "verdict": w["verdict"]}
        insufficient = {f: [r["group"] for r in rows if r["evidence"] != "ok"] for f, rows in self.groups.items()}
        return {"fairness_verdict": self.verdict, "worst_gaps": worst,
                "insufficient_groups": {f: g for f, g in insufficient.items() if g},
                "min_slice_size": self.min_slice_size, "confidence_level": self.confidence_level}

    def _html_body(self) -> str:
        css = _CSS.get(self.verdict, "")
        gaps = [{**gap_html_row(g), "max / min group": f"{g.get('max_group')} / {g.get('min_group')}"}
                for g in self.gaps]
        parts = [f"<p>{self.n_rows} rows ({esc(self.task)}). Overall: <span class='{css}'>{esc(self.verdict)}"
                 "</span></p>", "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in self.notes) + "</ul>",
                 "<h4>Gaps</h4>" + html_table(gaps)]
        for feature in self.features:
            rows = []
            for r in self.groups[feature]:
                row: dict[str, Any] = {"group": r["group"], "count": r["count"]}
                for m in r["ci"]:
                    lo, hi = r["ci"][m]
                    row[m] = "—" if r[m] is None else (
                        f"{r[m]:.4g} [{lo:.4g}, {hi:.4g}]" if lo is not None else f"{r[m]:.4g}")
                rows.append({**row, "evidence": r["evidence"], "note": r["note"]})
            parts.append(f"<h4>By {esc(feature)}</h4>" + html_table(rows))
        return "".join(parts)

    def plot(self, feature: str, metric: str | None = None, *, ax: Any = None) -> Any:
        """Bar chart of one per-group figure (default: the first of :attr:`figures`) with its bootstrap
        interval; groups without enough evidence are grey and hatched, the dashed line is the overall value.
        Returns the matplotlib Axes."""
        figures = self.figures
        metric = figures[0] if metric is None else metric
        if metric not in figures:
            raise EvaluationError(f"unknown value {metric!r}{suggest(str(metric), figures)}", argument="metric",
                                  hint=f"use one of: {', '.join(figures)}")
        rows = self._rows(feature)
        ax = axes_or_new(ax)
        ok = np.array([r["evidence"] == "ok" for r in rows])
        val = np.array([np.nan if r[metric] is None else r[metric] for r in rows], dtype=float)
        ci = np.array([r["ci"][metric] for r in rows], dtype=float).reshape(len(rows), 2)  # None -> NaN
        err = np.nan_to_num(np.clip(np.stack([val - ci[:, 0], ci[:, 1] - val]), 0, None))
        x = np.arange(len(rows))
        bars = ax.bar(x, np.nan_to_num(val), yerr=err, capsize=3, edgecolor="black", linewidth=0.5,
                      color=["tab:blue" if o else "lightgrey" for o in ok])
        for bar, o, v in zip(bars, ok, val, strict=True):
            if not o:
                bar.set_hatch("//")
            if np.isnan(v):  # e.g. the TPR of a group without positives
                ax.annotate("undefined", (bar.get_x() + bar.get_width() / 2, 0), ha="center", va="bottom",
                            fontsize=7, rotation=90)
        if not ok.all():
            bars[int(np.flatnonzero(~ok)[0])].set_label("insufficient evidence")
        if self.overall.get(metric) is not None:
            ax.axhline(self.overall[metric], ls="--", color="black", lw=1, label="overall")
        if metric.startswith("mean_residual"):
            ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xticks(x, [r["group"] for r in rows], rotation=30 if len(rows) > 4 else 0,
                      ha="right" if len(rows) > 4 else "center")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} by {feature}, {self.confidence_level:.0%} bootstrap intervals", fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
        return ax


REGRESSION_GAP_METRICS = ("mae_difference", "mae_relative_difference", "mean_residual_difference")
REGRESSION_GROUP_FIGURES = ("mae", "mean_prediction", "mean_residual")  # per group, with an interval


@dataclass
class RegressionFairnessReport(TaskFairnessReport):
    """Per-group MAE, mean prediction and mean residual (``y_true - y_pred``) with bootstrap intervals, and the
    gaps :data:`REGRESSION_GAP_METRICS` with intervals and verdicts, per sensitive feature and their
    intersection. See :class:`TaskFairnessReport` for the row shapes."""

    task: str = "regression"
    title: str = "Fairness slices (regression)"
    gap_metrics: ClassVar[tuple[str, ...]] = REGRESSION_GAP_METRICS

    def _default_notes(self) -> list[str]:
        return [*super()._default_notes(),
                "Residual = y_true - y_pred: a positive mean residual means the group is under-predicted. "
                "mae_relative_difference is mae_difference divided by the overall MAE."]


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
    features = feature_groups(sensitive, n)
    acks = normalise_acks(acknowledge)
    overall_mae = float(mean_absolute_error(y, yhat))
    groups: dict[str, list[dict]] = {}
    gaps: list[dict] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for feature, (codes, names) in features.items():
            groups[feature], feature_gaps = _regression_feature(
                feature, codes, names, y, yhat, seed=int(seed), n_bootstrap=int(n_bootstrap),
                min_slice_size=int(min_slice_size), confidence_level=float(confidence_level),
                thresholds=thresholds, overall_mae=overall_mae, acks=acks)
            gaps.extend(feature_gaps)
    report = RegressionFairnessReport(
        features=list(features), groups=groups, gaps=gaps, threshold=None, thresholds=thresholds,
        min_slice_size=int(min_slice_size), confidence_level=float(confidence_level), n_bootstrap=int(n_bootstrap),
        seed=int(seed), n_rows=n,
        overall={"count": n, "mae": overall_mae, "mean_prediction": float(yhat.mean()),
                 "mean_residual": float((y - yhat).mean())}, acknowledge=acks)
    report.notes.extend(ack_notes(acks, {f: [r["group"] for r in rows] for f, rows in groups.items()}))
    log.info("regression fairness report: %d rows, %d features, %d replicates in %.2fs; verdict %s", n,
             len(features), n_bootstrap, time.perf_counter() - start, report.verdict)
    return report
