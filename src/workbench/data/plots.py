"""Discovery plots: quality score, missingness, distributions by class (or against a numeric target), the
target by sensitive group.

Functions return :class:`matplotlib.figure.Figure` objects built without pyplot (no global state, no double
display in Jupyter); a run saves them with :meth:`workbench.runs.RunContext.save_figure`.
"""

from __future__ import annotations

import math

import numpy as np
import polars as pl
from matplotlib.figure import Figure

from ..brief import Brief
from .audit import AuditReport
from .contract import DataContract

__all__ = ["plot_quality", "plot_missingness", "plot_distributions", "plot_target_rate_by_group"]

_POS, _NEG, _GREY = "#d95f02", "#1b9e77", "#bbbbbb"


def plot_quality(audit: AuditReport) -> Figure:
    """Bar per quality dimension (0-5) with the total against the proceed threshold in the title."""
    q = audit.quality
    fig = Figure(figsize=(6.5, 2.8))
    ax = fig.add_subplot()
    names = [d.name for d in q.dimensions]
    scores = [d.score for d in q.dimensions]
    colors = ["#1a9641" if s >= 4 else "#fdae61" if s >= 2 else "#d7191c" for s in scores]
    ax.barh(names[::-1], scores[::-1], color=colors[::-1])
    ax.set_xlim(0, 5)
    ax.set_xlabel("score (0-5)")
    ax.set_title(f"Data quality {q.total}/30 - {q.verdict} (proceed at {q.threshold})")
    for i, s in enumerate(scores[::-1]):
        ax.text(s + 0.05, i, str(s), va="center")
    fig.tight_layout()
    return fig


def plot_missingness(audit: AuditReport) -> Figure:
    """Share of missing values per column, train vs test (columns without gaps are omitted)."""
    rows = [m for m in audit.missingness if m["train_nulls"] or m["test_nulls"]]
    fig = Figure(figsize=(6.5, max(1.8, 0.35 * len(rows) + 1)))
    ax = fig.add_subplot()
    if not rows:
        ax.text(0.5, 0.5, "no missing values", ha="center", va="center")
        ax.set_axis_off()
        return fig
    rows.sort(key=lambda m: m["train_fraction"])
    y = range(len(rows))
    ax.barh([i + 0.2 for i in y], [100 * m["train_fraction"] for m in rows], height=0.4, label="train", color=_NEG)
    ax.barh([i - 0.2 for i in y], [100 * m["test_fraction"] for m in rows], height=0.4, label="test", color=_GREY)
    ax.set_yticks(list(y), [m["column"] for m in rows])
    ax.set_xlabel("% of rows missing")
    ax.set_title("Missing values")
    ax.legend(loc="lower right")
    fig.tight_layout()
    return fig


_CLASS_COLORS = ("#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e", "#e6ab02", "#a6761d", "#666666")


def plot_distributions(df: pl.DataFrame, contract: DataContract, brief: Brief, *, max_columns: int = 16,
                       top_categories: int = 10) -> Figure:
    """One panel per feature against the target, drawn the task's way.

    Binary: numeric histograms by class (density), categorical counts with the positive share. Multiclass:
    numeric histograms per class, categorical counts stacked by class. Regression: numeric features as a
    scatter against the target (a random 5,000 rows at most), categorical counts with the mean target; the
    first panel is the target's own histogram.
    """
    task = getattr(contract, "task", "binary_classification")
    draw = {"binary_classification": _binary_panel, "multiclass_classification": _multiclass_panel,
            "regression": _regression_panel}[task]
    t = brief.target.column
    cols = contract.features[:max_columns]
    panels = ([t] if task == "regression" else []) + cols
    n = len(panels)
    ncols = 4 if n > 6 else max(n, 1)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.5 * nrows))
    df = df.filter(pl.col(t).is_not_null()) if task != "binary_classification" else df
    ctx = _panel_context(df, contract, brief, task)
    for i, c in enumerate(panels):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        if c == t:
            ax.hist(ctx["y"], bins=40, color=_GREY, edgecolor="white")
            ax.set_xlabel(t, fontsize=7)
        else:
            draw(ax, df, contract.column(c), ctx, first=i == 0, top_categories=top_categories)
        ax.set_title(c if c != t else f"target {t}", fontsize=9)
        ax.tick_params(axis="x", labelsize=6)
    fig.suptitle(ctx["title"], fontsize=10)
    fig.tight_layout()
    return fig


