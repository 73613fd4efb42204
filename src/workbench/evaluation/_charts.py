"""The charts the stakeholder app shows, drawn once, for the report objects that own them (private).

Each report object that the app charts has a ``chart...()`` method returning an altair (Vega-Lite) chart drawn
here -- :meth:`FairnessReport.chart <workbench.evaluation.FairnessReport.chart>` -- with a static matplotlib
twin built from the same frame. The charts speak the app's plain language ("too few people to compare",
"likely range") and keep the colour convention of :mod:`workbench._report` (blue: enough evidence, grey: too
little); each is tagged with :func:`workbench._report.chart_id`.

altair and matplotlib are imported only when a chart is asked for.
"""

from __future__ import annotations

from typing import Any

from .._report import BLUE, CHART_WIDTH, DARK, GREY, chart_id

__all__ = ["FIGURE_LABELS", "figure_label", "is_rate", "fairness_slice_chart", "fairness_slice_figure"]

FIGURE_LABELS = {
    "selection_rate": "selection rate",
    "tpr": "true positive rate (TPR)",
    "fpr": "false positive rate (FPR)",
    "accuracy": "accuracy",
    "mae": "mean absolute error (MAE)",
    "mean_prediction": "mean prediction",
    "mean_residual": "mean residual (actual - predicted)",
}
"""Labels of the per-group figures a fairness report carries (multiclass ``recall[c]`` / ``selection_rate[c]``
are labelled by :func:`figure_label`)."""

_TARGET_UNIT_FIGURES = ("mae", "mean_prediction", "mean_residual")
_EVIDENCE = ("enough people to compare", "too few people to compare")


def figure_label(metric: str) -> str:
    """A per-group figure as a reader names it: ``tpr`` -> "true positive rate (TPR)", ``recall[Adelie]`` ->
    "recall of Adelie", ``selection_rate[Adelie]`` -> "share predicted Adelie"."""
    if metric.endswith("]") and "[" in metric:
        name, cls = metric[:-1].split("[", 1)
        if name == "recall":
            return f"recall of {cls}"
        if name == "selection_rate":
            return f"share predicted {cls}"
        return f"{FIGURE_LABELS.get(name, name.replace('_', ' '))} of {cls}"
    return FIGURE_LABELS.get(metric, metric.replace("_", " "))


def is_rate(metric: str) -> bool:
    """Whether a per-group figure is a share in [0, 1] (every classification figure), not a target-unit value."""
    return metric not in _TARGET_UNIT_FIGURES


def _d3_format(metric: str) -> str:
    """The d3 format of a per-group figure: rates as percentages, target units as numbers."""
    return ".1%" if is_rate(metric) else ".4g"


def _value_text(metric: str, v: float | None) -> str:
    if v is None:
        return ""
    return f"{100 * v:.1f}%" if is_rate(metric) else f"{v:.4g}"


