"""The charts the stakeholder app shows, drawn once, for the report objects that own them (private).

Each report object that the app charts has a ``chart...()`` method returning an altair (Vega-Lite) chart drawn
here -- :meth:`FairnessReport.chart <workbench.evaluation.FairnessReport.chart>`,
:meth:`Leaderboard.chart <workbench.experiments.Leaderboard.chart>` (from the saved leaderboard dict, so the app
draws it without importing the training code), :meth:`SavedShap.chart
<workbench.evaluation._shap_saved.SavedShap.chart>` and :meth:`SavedShap.drivers_chart
<workbench.evaluation._shap_saved.SavedShap.drivers_chart>` -- with a static matplotlib twin built from the
same frame. The charts speak the app's plain language ("too few people to compare",
"likely range") and keep the colour convention of :mod:`workbench._report` (blue: enough evidence, grey: too
little); each is tagged with :func:`workbench._report.chart_id`.

altair and matplotlib are imported only when a chart is asked for.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from .._report import BLUE, CHART_WIDTH, DARK, GREEN, GREY, GROUP_COLOURS, ORANGE, chart_id

__all__ = ["FIGURE_LABELS", "figure_label", "is_rate", "fairness_slice_chart", "fairness_slice_figure",
           "performance_frame", "performance_bars", "performance_chart", "performance_figure", "importance_chart",
           "importance_figure", "driver_order", "drivers_chart", "drivers_figure"]

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


# =============================================================================================== performance
def performance_frame(leaderboard: Mapping[str, Any]) -> Any:
    """Every model of a saved leaderboard (``Leaderboard.to_dict()`` / ``reports/leaderboard.json``) on the
    held-out split against the best baseline.

    Columns: ``model``, ``kind``, ``role`` (selected / best baseline / candidate / baseline), the primary metric
    (held-out), ``cv_mean``, ``cv_std``, ``delta_vs_baseline``, ``beats_baseline``, then the other held-out
    metrics.
    """
    import polars as pl

    primary = leaderboard["primary"]
    best, selected = leaderboard.get("best_baseline"), leaderboard.get("selected")
    comparisons = leaderboard.get("comparisons", {})
    rows = []
    for name, m in leaderboard["models"].items():
        test = m.get("test", {}).get("metrics", {})
        cv = m.get("cv") or {}
        comp = comparisons.get(name, {})
        role = ("selected" if name == selected else "best baseline" if name == best
                else m.get("kind", ""))
        rows.append({"model": name, "kind": m.get("kind", ""), "role": role, primary: test.get(primary),
                     "cv_mean": (cv.get("mean") or {}).get(primary), "cv_std": (cv.get("std") or {}).get(primary),
                     "delta_vs_baseline": comp.get("primary_delta"), "beats_baseline": comp.get("beats_baseline"),
                     **{k: v for k, v in test.items() if k != primary}})
    return pl.DataFrame(rows)


def performance_bars(leaderboard: Mapping[str, Any], *,
                     model_label: Callable[[str], str] | None = None) -> dict[str, Any]:
    """What both performance charts draw, from :func:`performance_frame`: ``frame`` (``model``, ``name`` (the
    model as ``model_label`` names it), ``role``, ``value``, ``colour``, top to bottom), ``primary``, ``higher``
    (greater is better), ``classifier``, and ``to_beat`` (``best``, ``value``, ``sign``) when the leaderboard has
    a best baseline."""
    import polars as pl

    from ..tasks import get_task

    name_of = model_label or str
    frame = performance_frame(leaderboard)
    primary = leaderboard["primary"]
    task = get_task(str(leaderboard.get("task") or "binary_classification"))
    higher = task.greater_is_better(primary) if primary in task.metrics else True
    roles = frame["role"].to_list()
    bars = pl.DataFrame({
        "model": frame["model"], "name": [name_of(m) for m in frame["model"].to_list()], "role": frame["role"],
        "value": [v if v is not None else 0.0 for v in frame[primary].to_list()],
        "colour": [ORANGE if r == "selected" else GREY if r in ("baseline", "best baseline") else BLUE
                   for r in roles],
    }, schema={"model": pl.String, "name": pl.String, "role": pl.String, "value": pl.Float64, "colour": pl.String})
    to_beat = None
    best = leaderboard.get("best_baseline")
    if best in leaderboard["models"]:
        base = leaderboard["models"][best]["test"]["metrics"][primary]
        margin = float(leaderboard.get("min_improvement") or 0.0)
        to_beat = {"best": best, "value": base + margin if higher else base - margin, "sign": "+" if higher else "-"}
    return {"frame": bars, "primary": primary, "higher": higher, "classifier": task.is_classifier,
            "to_beat": to_beat}


def performance_chart(leaderboard: Mapping[str, Any], *, success_threshold: float | None = None,
                      metric_label: str | None = None, model_label: Callable[[str], str] | None = None) -> Any:
    """The performance chart, interactive, from a saved leaderboard: the primary metric per model (the selected
    candidate orange, baselines grey, other candidates blue) against the bar to beat (dashed) and the brief's
    success threshold (dotted green); hover a bar for the model, its role and its figure, click one to pick it
    out. ``metric_label`` names the primary metric and ``model_label`` the models (default: their keys)."""
    import altair as alt
    import polars as pl

    name_of = model_label or str
    d = performance_bars(leaderboard, model_label=name_of)
    frame, primary, higher = d["frame"], d["primary"], d["higher"]
    label = metric_label or primary
    better = "higher" if higher else "lower"
    values = frame["value"].to_list()
    lo, hi = min([0.0, *values]), max([1.0 if d["classifier"] else 0.0, *values])
    domain = [lo * 1.12 if lo < 0 else 0.0, hi * 1.12 if hi > 0 else 1.0]
    roles = ["selected", "best baseline", "baseline", "candidate"]
    colours = [ORANGE, GREY, GREY, BLUE]
    data = frame.with_columns(pl.col("value").round(6), pl.col("role").replace("", "candidate"))
    pick = alt.selection_point(fields=["model"], name="model_pick", on="click", clear="dblclick")
    y = alt.Y("name:N", sort=data["name"].to_list(), title=None, axis=alt.Axis(labelLimit=260))
    x = alt.X("value:Q", scale=alt.Scale(domain=domain, nice=False), title=f"{label} on test data ({better} is better)")
    base = alt.Chart(data)
    bars = base.mark_bar().encode(
        x=x, y=y,
        color=alt.Color("role:N", scale=alt.Scale(domain=roles, range=colours),
                        legend=alt.Legend(title="model", orient="bottom")),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.35)),
        tooltip=[alt.Tooltip("name:N", title="model"), alt.Tooltip("role:N", title="role"),
                 alt.Tooltip("value:Q", title=label, format=".3f")],
    ).add_params(pick)
    text = base.mark_text(align="left", dx=3, fontSize=11).encode(x="value:Q", y=y, text=alt.Text("value:Q", format=".3f"))
    lines = []
    if d["to_beat"] is not None:
        tb = d["to_beat"]
        lines.append({"line": f"to beat: {name_of(tb['best'])} {tb['sign']} margin", "value": round(tb["value"], 6),
                      "kind": "to beat"})
    if success_threshold is not None:
        lines.append({"line": "success threshold in the brief", "value": float(success_threshold),
                      "kind": "success threshold"})
    layers = [bars, text]
    if lines:
        rules = alt.Chart(pl.DataFrame(lines)).mark_rule(strokeWidth=2).encode(
            x="value:Q",
            color=alt.Color("kind:N", scale=alt.Scale(domain=["to beat", "success threshold"], range=[DARK, GREEN]),
                            legend=alt.Legend(title="line", orient="bottom")),
            strokeDash=alt.StrokeDash("kind:N", scale=alt.Scale(domain=["to beat", "success threshold"],
                                                                 range=[[6, 4], [2, 3]]), legend=None),
            tooltip=[alt.Tooltip("line:N", title="line"), alt.Tooltip("value:Q", title=label, format=".3f")],
        )
        layers.append(rules)
    chart = alt.layer(*layers).resolve_scale(color="independent").properties(
        width=CHART_WIDTH, height=30 * max(data.height, 2),
        title=f"Performance against the baseline ({label})")
    return chart_id(chart, "performance")


def performance_figure(leaderboard: Mapping[str, Any], *, success_threshold: float | None = None,
                       metric_label: str | None = None) -> Any:
    """The performance chart as a static matplotlib Figure, from the same bars as :func:`performance_chart`:
    horizontal bars of the primary metric per model with the bar to beat and the brief's success threshold."""
    from matplotlib.figure import Figure

    d = performance_bars(leaderboard)
    frame, primary, higher = d["frame"], d["primary"], d["higher"]
    label = metric_label or primary
    names = frame["model"].to_list()[::-1]
    values = frame["value"].to_list()[::-1]
    colors = frame["colour"].to_list()[::-1]
    fig = Figure(figsize=(6.5, 0.45 * len(names) + 1.4), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(names, values, color=colors)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:.3f}", va="center", fontsize=8)
    if d["to_beat"] is not None:
        tb = d["to_beat"]
        ax.axvline(tb["value"], color=GREY, linestyle="--", linewidth=1,
                   label=f"to beat: {tb['best']} {tb['sign']} margin ({tb['value']:.3f})")
    if success_threshold is not None:
        ax.axvline(success_threshold, color=GREEN, linestyle=":", linewidth=1.5,
                   label=f"success threshold ({success_threshold:.3f})")
    lo, hi = min([0.0, *values]), max([1.0 if d["classifier"] else 0.0, *values])
    ax.set_xlim(lo * 1.12 if lo < 0 else 0, hi * 1.12 if hi > 0 else 1.0)
    ax.set_xlabel(f"{label} on test data ({'higher' if higher else 'lower'} is better)")
    ax.set_title(f"Performance against the baseline ({label})")
    if ax.get_legend_handles_labels()[0]:
        fig.legend(fontsize=7, loc="outside lower center", ncols=2)
    return fig