def _panel_context(df: pl.DataFrame, contract: DataContract, brief: Brief, task: str) -> dict:
    t = brief.target.column
    if task == "binary_classification":
        pos = str(brief.target.positive_label)
        return {"y": df.get_column(t).cast(pl.String) == pos, "pos": pos,
                "title": f"Feature distributions by {t} (orange: share / density of {pos})"}
    if task == "multiclass_classification":
        return {"y": df.get_column(t).cast(pl.String), "classes": list(contract.classes or []),
                "title": f"Feature distributions by {t} (one colour per class)"}
    return {"y": df.get_column(t).cast(pl.Float64).to_numpy(),
            "title": f"Features against {t} (numeric: scatter; categorical: counts and mean {t})"}


def _bins(spec) -> int:
    return 30 if spec.n_unique > 30 else max(spec.n_unique, 2)


def _top(s: pl.Series, extra: dict[str, pl.Series], top: int, aggs: list[pl.Expr]) -> pl.DataFrame:
    frame = pl.DataFrame({"v": s.cast(pl.String).fill_null("(missing)"), **extra})
    return (frame.group_by("v").agg(pl.len().alias("n"), *aggs).sort(["n", "v"], descending=[True, False])
            .head(top))


def _binary_panel(ax, df, spec, ctx, *, first, top_categories):
    s, y, pos = df.get_column(spec.name), ctx["y"], ctx["pos"]
    if spec.kind == "numeric":
        vals_pos = s.filter(y).drop_nulls().cast(pl.Float64).to_numpy()
        vals_neg = s.filter(~y).drop_nulls().cast(pl.Float64).to_numpy()
        ax.hist(vals_neg, bins=_bins(spec), density=True, alpha=0.55, color=_NEG, label=f"not {pos}")
        ax.hist(vals_pos, bins=_bins(spec), density=True, alpha=0.55, color=_POS, label=pos)
        if first:
            ax.legend(fontsize=7)
        return
    g = _top(s, {"y": y}, top_categories, [pl.col("y").mean().alias("rate")])
    labels = [str(v)[:14] for v in g.get_column("v").to_list()][::-1]
    ax.barh(labels, g.get_column("n").to_list()[::-1], color=_GREY)
    ax2 = ax.twiny()
    ax2.plot(g.get_column("rate").to_list()[::-1], labels, "o", color=_POS, markersize=3)
    ax2.set_xlim(0, 1)
    ax2.tick_params(labelsize=6)
    ax.tick_params(axis="y", labelsize=6)


def _multiclass_panel(ax, df, spec, ctx, *, first, top_categories):
    s, y, classes = df.get_column(spec.name), ctx["y"], ctx["classes"]
    colors = {c: _CLASS_COLORS[i % len(_CLASS_COLORS)] for i, c in enumerate(classes)}
    if spec.kind == "numeric":
        for c in classes:
            vals = s.filter(y == c).drop_nulls().cast(pl.Float64).to_numpy()
            ax.hist(vals, bins=_bins(spec), density=True, alpha=0.45, color=colors[c], label=c)
        if first:
            ax.legend(fontsize=6)
        return
    g = _top(s, {"y": y}, top_categories, [(pl.col("y") == c).sum().alias(f"k{i}") for i, c in enumerate(classes)])
    labels = [str(v)[:14] for v in g.get_column("v").to_list()][::-1]
    left = [0] * len(labels)
    for i, c in enumerate(classes):
        counts = g.get_column(f"k{i}").to_list()[::-1]
        ax.barh(labels, counts, left=left, color=colors[c], label=c)
        left = [a + b for a, b in zip(left, counts, strict=True)]
    if first:
        ax.legend(fontsize=6)
    ax.tick_params(axis="y", labelsize=6)