# =============================================================================================== fairness slice
def fairness_slice_chart(frame: Any, *, feature: str, metric: str, overall: float | None = None,
                         confidence_level: float | None = None) -> Any:
    """The fairness slice chart, interactive, from :meth:`FairnessReport.slice_frame`'s frame: each group's
    figure (dot) and its interval (line); blue = enough evidence, hollow grey = too little. Hover shows the group,
    its people, the figure, the interval and the evidence; click a group to pick it out."""
    import altair as alt
    import polars as pl

    label = figure_label(metric)
    level = f"{confidence_level:.0%} " if confidence_level else ""
    shown = frame.filter(pl.col("value").is_not_null())
    data = pl.DataFrame({
        "group": shown["group"],
        "label": [f"{g} (n={n})" for g, n in zip(shown["group"], shown["n"], strict=True)],
        "people": shown["n"],
        "value": shown["value"], "ci_low": shown["ci_low"], "ci_high": shown["ci_high"],
        "figure": [_value_text(metric, v) for v in shown["value"].to_list()],
        "interval": ["" if lo is None or hi is None else f"{_value_text(metric, lo)} to {_value_text(metric, hi)}"
                     for lo, hi in zip(shown["ci_low"].to_list(), shown["ci_high"].to_list(), strict=True)],
        "evidence": [_EVIDENCE[0] if e == "ok" else _EVIDENCE[1] for e in shown["evidence"].to_list()],
        "note": shown["note"],
    }, schema={"group": pl.String, "label": pl.String, "people": pl.Int64, "value": pl.Float64,
               "ci_low": pl.Float64, "ci_high": pl.Float64, "figure": pl.String, "interval": pl.String,
               "evidence": pl.String, "note": pl.String})
    order = [f"{g} (n={n})" for g, n in zip(frame["group"], frame["n"], strict=True)]
    evidence = list(_EVIDENCE)
    pick = alt.selection_point(fields=["group"], name="group_pick", on="click", clear="dblclick")
    tooltip = [alt.Tooltip("group:N", title=feature), alt.Tooltip("people:Q", title="people"),
               alt.Tooltip("figure:N", title=label), alt.Tooltip("interval:N", title=f"{level}likely range"),
               alt.Tooltip("evidence:N", title="evidence")]
    if is_rate(metric):
        scale = alt.Scale(domain=[-0.02, 1.02], nice=False)
    else:
        scale = alt.Scale(zero=metric.startswith("mean_residual"), nice=True, padding=12)
    y = alt.Y("label:N", sort=order, title=None, axis=alt.Axis(labelLimit=260))
    x_title = f"{label}: dot = estimate, line = {level}bootstrap interval"
    base = alt.Chart(data)
    lines = base.mark_rule(strokeWidth=3).encode(
        x=alt.X("ci_low:Q", scale=scale, title=x_title, axis=alt.Axis(format=_d3_format(metric))), x2="ci_high:Q",
        y=y, color=alt.Color("evidence:N", scale=alt.Scale(domain=evidence, range=[BLUE, GREY]),
                             legend=alt.Legend(title="evidence", orient="bottom")),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.3)), tooltip=tooltip)
    dots = base.mark_point(size=110, strokeWidth=2, opacity=1).encode(
        x=alt.X("value:Q", scale=scale), y=y,
        stroke=alt.Stroke("evidence:N", scale=alt.Scale(domain=evidence, range=[BLUE, GREY]), legend=None),
        fill=alt.Fill("evidence:N", scale=alt.Scale(domain=evidence, range=[BLUE, "white"]), legend=None),
        fillOpacity=alt.condition(pick, alt.value(1.0), alt.value(0.3)),
        tooltip=tooltip,
    ).add_params(pick)
    layers = [lines, dots]
    refs = []
    if overall is not None:
        refs.append({"line": f"everyone: {_value_text(metric, overall)}", "value": float(overall), "kind": "everyone"})
    if metric.startswith("mean_residual"):
        refs.append({"line": "zero: no under- or over-estimate", "value": 0.0, "kind": "zero"})
    if refs:
        layers.insert(0, alt.Chart(pl.DataFrame(refs)).mark_rule(strokeWidth=1.2).encode(
            x=alt.X("value:Q", scale=scale),
            strokeDash=alt.StrokeDash("kind:N", scale=alt.Scale(domain=["everyone", "zero"], range=[[6, 4], [1, 0]]),
                                      legend=None),
            color=alt.value(DARK), tooltip=[alt.Tooltip("line:N", title="line")]))
    chart = alt.layer(*layers).properties(
        width=CHART_WIDTH, height=32 * max(len(order), 3),
        title=f"{label} by {feature} (hollow grey: too little evidence)")
    return chart_id(chart, "fairness")


def fairness_slice_figure(frame: Any, *, feature: str, metric: str, overall: float | None = None,
                          confidence_level: float | None = None) -> Any:
    """The fairness slice chart as a static matplotlib Figure, from the same frame as
    :func:`fairness_slice_chart`: point estimate and confidence interval per group; groups with too little
    evidence are hollow and grey."""
    from matplotlib.figure import Figure

    label = figure_label(metric)
    n = frame.height
    fig = Figure(figsize=(6.5, 0.42 * max(n, 2) + 1.3), layout="constrained")
    ax = fig.add_subplot()
    for y, r in enumerate(frame.iter_rows(named=True)):
        if r["value"] is None:
            continue
        ok = r["evidence"] == "ok"
        if r["ci_low"] is not None and r["ci_high"] is not None:
            ax.plot([r["ci_low"], r["ci_high"]], [y, y], color=BLUE if ok else GREY, linewidth=2.2)
        ax.plot([r["value"]], [y], "o", markersize=7, color=BLUE if ok else GREY,
                markerfacecolor=BLUE if ok else "white")
    ax.set_yticks(range(n), [f"{g} (n={c})" for g, c in zip(frame["group"], frame["n"], strict=True)], fontsize=8)
    ax.invert_yaxis()
    if overall is not None:
        ax.axvline(overall, color=DARK, linestyle="--", linewidth=1, label=f"everyone {overall:.3f}")
        ax.legend(fontsize=7, loc="best")
    level = f"{confidence_level:.0%} " if confidence_level else ""
    ax.set_xlabel(f"{label}: dot = estimate, line = {level}bootstrap interval", fontsize=8)
    ax.set_title(f"{label} by {feature} (hollow grey: too little evidence)", fontsize=10)
    if is_rate(metric):
        ax.set_xlim(-0.02, 1.02)
    else:  # target units (regression): fit the intervals, and show where zero is for residuals
        if metric.startswith("mean_residual"):
            ax.axvline(0.0, color="#555", linewidth=0.8)
        ax.margins(x=0.08)
    return fig