# =============================================================================================== SHAP
def importance_chart(importance: Any, *, title: str = "Global importance", top: int = 15,
                     unit: str = "log-odds") -> Any:
    """The SHAP importance chart, interactive, from :meth:`SavedShap.importance_frame
    <workbench.evaluation._shap_saved.SavedShap.importance_frame>`: mean |SHAP| per column (blue, largest on
    top); hover for the figure and its rank, click a column to pick it out."""
    import altair as alt
    import polars as pl

    imp = importance.head(top).with_columns(pl.int_range(1, pl.len() + 1).alias("rank"))
    pick = alt.selection_point(fields=["feature"], name="feature_pick", on="click", clear="dblclick")
    chart = alt.Chart(imp).mark_bar(color=BLUE).encode(
        x=alt.X("mean_abs_shap:Q", title=f"average size of the effect on the answer ({unit})"),
        y=alt.Y("feature:N", sort=imp["feature"].to_list(), title=None, axis=alt.Axis(labelLimit=260)),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.35)),
        tooltip=[alt.Tooltip("feature:N", title="input"), alt.Tooltip("rank:Q", title="rank"),
                 alt.Tooltip("mean_abs_shap:Q", title=f"how much it matters ({unit})", format=".4f")],
    ).add_params(pick).properties(width=CHART_WIDTH, height=22 * max(imp.height, 2), title=title)
    return chart_id(chart, "importance")