def _regression_panel(ax, df, spec, ctx, *, first, top_categories):
    s, y = df.get_column(spec.name), ctx["y"]
    if spec.kind == "numeric":
        x = s.cast(pl.Float64).to_numpy()
        keep = np.flatnonzero(~np.isnan(x))
        if len(keep) > 5000:
            keep = np.sort(np.random.default_rng(0).choice(keep, 5000, replace=False))
        ax.scatter(x[keep], y[keep], s=3, alpha=0.3, color=_NEG, linewidths=0)
        ax.tick_params(axis="y", labelsize=6)
        return
    g = _top(s, {"y": pl.Series(y)}, top_categories, [pl.col("y").mean().alias("mean")])
    labels = [str(v)[:14] for v in g.get_column("v").to_list()][::-1]
    ax.barh(labels, g.get_column("n").to_list()[::-1], color=_GREY)
    ax2 = ax.twiny()
    ax2.plot(g.get_column("mean").to_list()[::-1], labels, "o", color=_POS, markersize=3)
    ax2.tick_params(labelsize=6)
    ax.tick_params(axis="y", labelsize=6)


def plot_target_rate_by_group(audit: AuditReport, *, min_slice_size: int | None = None) -> Figure:
    """The target per sensitive group; groups below the minimum slice size are hatched and labelled.

    Binary: the positive rate (dashed: overall). Multiclass: the class shares, stacked. Regression: the mean
    target (dashed: overall mean).
    """
    items = list(audit.target_by_group.items())
    fig = Figure(figsize=(6.5, max(2.0, sum(0.3 * len(r) + 0.8 for _, r in items))))
    if not items:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no sensitive features in the brief", ha="center", va="center")
        ax.set_axis_off()
        return fig
    heights = [len(r) + 1 for _, r in items]
    gs = fig.add_gridspec(len(items), 1, height_ratios=heights)
    task = getattr(audit, "task", "binary_classification")
    for i, (key, rows) in enumerate(items):
        ax = fig.add_subplot(gs[i])
        rows = rows[::-1]
        ok = [r["evidence"] == "ok" for r in rows]
        names = [r["group"][:32] for r in rows]
        if task == "multiclass_classification":
            classes = audit.class_balance["classes"]
            left = [0.0] * len(rows)
            for j, c in enumerate(classes):
                share = [r["class_shares"][c] for r in rows]
                bars = ax.barh(names, share, left=left, color=_CLASS_COLORS[j % len(_CLASS_COLORS)],
                               label=c if i == 0 else None)
                left = [a + b for a, b in zip(left, share, strict=True)]
            for b, k, r in zip(bars, ok, rows, strict=True):
                ax.text(1.01, b.get_y() + b.get_height() / 2,
                        f"n={r['count']}" + ("" if k else " (insufficient)"), va="center", fontsize=7)
            ax.set_xlim(0, 1.3)
            if i == 0:
                ax.legend(fontsize=6, loc="lower right")
            ax.set_title(f"class shares by {key}", fontsize=9)
            ax.tick_params(labelsize=7)
            continue
        field_, overall = (("positive_rate", audit.class_balance["train"]["positive_rate"])
                           if task == "binary_classification"
                           else ("mean", audit.target_distribution["train"]["mean"]))
        values = [r[field_] if r[field_] is not None else 0.0 for r in rows]
        bars = ax.barh(names, values, color=[_POS if k else "white" for k in ok], edgecolor=_POS)
        top = max(values + [overall])
        for b, k, r in zip(bars, ok, rows, strict=True):
            if not k:
                b.set_hatch("///")
            ax.text(b.get_width() + 0.005 * max(top, 1e-9), b.get_y() + b.get_height() / 2,
                    f"n={r['count']}" + ("" if k else " (insufficient)"), va="center", fontsize=7)
        ax.axvline(overall, color="black", lw=0.8, ls="--")
        if task == "binary_classification":
            ax.set_xlim(0, min(1.0, max(r["positive_rate"] for r in rows) * 1.35 + 0.05))
            ax.set_title(f"positive rate by {key} (dashed: overall {overall:.1%})", fontsize=9)
        else:
            ax.set_xlim(min(0.0, min(values)), top * 1.35)
            ax.set_title(f"mean target by {key} (dashed: overall {overall:.4g})", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig
