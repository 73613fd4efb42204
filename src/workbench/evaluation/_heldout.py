"""The held-out evaluation reports of every task (private; public through :mod:`workbench.evaluation` and the
task modules :mod:`~workbench.evaluation.metrics`, :mod:`~workbench.evaluation.multiclass` and
:mod:`~workbench.evaluation.regression`).

:class:`HeldOutReport` is what they share: the primary metric, the metric table and its direction, and the round
trip through ``to_dict()`` / ``from_dict()``. :class:`EvaluationReport` (binary), :class:`MulticlassReport` and
:class:`RegressionReport` are dataclasses with ``primary`` and ``metrics`` fields; each says which way its metrics
point (``directions``: :data:`GREATER_IS_BETTER`, :data:`MULTICLASS_GREATER_IS_BETTER`,
:data:`REGRESSION_GREATER_IS_BETTER`) and adds its own fields around the shared block.

Reading a saved report back, and showing it, needs none of the libraries that computed it: this module imports
numpy and nothing heavier (matplotlib only when a plot is drawn), so the run report, the model card and the app
read reports without importing scikit-learn, SciPy or Fairlearn. The metric functions live with the code that
computes the reports (:mod:`._scoring`, :mod:`.multiclass`, :mod:`.regression`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .._report import Report, esc, fields_from_dict, html_table
from ._checks import axes_or_new

#: Whether a larger value of each binary metric is better (log loss and the Brier score are losses), in the
#: order of :data:`~workbench.evaluation.METRICS`.
GREATER_IS_BETTER: dict[str, bool] = {
    m: m not in ("log_loss", "brier")
    for m in ("pr_auc", "roc_auc", "f1", "accuracy", "balanced_accuracy", "log_loss", "brier")}
#: Whether a larger value of each multiclass metric is better (log loss is a loss), in the order of
#: :data:`~workbench.evaluation.MULTICLASS_METRICS`.
MULTICLASS_GREATER_IS_BETTER: dict[str, bool] = {
    m: m != "log_loss" for m in ("macro_f1", "weighted_f1", "accuracy", "balanced_accuracy", "log_loss")}
#: Whether a larger value of each regression metric is better: only for ``r2``; in the order of
#: :data:`~workbench.evaluation.REGRESSION_METRICS`.
REGRESSION_GREATER_IS_BETTER: dict[str, bool] = {m: m == "r2" for m in ("mae", "rmse", "r2", "median_ae", "mape")}


def nan_for_none(values: Mapping[str, Any]) -> dict[str, float]:
    """A saved figure mapping with its undefined values (JSON ``null``) as NaN again."""
    return {k: (math.nan if v is None else float(v)) for k, v in values.items()}


def div_or_nan(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a / b`` elementwise, NaN where ``b`` is not positive."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(b > 0, a / b, np.nan)


class HeldOutReport(Report):
    """Mixin for the held-out evaluation reports (dataclasses with ``primary: str`` and
    ``metrics: dict[str, float]``)."""

    #: The task the report is for.
    task: ClassVar[str] = ""
    #: Whether a larger value of each metric is better (the task's metric catalogue).
    directions: ClassVar[Mapping[str, bool]] = {}
    #: Fields whose saved form needs converting back (by default: ``metrics``, ``null`` -> NaN).
    _from_saved: ClassVar[Mapping[str, Callable[[Any], Any]]] = {"metrics": nan_for_none}

    primary: str
    metrics: dict[str, float]

    @property
    def primary_value(self) -> float:
        return self.metrics[self.primary]

    def _metrics_dict(self) -> dict:
        """``primary``, ``primary_value``, ``metrics`` and ``greater_is_better``, in the order every report writes
        them."""
        return {"primary": self.primary, "primary_value": self.primary_value, "metrics": self.metrics,
                "greater_is_better": {m: self.directions[m] for m in self.metrics}}

    def _metrics_summary(self) -> dict:
        return {"primary": self.primary, "primary_value": self.primary_value, "metrics": self.metrics}

    def _metrics_html(self) -> str:
        """The metric table: the primary metric starred, each with the way it is better."""
        rows = [{"metric": ("★ " if m == self.primary else "") + m, "value": v,
                 "better": "higher" if self.directions[m] else "lower"} for m, v in self.metrics.items()]
        return html_table(rows)

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> HeldOutReport:
        """Rebuild a report from :meth:`to_dict` output (e.g. a saved JSON file); derived figures
        (``primary_value``, ``greater_is_better``, ...) are computed again, undefined metrics (``null``) are NaN."""
        return cls(**fields_from_dict(cls, d, convert=cls._from_saved))


# ----------------------------------------------------------------------------------------------------- binary
@dataclass
class EvaluationReport(HeldOutReport):
    """Held-out metrics of one model: every metric, confusion counts at the threshold, calibration, PR curve.

    ``calibration`` holds the non-empty quantile bins (``prob_pred``, ``prob_true``, ``count``) and the
    expected calibration error ``ece``; ``pr_curve`` a thinned precision-recall curve. Both are plain lists,
    so a saved report can be plotted again without the model, and :meth:`from_dict` rebuilds the report from its
    saved JSON.
    """

    n: int
    positive_rate: float
    predicted_positive_rate: float
    threshold: float
    primary: str
    metrics: dict[str, float]
    confusion: dict[str, int]
    calibration: dict[str, Any]
    pr_curve: dict[str, list[float]]
    title: str = "Held-out evaluation"

    task = "binary_classification"
    directions = GREATER_IS_BETTER

    def to_dict(self) -> dict:
        return {"n": self.n, "positive_rate": self.positive_rate,
                "predicted_positive_rate": self.predicted_positive_rate, "threshold": self.threshold,
                **self._metrics_dict(), "confusion": self.confusion, "calibration": self.calibration,
                "pr_curve": self.pr_curve}

    def summary(self) -> dict:
        return {**self._metrics_summary(), "threshold": self.threshold, "positive_rate": self.positive_rate,
                "ece": self.calibration.get("ece")}

    def _html_body(self) -> str:
        c = self.confusion
        conf = [{"": "actual 1", "predicted 1": c["tp"], "predicted 0": c["fn"]},
                {"": "actual 0", "predicted 1": c["fp"], "predicted 0": c["tn"]}]
        cal = self.calibration
        bins = [{"mean predicted": p, "observed rate": t, "rows": k}
                for p, t, k in zip(cal["prob_pred"], cal["prob_true"], cal["count"], strict=True)]
        ece = f"{cal['ece']:.4f}" if cal.get("ece") is not None else "n/a"
        return (f"<p>{self.n} rows, positive rate {self.positive_rate:.3%}, threshold {self.threshold:g} "
                f"(predicted positive {self.predicted_positive_rate:.3%}); primary metric "
                f"<b>{esc(self.primary)}</b> = {self.primary_value:.4f}</p>" + self._metrics_html()
                + "<h4>Confusion counts</h4>" + html_table(conf)
                + f"<h4>Calibration ({len(bins)} quantile bins, ECE {ece})</h4>" + html_table(bins))

    def plot_calibration(self, *, ax: Any = None) -> Any:
        """Reliability diagram: observed positive rate against mean predicted probability per bin.

        Returns the matplotlib Axes (its figure is ``ax.figure``).
        """
        ax = axes_or_new(ax)
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfectly calibrated")
        ax.plot(self.calibration["prob_pred"], self.calibration["prob_true"], marker="o", label="model")
        ax.set(xlabel="mean predicted probability", ylabel="observed positive rate", xlim=(0, 1), ylim=(0, 1),
               title=f"Calibration ({self.calibration['n_bins']} quantile bins)")
        ax.legend(loc="upper left")
        return ax

    def plot_pr_curve(self, *, ax: Any = None) -> Any:
        """Precision-recall curve, with the positive rate (a random model) as reference. Returns the Axes."""
        ax = axes_or_new(ax)
        ax.step(self.pr_curve["recall"], self.pr_curve["precision"], where="post",
                label=f"model (PR-AUC {self.metrics['pr_auc']:.3f})")
        ax.axhline(self.positive_rate, ls="--", color="grey", lw=1, label="positive rate")
        ax.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02), title="Precision-recall")
        ax.legend(loc="upper right")
        return ax


# ------------------------------------------------------------------------------------------------- multiclass
@dataclass
class MulticlassReport(HeldOutReport):
    """Held-out metrics of one multiclass classifier.

    Attributes
    ----------
    n, classes:
        Rows evaluated; class names in code order.
    primary, metrics:
        The leading metric and every value of :data:`~workbench.evaluation.MULTICLASS_METRICS`.
    per_class:
        One row per class: ``class``, ``support`` (rows of that class), ``predicted`` (rows predicted as it),
        ``precision``, ``recall``, ``f1``, ``pr_auc`` (one-vs-rest average precision) and ``ece`` (None where
        undefined, e.g. a class absent from ``y_true``).
    confusion:
        Counts, ``confusion[i][j]`` = rows of class i predicted as class j.
    calibration:
        Per class, the one-vs-rest quantile-bin reliability curve: ``prob_pred``, ``prob_true``, ``count``,
        ``ece`` (None when the class is absent or is every row).
    """

    n: int
    classes: list[str]
    primary: str
    metrics: dict[str, float]
    per_class: list[dict[str, Any]]
    confusion: list[list[int]]
    calibration: dict[str, dict[str, Any]]
    notes: list[str] = field(default_factory=list)
    title: str = "Held-out evaluation (multiclass)"

    task = "multiclass_classification"
    directions = MULTICLASS_GREATER_IS_BETTER

    @property
    def macro_ece(self) -> float | None:
        """Mean of the per-class ECEs that are defined."""
        eces = [c["ece"] for c in self.calibration.values() if c.get("ece") is not None]
        return float(np.mean(eces)) if eces else None

    def to_dict(self) -> dict:
        return {"task": self.task, "n": self.n, "classes": self.classes, **self._metrics_dict(),
                "per_class": self.per_class, "confusion": self.confusion, "calibration": self.calibration,
                "macro_ece": self.macro_ece, "notes": self.notes}

    def summary(self) -> dict:
        return {**self._metrics_summary(), "classes": self.classes, "macro_ece": self.macro_ece}

    def _html_body(self) -> str:
        conf = [{"actual \\ predicted": c, **dict(zip(self.classes, row, strict=True))}
                for c, row in zip(self.classes, self.confusion, strict=True)]
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        ece = f"{self.macro_ece:.4f}" if self.macro_ece is not None else "n/a"
        return (f"<p>{self.n} rows, {len(self.classes)} classes; primary metric <b>{esc(self.primary)}</b> = "
                f"{self.primary_value:.4f}; macro ECE {ece}</p>" + (f"<ul>{notes}</ul>" if notes else "")
                + self._metrics_html() + "<h4>Per class</h4>" + html_table(self.per_class, formats={"ece": ".4f"})
                + "<h4>Confusion counts</h4>" + html_table(conf))

    def plot_confusion(self, ax: Any = None, *, normalize: bool = False) -> Any:
        """Confusion matrix as a heat map with the counts written in (``normalize=True``: each row divided by
        its class's rows, i.e. recall on the diagonal). Returns the matplotlib Axes."""
        ax = axes_or_new(ax)
        counts = np.asarray(self.confusion, dtype=float)
        shown = div_or_nan(counts, counts.sum(axis=1, keepdims=True)) if normalize else counts
        im = ax.imshow(np.nan_to_num(shown), cmap="Blues")
        ax.figure.colorbar(im, ax=ax, shrink=0.8)
        top = np.nanmax(shown) if np.isfinite(shown).any() else 0.0
        for i in range(len(self.classes)):
            for j in range(len(self.classes)):
                v = shown[i, j]
                text = "—" if not np.isfinite(v) else (f"{v:.2f}" if normalize else f"{int(v)}")
                ax.text(j, i, text, ha="center", va="center", fontsize=8,
                        color="white" if np.isfinite(v) and v > top / 2 else "black")
        k = np.arange(len(self.classes))
        ax.set_xticks(k, self.classes, rotation=30 if len(k) > 4 else 0)
        ax.set_yticks(k, self.classes)
        ax.set(xlabel="predicted", ylabel="actual",
               title="Confusion matrix" + (" (row-normalised)" if normalize else " (counts)"))
        return ax

    def plot_calibration(self, ax: Any = None) -> Any:
        """One-vs-rest reliability diagram, one line per class (classes without a curve are left out).
        Returns the matplotlib Axes."""
        ax = axes_or_new(ax)
        ax.plot([0, 1], [0, 1], ls="--", color="grey", lw=1, label="perfectly calibrated")
        for c, cal in self.calibration.items():
            if cal["prob_pred"]:
                label = f"{c} (ECE {cal['ece']:.3f})" if cal.get("ece") is not None else c
                ax.plot(cal["prob_pred"], cal["prob_true"], marker="o", ms=3, label=label)
        n_bins = next(iter(self.calibration.values()))["n_bins"] if self.calibration else 0
        ax.set(xlabel="mean predicted probability", ylabel="observed rate", xlim=(0, 1), ylim=(0, 1),
               title=f"Calibration, one-vs-rest ({n_bins} quantile bins)")
        ax.legend(loc="upper left", fontsize=8)
        return ax


# ------------------------------------------------------------------------------------------------- regression
@dataclass
class RegressionReport(HeldOutReport):
    """Held-out metrics of one regressor, with the target and residual summaries and a sample to plot.

    Attributes
    ----------
    n:
        Rows evaluated.
    primary:
        The metric the report leads with (a key of ``metrics``).
    metrics:
        Every defined metric of :data:`~workbench.evaluation.REGRESSION_METRICS` (``mape`` is left out unless
        every ``y_true`` > 0).
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

    task = "regression"
    directions = REGRESSION_GREATER_IS_BETTER
    _from_saved = {"metrics": nan_for_none, "target": nan_for_none}

    def to_dict(self) -> dict:
        return {"task": self.task, "n": self.n, **self._metrics_dict(), "target": self.target,
                "residual": self.residual, "sample": self.sample, "notes": self.notes}

    def summary(self) -> dict:
        return {**self._metrics_summary(), "target_mean": self.target["mean"], "target_std": self.target["std"],
                "residual_mean": self.residual["mean"]}

    def _html_body(self) -> str:
        t, r = self.target, self.residual
        res = [{"residual quantile": f"{q:g}", "value": v}
               for q, v in zip(r["levels"], r["quantiles"], strict=True)]
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        return (f"<p>{self.n} rows; target mean {t['mean']:.4g}, std {t['std']:.4g}; prediction mean "
                f"{t['prediction_mean']:.4g}; primary metric <b>{esc(self.primary)}</b> = "
                f"{self.primary_value:.4g}</p>" + (f"<ul>{notes}</ul>" if notes else "") + self._metrics_html()
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
