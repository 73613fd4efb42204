"""Discovery plots: quality score, missingness, distributions by class, target rate by sensitive group.

Functions return :class:`matplotlib.figure.Figure` objects built without pyplot (no global state, no double
display in Jupyter); a run saves them with :meth:`workbench.runs.RunContext.save_figure`.
"""

from __future__ import annotations

import math

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


def plot_distributions(df: pl.DataFrame, contract: DataContract, brief: Brief, *, max_columns: int = 16,
                       top_categories: int = 10) -> Figure:
    """One panel per feature: numeric histograms by class (density), categorical counts with the positive share."""
    cols = contract.features[:max_columns]
    n = len(cols)
    ncols = 4 if n > 6 else max(n, 1)
    nrows = math.ceil(n / ncols)
    fig = Figure(figsize=(3.2 * ncols, 2.5 * nrows))
    t, pos = brief.target.column, str(brief.target.positive_label)
    y = df.get_column(t).cast(pl.String) == pos
    for i, c in enumerate(cols):
        ax = fig.add_subplot(nrows, ncols, i + 1)
        spec = contract.column(c)
        s = df.get_column(c)
        if spec.kind == "numeric":
            vals_pos = s.filter(y).drop_nulls().cast(pl.Float64).to_numpy()
            vals_neg = s.filter(~y).drop_nulls().cast(pl.Float64).to_numpy()
            bins = 30 if spec.n_unique > 30 else max(spec.n_unique, 2)
            ax.hist(vals_neg, bins=bins, density=True, alpha=0.55, color=_NEG, label=f"not {pos}")
            ax.hist(vals_pos, bins=bins, density=True, alpha=0.55, color=_POS, label=pos)
            if i == 0:
                ax.legend(fontsize=7)
        else:
            g = (pl.DataFrame({"v": s.fill_null("(missing)"), "y": y}).group_by("v")
                 .agg(pl.len().alias("n"), pl.col("y").mean().alias("rate")).sort(["n", "v"], descending=[True, False])
                 .head(top_categories))
            labels = [str(v)[:14] for v in g.get_column("v").to_list()][::-1]
            ax.barh(labels, g.get_column("n").to_list()[::-1], color=_GREY)
            ax2 = ax.twiny()
            ax2.plot(g.get_column("rate").to_list()[::-1], labels, "o", color=_POS, markersize=3)
            ax2.set_xlim(0, 1)
            ax2.tick_params(labelsize=6)
            ax.tick_params(axis="y", labelsize=6)
        ax.set_title(c, fontsize=9)
        ax.tick_params(axis="x", labelsize=6)
    fig.suptitle(f"Feature distributions by {t} (orange: share / density of {pos})", fontsize=10)
    fig.tight_layout()
    return fig


def plot_target_rate_by_group(audit: AuditReport, *, min_slice_size: int | None = None) -> Figure:
    """Positive rate per sensitive group; groups below the minimum slice size are hatched and labelled."""
    items = list(audit.target_by_group.items())
    fig = Figure(figsize=(6.5, max(2.0, sum(0.3 * len(r) + 0.8 for _, r in items))))
    if not items:
        ax = fig.add_subplot()
        ax.text(0.5, 0.5, "no sensitive features in the brief", ha="center", va="center")
        ax.set_axis_off()
        return fig
    heights = [len(r) + 1 for _, r in items]
    gs = fig.add_gridspec(len(items), 1, height_ratios=heights)
    overall = audit.class_balance["train"]["positive_rate"]
    for i, (key, rows) in enumerate(items):
        ax = fig.add_subplot(gs[i])
        rows = rows[::-1]
        ok = [r["evidence"] == "ok" for r in rows]
        bars = ax.barh([r["group"][:32] for r in rows], [r["positive_rate"] for r in rows],
                       color=[_POS if k else "white" for k in ok], edgecolor=_POS)
        for b, k, r in zip(bars, ok, rows, strict=True):
            if not k:
                b.set_hatch("///")
            ax.text(b.get_width() + 0.005, b.get_y() + b.get_height() / 2,
                    f"n={r['count']}" + ("" if k else " (insufficient)"), va="center", fontsize=7)
        ax.axvline(overall, color="black", lw=0.8, ls="--")
        ax.set_xlim(0, min(1.0, max(r["positive_rate"] for r in rows) * 1.35 + 0.05))
        ax.set_title(f"positive rate by {key} (dashed: overall {overall:.1%})", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.tight_layout()
    return fig
