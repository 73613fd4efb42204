"""The fairness report objects of every task (private; public through :mod:`workbench.evaluation` and the task
modules :mod:`~workbench.evaluation.fairness`, :mod:`~workbench.evaluation.regression` and
:mod:`~workbench.evaluation.multiclass`).

:class:`FairnessReport` is the binary report and the shape every task shares: per sensitive feature (and their
intersection) one row per group with its figures and their bootstrap intervals, one row per gap with its
interval and verdict. :class:`TaskFairnessReport` is that shape for the regression and multiclass reports (no
decision threshold, the task's own figures and gaps): :class:`RegressionFairnessReport` and
:class:`MulticlassFairnessReport`. One class holds the views all of them have -- the verdict, the tables, the
summary, the HTML, the matplotlib bar chart, the per-group frame and the app's interactive chart -- and the round
trip through ``to_dict()`` / ``from_dict()``.

Like :mod:`._heldout`, this module imports numpy and nothing heavier (polars, matplotlib and altair only inside the
view that draws with them), so a saved report reads back and renders without scikit-learn, SciPy or Fairlearn;
the slicing that computes the reports is in :mod:`.fairness`, :mod:`.multiclass` and :mod:`.regression`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from .._names import suggest
from .._report import Report, esc, fields_from_dict, html_table
from ..errors import EvaluationError
from ._checks import axes_or_new, check_choice
from ._gaps import RATIO_METRICS, REVIEW

#: The binary gaps (for ``demographic_parity_ratio`` the smallest allowed ratio is the threshold).
GAP_METRICS = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference")
#: The multiclass gaps (per-class recall and selection rate: the largest over classes).
MULTICLASS_GAP_METRICS = ("accuracy_difference", "recall_difference", "selection_rate_difference")
#: The regression gaps (``mae_relative_difference``: a fraction of the overall MAE).
REGRESSION_GAP_METRICS = ("mae_difference", "mae_relative_difference", "mean_residual_difference")
#: The binary per-group rates with a bootstrap interval.
GROUP_METRICS = ("selection_rate", "tpr", "fpr", "accuracy")
GAP_COLUMNS = ("feature", "metric", "value", "ci_low", "ci_high", "threshold", "verdict", "groups_used",
               "groups_insufficient", "value_all_groups", "ci_high_all_groups", "fairlearn_value")
#: Overall verdict: the worst of the gated gaps ("insufficient evidence" is the pre-round-2 spelling).
_ORDER = ("exceeds threshold", REVIEW, "insufficient evidence", "within threshold")
_PLOT_METRICS = (*GROUP_METRICS, "pr_auc")
_CSS = {"within threshold": "wb-ok", "exceeds threshold": "wb-bad", "insufficient evidence": "wb-warn",
        REVIEW: "wb-warn"}


@dataclass
class FairnessReport(Report):
    """Per-group slices, gaps with bootstrap intervals and verdicts, for each sensitive feature and their
    intersection.

    Attributes
    ----------
    features:
        The sensitive features, then their intersection (named ``"sex & race"``) when there are several.
    groups:
        Per feature, one row per group: ``group``, ``count``, ``positives``, ``selection_rate``, ``tpr``,
        ``fpr``, ``accuracy``, ``pr_auc`` (None where undefined), ``evidence`` ("ok" or "insufficient
        evidence": fewer than ``min_slice_size`` rows), ``evidence_tpr_fpr`` (also needs ``min_slice_size``
        positives and negatives), ``note`` and ``ci`` (per rate, ``[low, high]``).
    gaps:
        One row per (feature, gap metric); see :meth:`gaps_table`. ``groups_excluded`` lists the groups left
        out.
    overall:
        The same figures over all rows.
    """

    features: list[str]
    groups: dict[str, list[dict]]
    gaps: list[dict]
    overall: dict[str, Any]
    threshold: float | None
    thresholds: dict[str, float]
    min_slice_size: int
    confidence_level: float
    n_bootstrap: int
    seed: int
    n_rows: int
    title: str = "Fairness slices"
    notes: list[str] = field(default_factory=list)
    acknowledge: dict[str, dict[str, str]] = field(default_factory=dict)

    #: The task the report is for (the task reports make it a field, saved as ``task``).
    task: ClassVar[str] = "binary_classification"
    gap_metrics: ClassVar[tuple[str, ...]] = GAP_METRICS
    _html_spec: ClassVar[str] = ".3f"  # per-group figures in the HTML tables

    def __post_init__(self) -> None:
        settings = (self.min_slice_size, self.confidence_level, self.n_bootstrap, self.seed)
        if not self.notes and None not in settings:  # a report read back without notes or settings keeps none
            self.notes = self._default_notes()

    def _default_notes(self) -> list[str]:
        return [
            f"value / ci are computed over groups with at least {self.min_slice_size} rows (for equalized "
            "odds, also at least that many positives and negatives); smaller groups are 'insufficient "
            "evidence', kept with their (wide) intervals, and counted in value_all_groups / "
            "ci_high_all_groups.",
            "A gap involving an insufficient group 'exceeds threshold' when even its lower bound does; "
            "otherwise the gap is 'insufficient evidence — review' until the brief's fairness.acknowledge "
            "names every such group with a reason. fairlearn_value is Fairlearn's own figure over every "
            "group on the same predictions.",
            f"Intervals: {self.confidence_level:.0%} percentile bootstrap, {self.n_bootstrap} "
            f"replicates resampled within each feature's groups; each feature has its own generator (seed "
            f"{self.seed} and the feature's name), so adding a feature does not change another's intervals.",
            "A gap is 'within threshold' only when its whole interval is (upper bound <= threshold; "
            "for the ratio, lower bound >= threshold) and no group lacks evidence.",
        ]

    # ------------------------------------------------------------------ views
    @property
    def verdict(self) -> str:
        """Overall: any gap exceeding -> "exceeds threshold"; else any needing review -> "insufficient
        evidence — review" (acknowledged or not: the gates decide); else "within threshold" ("no threshold"
        when no gap has one)."""
        verdicts = [g.get("verdict") for g in self.gaps if g.get("threshold") is not None]
        for v in _ORDER:
            if v in verdicts:
                return v
        return "no threshold"

    @property
    def figures(self) -> list[str]:
        """The per-group figures that carry an interval (the keys of each row's ``ci``), in the report's order."""
        for rows in self.groups.values():
            if rows:
                return list(rows[0].get("ci") or {})
        return []

    @property
    def per_class(self) -> bool:
        """Whether some gap names the class it is largest for (the multiclass per-class gaps)."""
        return any("class" in g for g in self.gaps)

    def gaps_table(self) -> list[dict]:
        """One dict per (feature, metric): feature, metric, value, ci_low, ci_high, threshold, verdict,
        groups_used, groups_insufficient, value_all_groups, ci_high_all_groups, fairlearn_value."""
        return [{k: g.get(k) for k in GAP_COLUMNS} for g in self.gaps]

    def feature_gaps(self, feature: str) -> list[dict]:
        """The gap rows of one feature (none for a feature the report does not have)."""
        return [g for g in self.gaps if g.get("feature") == feature]

    def group_table(self, feature: str) -> list[dict]:
        """The group rows of one feature, flat (each interval as ``<rate>_ci_low``/``<rate>_ci_high``)."""
        rows = []
        for r in self._rows(feature):
            flat = {k: v for k, v in r.items() if k != "ci"}
            for m, (lo, hi) in r["ci"].items():
                flat[f"{m}_ci_low"], flat[f"{m}_ci_high"] = lo, hi
            rows.append(flat)
        return rows

    def insufficient_groups(self) -> dict[str, list[str]]:
        """Per feature, the groups without enough evidence (a feature whose groups all have enough is left out)."""
        out = {f: [r["group"] for r in rows if r.get("evidence") != "ok"] for f, rows in self.groups.items()}
        return {f: g for f, g in out.items() if g}

    def _rows(self, feature: str) -> list[dict]:
        if feature not in self.groups:
            raise EvaluationError(f"unknown feature {feature!r}{suggest(feature, self.features)}",
                                  argument="feature", hint=f"use one of: {', '.join(self.features)}")
        return self.groups[feature]

    def figure_evidence(self, row: Mapping[str, Any], figure: str) -> str:
        """Whether a group row has enough rows to compare on ``figure``: binary TPR/FPR also need positives and
        negatives (``evidence_tpr_fpr``), a multiclass ``recall[<class>]`` rows of that class
        (``evidence_recall``); every other figure the group's rows (``evidence``)."""
        ev = row.get("evidence_tpr_fpr") if figure in ("tpr", "fpr") else row.get("evidence")
        cls = _recall_class(figure)
        if cls is not None and row.get("evidence") == "ok":
            ev = (row.get("evidence_recall") or {}).get(cls, ev)
        return ev or ""

    def slice_frame(self, feature: str, figure: str) -> Any:
        """One figure in each group of ``feature``, with its bootstrap interval, as a polars frame.

        Columns: ``group``, ``n``, ``positives``, ``value``, ``ci_low``, ``ci_high``, ``evidence``, ``note``.
        ``positives`` is the group's rows of the positive class (binary) or of the class a multiclass
        ``recall[c]`` is about, and null for the other figures; ``evidence`` is the figure's own
        (:meth:`figure_evidence`). Non-finite values are null.
        """
        import polars as pl

        cls = _recall_class(figure)
        rows = []
        for g in self._rows(feature):
            ci = (g.get("ci") or {}).get(figure) or [None, None]
            positives = (g.get("class_counts") or {}).get(cls) if cls is not None else g.get("positives")
            rows.append({"group": str(g["group"]), "n": int(g.get("count", 0)),
                         "positives": None if positives is None else int(positives),
                         "value": _finite(g.get(figure)), "ci_low": _finite(ci[0]), "ci_high": _finite(ci[1]),
                         "evidence": self.figure_evidence(g, figure), "note": g.get("note") or ""})
        schema = {"group": pl.String, "n": pl.Int64, "positives": pl.Int64, "value": pl.Float64,
                  "ci_low": pl.Float64, "ci_high": pl.Float64, "evidence": pl.String, "note": pl.String}
        return pl.DataFrame(rows, schema=schema)

    # ------------------------------------------------------------------ report protocol
    def _dict_head(self) -> dict:
        return {"verdict": self.verdict, "n_rows": self.n_rows, "threshold": self.threshold}

    def _extra_dict(self) -> dict:
        return {}

    def to_dict(self) -> dict:
        return {**self._dict_head(), "thresholds": self.thresholds, "min_slice_size": self.min_slice_size,
                "confidence_level": self.confidence_level, "n_bootstrap": self.n_bootstrap, "seed": self.seed,
                "features": self.features, "overall": self.overall, "gaps": self.gaps, "groups": self.groups,
                "notes": self.notes, "acknowledge": self.acknowledge, **self._extra_dict()}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FairnessReport:
        """Rebuild a report from :meth:`to_dict` output (e.g. a saved JSON file); ``verdict`` is derived again.
        A key the file lacks (a run cut short, a file from before the key existed) reads as empty."""
        return cls(**fields_from_dict(cls, d))

    def summary(self) -> dict:
        """Overall verdict and, per gap metric, the worst interval bound over features (upper bound; for the
        ratio, lower bound) with its feature, plus the groups without enough evidence."""
        worst: dict[str, dict | None] = {}
        for metric in self.gap_metrics:
            rows = [g for g in self.gaps if g["metric"] == metric and g["ci_high"] is not None]
            ratio = metric in RATIO_METRICS
            bound = "ci_low" if ratio else "ci_high"
            if not rows:
                worst[metric] = None
                continue
            w = (min if ratio else max)(rows, key=lambda g: g[bound])
            worst[metric] = {"feature": w["feature"], "value": w["value"], "bound": bound,
                             bound: w[bound], "threshold": w["threshold"], "verdict": w["verdict"]}
        return {"fairness_verdict": self.verdict, "worst_gaps": worst,
                "insufficient_groups": self.insufficient_groups(),
                "min_slice_size": self.min_slice_size, "confidence_level": self.confidence_level}

    # ------------------------------------------------------------------ HTML
    def _html_lead(self) -> str:
        return f"{self.n_rows} rows, decision threshold {self.threshold:g}"

    def _gap_html(self, g: dict) -> dict:
        return gap_html_row(g)

    def _group_html(self, r: dict) -> dict:
        return {"group": r["group"], "count": r["count"], "positives": r["positives"]}

    def _group_html_tail(self, r: dict) -> dict:
        return {"pr_auc": r["pr_auc"]}

    def _html_body(self) -> str:
        css = _CSS.get(self.verdict, "")
        parts = [f"<p>{self._html_lead()}. Overall: <span class='{css}'>{esc(self.verdict)}</span></p>",
                 "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in self.notes) + "</ul>",
                 "<h4>Gaps</h4>" + html_table([self._gap_html(g) for g in self.gaps])]
        spec = self._html_spec
        for feature in self.features:
            rows = []
            for r in self.groups[feature]:
                row = self._group_html(r)
                for m, (lo, hi) in r["ci"].items():
                    row[m] = "—" if r[m] is None else (
                        f"{r[m]:{spec}} [{lo:{spec}}, {hi:{spec}}]" if lo is not None else f"{r[m]:{spec}}")
                rows.append({**row, **self._group_html_tail(r), "evidence": r["evidence"], "note": r["note"]})
            parts.append(f"<h4>By {esc(feature)}</h4>" + html_table(rows, formats={"pr_auc": ".3f"}))
        return "".join(parts)

    # ------------------------------------------------------------------ charts
    def _plot_metrics(self) -> list[str]:
        return list(_PLOT_METRICS)

    def _plot_evidence_key(self, metric: str) -> str:
        return "evidence_tpr_fpr" if metric in ("tpr", "fpr") else "evidence"

    def plot(self, feature: str, metric: str | None = None, *, ax: Any = None) -> Any:
        """Bar chart of one rate per group (default: the first of the report's figures) with its bootstrap
        interval; groups without enough evidence are grey and hatched, the dashed line is the overall value.
        Returns the matplotlib Axes."""
        choices = self._plot_metrics()
        metric = choices[0] if metric is None else metric
        check_choice(metric, choices, argument="metric")
        rows = self._rows(feature)
        ax = axes_or_new(ax)
        key = self._plot_evidence_key(metric)
        ok = np.array([r[key] == "ok" for r in rows])
        val = np.array([np.nan if r[metric] is None else r[metric] for r in rows], dtype=float)
        ci = np.array([r["ci"].get(metric, [None, None]) for r in rows], dtype=float).reshape(len(rows), 2)
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

    def chart(self, feature: str, figure: str | None = None) -> Any:
        """The stakeholder app's interactive chart of one figure (default: the first of :attr:`figures`) in each
        group of ``feature``: dot = estimate, line = bootstrap interval, hollow grey = too little evidence, the
        overall value as a reference line (an altair chart; see
        :func:`workbench.evaluation._charts.fairness_slice_chart`)."""
        from ._charts import fairness_slice_chart

        figures = self.figures
        figure = check_choice(figures[0] if figure is None and figures else str(figure), figures, argument="figure")
        return fairness_slice_chart(self.slice_frame(feature, figure), feature=feature, metric=figure,
                                    overall=self.overall.get(figure), confidence_level=self.confidence_level)


@dataclass
class TaskFairnessReport(FairnessReport):
    """The shape of :class:`FairnessReport` for the regression and multiclass tasks.

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
    _html_spec: ClassVar[str] = ".4g"

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

    def _dict_head(self) -> dict:
        return {"task": self.task, "verdict": self.verdict, "n_rows": self.n_rows}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> TaskFairnessReport:
        """Rebuild a report from :meth:`to_dict` output (e.g. a saved JSON file)."""
        return cls(**{**fields_from_dict(cls, d), "threshold": None})

    def _html_lead(self) -> str:
        return f"{self.n_rows} rows ({esc(self.task)})"

    def _gap_html(self, g: dict) -> dict:
        return {**gap_html_row(g), "max / min group": f"{g.get('max_group')} / {g.get('min_group')}"}

    def _group_html(self, r: dict) -> dict:
        return {"group": r["group"], "count": r["count"]}

    def _group_html_tail(self, r: dict) -> dict:
        return {}

    def _plot_metrics(self) -> list[str]:
        return self.figures

    def _plot_evidence_key(self, metric: str) -> str:
        return "evidence"


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


@dataclass
class MulticlassFairnessReport(TaskFairnessReport):
    """Per-group accuracy, per-class recall (``recall[<class>]``) and per-class selection rate
    (``selection_rate[<class>]``, the share predicted as that class) with bootstrap intervals, and the gaps
    :data:`MULTICLASS_GAP_METRICS` with intervals and verdicts, per sensitive feature and their intersection.

    Group rows also hold ``class_counts`` and ``evidence_recall`` (per class: "ok" when the group has at least
    ``min_slice_size`` rows of that class). Gap rows of the per-class gaps also hold ``class`` (the class with
    the largest gap), ``per_class`` (each class's gap) and ``groups_used_by_class``. See
    :class:`TaskFairnessReport` for the common shape.
    """

    task: str = "multiclass_classification"
    classes: list[str] = field(default_factory=list)
    title: str = "Fairness slices (multiclass)"
    gap_metrics: ClassVar[tuple[str, ...]] = MULTICLASS_GAP_METRICS

    def _default_notes(self) -> list[str]:
        return [*super()._default_notes(),
                "The predicted class is the argmax of the probabilities. recall_difference and "
                "selection_rate_difference are the largest over classes of the max - min across groups; a "
                f"group's recall of a class is compared only when it has at least {self.min_slice_size} rows "
                "of that class."]

    def _extra_dict(self) -> dict:
        return {"classes": self.classes}


def gap_html_row(g: dict) -> dict:
    """A gap row as the report's HTML table shows it: the gated figure beside the all-groups and Fairlearn
    figures, the insufficient groups and their acknowledgement."""
    def f(x: Any) -> str:
        return "—" if x is None else f"{x:.4g}"

    acked = g.get("acknowledged") or []
    return {
        "feature": g["feature"], "metric": g["metric"], **({"class": g["class"]} if "class" in g else {}),
        "value [CI]": f"{f(g['value'])} [{f(g['ci_low'])}, {f(g['ci_high'])}]",
        "all groups [CI high]": f"{f(g.get('value_all_groups'))} [≤ {f(g.get('ci_high_all_groups'))}]",
        "fairlearn": f(g.get("fairlearn_value")), "threshold": g["threshold"], "verdict": g["verdict"],
        "groups used": len(g["groups_used"]),
        "insufficient": ", ".join(g.get("groups_insufficient", g.get("groups_excluded", []))) or "—",
        "acknowledged": "; ".join(f"{a['group']}: {a['reason']}" for a in acked) or "—",
    }


def _recall_class(figure: str) -> str | None:
    """The class of a multiclass ``recall[<class>]`` figure, else None."""
    return figure[len("recall["):-1] if figure.startswith("recall[") and figure.endswith("]") else None


def _finite(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if np.isfinite(f) else None
