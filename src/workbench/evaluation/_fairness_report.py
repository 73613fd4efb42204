"""The fairness report object (private; public through :mod:`workbench.evaluation.fairness`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._names import suggest
from .._report import Report, esc, html_table
from ..errors import EvaluationError
from ._checks import axes_or_new, check_choice

GAP_METRICS = ("demographic_parity_difference", "demographic_parity_ratio", "equalized_odds_difference")
GAP_COLUMNS = ("feature", "metric", "value", "ci_low", "ci_high", "threshold", "verdict", "groups_used",
               "groups_insufficient", "value_all_groups", "ci_high_all_groups", "fairlearn_value")
REVIEW = "insufficient evidence — review"
#: Overall verdict: the worst of the gated gaps ("insufficient evidence" is the pre-round-2 spelling).
_ORDER = ("exceeds threshold", REVIEW, "insufficient evidence", "within threshold")
_PLOT_METRICS = ("selection_rate", "tpr", "fpr", "accuracy", "pr_auc")
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
        evidence": fewer than ``min_slice_size`` rows), ``evidence_tpr_fpr`` (also needs ``min_slice_size`` positives and negatives),
        ``note`` and ``ci`` (per rate, ``[low, high]``).
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
    threshold: float
    thresholds: dict[str, float]
    min_slice_size: int
    confidence_level: float
    n_bootstrap: int
    seed: int
    n_rows: int
    title: str = "Fairness slices"
    notes: list[str] = field(default_factory=list)
    acknowledge: dict[str, dict[str, str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.notes:
            self.notes = [
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
        verdicts = [g["verdict"] for g in self.gaps if g["threshold"] is not None]
        for v in _ORDER:
            if v in verdicts:
                return v
        return "no threshold"

    def gaps_table(self) -> list[dict]:
        """One dict per (feature, metric): feature, metric, value, ci_low, ci_high, threshold, verdict,
        groups_used, groups_insufficient, value_all_groups, ci_high_all_groups, fairlearn_value."""
        return [{k: g.get(k) for k in GAP_COLUMNS} for g in self.gaps]

    def group_table(self, feature: str) -> list[dict]:
        """The group rows of one feature, flat (each interval as ``<rate>_ci_low``/``<rate>_ci_high``)."""
        rows = []
        for r in self._rows(feature):
            flat = {k: v for k, v in r.items() if k != "ci"}
            for m, (lo, hi) in r["ci"].items():
                flat[f"{m}_ci_low"], flat[f"{m}_ci_high"] = lo, hi
            rows.append(flat)
        return rows

    def _rows(self, feature: str) -> list[dict]:
        if feature not in self.groups:
            raise EvaluationError(f"unknown feature {feature!r}{suggest(feature, self.features)}",
                                  argument="feature", hint=f"use one of: {', '.join(self.features)}")
        return self.groups[feature]

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "n_rows": self.n_rows, "threshold": self.threshold,
                "thresholds": self.thresholds, "min_slice_size": self.min_slice_size,
                "confidence_level": self.confidence_level, "n_bootstrap": self.n_bootstrap, "seed": self.seed,
                "features": self.features, "overall": self.overall, "gaps": self.gaps, "groups": self.groups,
                "notes": self.notes, "acknowledge": self.acknowledge}

    def summary(self) -> dict:
        """Overall verdict and, per gap metric, the worst interval bound over features (upper bound; for the
        ratio, lower bound) with its feature, plus the groups without enough evidence."""
        worst: dict[str, dict | None] = {}
        for metric in GAP_METRICS:
            rows = [g for g in self.gaps if g["metric"] == metric and g["ci_high"] is not None]
            ratio = metric == "demographic_parity_ratio"
            bound = "ci_low" if ratio else "ci_high"
            if not rows:
                worst[metric] = None
                continue
            w = (min if ratio else max)(rows, key=lambda g: g[bound])
            worst[metric] = {"feature": w["feature"], "value": w["value"], "bound": bound,
                             bound: w[bound], "threshold": w["threshold"], "verdict": w["verdict"]}
        insufficient = {f: [r["group"] for r in rows if r["evidence"] != "ok"]
                        for f, rows in self.groups.items()}
        return {"fairness_verdict": self.verdict, "worst_gaps": worst,
                "insufficient_groups": {f: g for f, g in insufficient.items() if g},
                "min_slice_size": self.min_slice_size, "confidence_level": self.confidence_level}

    def _html_body(self) -> str:
        css = _CSS.get(self.verdict, "")
        gaps = [gap_html_row(g) for g in self.gaps]
        parts = [f"<p>{self.n_rows} rows, decision threshold {self.threshold:g}. Overall: "
                 f"<span class='{css}'>{esc(self.verdict)}</span></p>",
                 "<ul>" + "".join(f"<li>{esc(n)}</li>" for n in self.notes) + "</ul>",
                 "<h4>Gaps</h4>" + html_table(gaps)]
        for feature in self.features:
            rows = []
            for r in self.groups[feature]:
                row = {k: r[k] for k in ("group", "count", "positives")}
                for m in ("selection_rate", "tpr", "fpr", "accuracy"):
                    lo, hi = r["ci"][m]
                    row[m] = "—" if r[m] is None else (
                        f"{r[m]:.3f} [{lo:.3f}, {hi:.3f}]" if lo is not None else f"{r[m]:.3f}")
                rows.append({**row, "pr_auc": r["pr_auc"], "evidence": r["evidence"], "note": r["note"]})
            parts.append(f"<h4>By {esc(feature)}</h4>" + html_table(rows, formats={"pr_auc": ".3f"}))
        return "".join(parts)

    def plot(self, feature: str, metric: str = "selection_rate", *, ax: Any = None) -> Any:
        """Bar chart of one rate per group with its bootstrap interval; groups without enough evidence are
        grey and hatched, the dashed line is the overall value. Returns the matplotlib Axes."""
        check_choice(metric, _PLOT_METRICS, argument="metric")
        rows = self._rows(feature)
        ax = axes_or_new(ax)
        key = "evidence_tpr_fpr" if metric in ("tpr", "fpr") else "evidence"
        ok = np.array([r[key] == "ok" for r in rows])
        val = np.array([np.nan if r[metric] is None else r[metric] for r in rows], dtype=float)
        ci = np.array([r["ci"].get(metric, [None, None]) for r in rows], dtype=float)  # None -> NaN
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
        ax.set_xticks(x, [r["group"] for r in rows], rotation=30 if len(rows) > 4 else 0,
                      ha="right" if len(rows) > 4 else "center")
        ax.set_ylabel(metric)
        ax.set_title(f"{metric} by {feature}, {self.confidence_level:.0%} bootstrap intervals", fontsize=10)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc="best", fontsize=8)
        return ax


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