def importance_figure(importance: Any, *, title: str = "Global importance", top: int = 15,
                      unit: str = "log-odds") -> Any:
    """The SHAP importance chart as a static matplotlib Figure: bars of mean |SHAP| per column, largest on top."""
    from matplotlib.figure import Figure

    imp = importance.head(top)
    fig = Figure(figsize=(6.5, 0.32 * imp.height + 1.2), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(imp["feature"].to_list()[::-1], imp["mean_abs_shap"].to_list()[::-1], color=BLUE)
    ax.set_xlabel(f"average size of the effect on the answer ({unit})")
    ax.set_title(title)
    return fig


def driver_order(drivers: Any, top: int) -> list[str]:
    """The columns a group-driver chart shows: the ``top`` with the largest mean |SHAP| in any group."""
    import polars as pl

    return (drivers.group_by("feature", maintain_order=True).agg(pl.col("mean_abs_shap").max())
            .sort("mean_abs_shap", descending=True, maintain_order=True)["feature"].to_list()[:top])


def drivers_chart(drivers: Any, *, feature: str, top: int = 8, unit: str = "log-odds") -> Any:
    """The group-driver chart, interactive, from :meth:`SavedShap.drivers_frame
    <workbench.evaluation._shap_saved.SavedShap.drivers_frame>`: mean |SHAP| of the strongest columns, one bar
    per group (group colours, never the orange/blue direction pair nor red). Hover for the group, its people,
    the rank and the average direction; click a group in the legend to show it alone."""
    import altair as alt
    import polars as pl

    order = driver_order(drivers, top)
    groups = drivers.select("group", "n").unique(maintain_order=True).sort("group")
    legend = [f"{g} (n={n})" for g, n in groups.iter_rows()]
    data = (drivers.filter(pl.col("feature").is_in(order))
            .with_columns(pl.format("{} (n={})", "group", "n").alias("group_label"),
                          pl.when(pl.col("mean_shap").is_null()).then(pl.lit("(not signed)"))
                          .when(pl.col("mean_shap") > 0).then(pl.format("raises ({})", pl.col("mean_shap").round(3)))
                          .otherwise(pl.format("lowers ({})", pl.col("mean_shap").round(3))).alias("direction")))
    pick = alt.selection_point(fields=["group_label"], name="group_legend", bind="legend")
    chart = alt.Chart(data).mark_bar().encode(
        x=alt.X("mean_abs_shap:Q", title=f"average size of the effect on the answer ({unit})"),
        y=alt.Y("feature:N", sort=order, title=None, axis=alt.Axis(labelLimit=260)),
        yOffset=alt.YOffset("group_label:N", sort=legend),
        color=alt.Color("group_label:N", sort=legend,
                        scale=alt.Scale(domain=legend,
                                        range=[GROUP_COLOURS[i % len(GROUP_COLOURS)] for i in range(len(legend))]),
                        legend=alt.Legend(title=f"{feature} (click to show one)", orient="bottom", columns=3,
                                          labelLimit=260)),
        opacity=alt.condition(pick, alt.value(1.0), alt.value(0.15)),
        tooltip=[alt.Tooltip("group:N", title=feature), alt.Tooltip("n:Q", title="people"),
                 alt.Tooltip("feature:N", title="input"), alt.Tooltip("rank:Q", title="rank in the group"),
                 alt.Tooltip("mean_abs_shap:Q", title=f"how much it matters ({unit})", format=".4f"),
                 alt.Tooltip("direction:N", title="direction on average")],
    ).add_params(pick).properties(width=CHART_WIDTH, height=alt.Step(max(6, min(16, 48 // max(len(legend), 1)))),
                                  title=f"What drives the score within groups of {feature}")
    return chart_id(chart, "drivers")


def drivers_figure(drivers: Any, *, feature: str, top: int = 8, unit: str = "log-odds") -> Any:
    """The group-driver chart as a static matplotlib Figure, from the same frame as :func:`drivers_chart`:
    grouped bars of mean |SHAP| for the strongest columns, one bar per group (the legend gives each group's n)."""
    import numpy as np
    import polars as pl
    from matplotlib.figure import Figure

    order = driver_order(drivers, top)
    groups = drivers.select("group", "n").unique(maintain_order=True).sort("group")
    fig = Figure(figsize=(6.5, 0.5 * len(order) + 1.5), layout="constrained")
    ax = fig.add_subplot()
    height = 0.8 / max(groups.height, 1)
    cols = order[::-1]
    for i, (g, n) in enumerate(groups.iter_rows()):
        sub = {r["feature"]: r["mean_abs_shap"] for r in drivers.filter(pl.col("group") == g).iter_rows(named=True)}
        pos = np.arange(len(cols)) - 0.4 + height * (i + 0.5)
        ax.barh(pos, [sub.get(c, 0.0) for c in cols], height=height, label=f"{g} (n={n})",
                color=GROUP_COLOURS[i % len(GROUP_COLOURS)])
    ax.set_yticks(range(len(cols)), cols)
    ax.set_xlabel(f"average size of the effect on the answer ({unit})")
    ax.set_title(f"What drives the score within groups of {feature}")
    ax.legend(fontsize=7, loc="lower right")
    return fig
