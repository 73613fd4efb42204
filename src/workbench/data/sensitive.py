"""Sensitive features as groups: the one place that decides how a sensitive column becomes slice labels.

A categorical sensitive feature's groups are its values; a missing value is the group ``"(missing)"``. A numeric
one is sliced into bins -- the brief's edges (``{column: age, bins: [35, 50]}``), its number of quantile bins
(``{column: age, quantiles: 4}``, edges from the training split) or, for a numeric column with more than
:data:`MAX_GROUPS` distinct values and no binning in the brief, :data:`DEFAULT_QUANTILES` training-split quantile
bins. A value ``v`` falls in ``(e_i, e_i+1]``; the labels read ``<= 35``, ``(35, 50]``, ``> 50``. The audit, the
fairness report, the gates and the app all use these labels.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

__all__ = ["DEFAULT_QUANTILES", "MAX_GROUPS", "MISSING_GROUP", "bin_labels", "group_expr", "sensitive_bin_edges",
           "sensitive_groups"]

DEFAULT_QUANTILES = 4
MAX_GROUPS = 12
MISSING_GROUP = "(missing)"


def bin_labels(edges: list[float]) -> list[str]:
    """Readable labels of the bins ``(-inf, e0], (e0, e1], ..., (ek, inf)``."""
    if not edges:
        return ["all"]
    return ([f"<= {edges[0]:g}"] + [f"({a:g}, {b:g}]" for a, b in zip(edges, edges[1:], strict=False)]
            + [f"> {edges[-1]:g}"])


def sensitive_bin_edges(train: pl.DataFrame, brief: Any) -> dict[str, list[float]]:
    """Per sensitive feature that is sliced into bins, its edges (see the module docstring)."""
    out: dict[str, list[float]] = {}
    for c in brief.sensitive_features:
        if c not in train.columns:
            continue
        s = train.get_column(c)
        spec = brief.sensitive_bins.get(c)
        if spec is not None and spec.bins is not None:
            out[c] = [float(b) for b in spec.bins]
            continue
        if not s.dtype.is_numeric() or s.dtype == pl.Boolean:
            continue
        q = spec.quantiles if spec is not None and spec.quantiles else (
            DEFAULT_QUANTILES if s.n_unique() > MAX_GROUPS else None)
        if q:
            vals = s.drop_nulls().cast(pl.Float64).to_numpy()
            vals = vals[np.isfinite(vals)]
            edges = sorted({float(v) for v in np.quantile(vals, np.linspace(0, 1, q + 1)[1:-1])}) if vals.size else []
            if edges:
                out[c] = edges
    return out


def group_expr(c: str, edges: list[float] | None) -> pl.Expr:
    """The polars expression of a sensitive column's group label (text; nulls stay null)."""
    if not edges:
        return pl.col(c).cast(pl.String).alias(c)
    labels = bin_labels(edges)
    x = pl.col(c).cast(pl.Float64)
    expr = pl.when(x.is_null() | x.is_nan()).then(pl.lit(None, dtype=pl.String))
    for e, label in zip(edges, labels, strict=False):
        expr = expr.when(x <= e).then(pl.lit(label))
    return expr.otherwise(pl.lit(labels[-1])).alias(c)


def sensitive_groups(df: pl.DataFrame, brief: Any, edges: dict[str, list[float]]) -> Any:
    """The sensitive columns of ``df`` as group labels, missing as ``"(missing)"`` (a pandas frame, the form the
    fairness reports take)."""
    import pandas as pd

    exprs = [group_expr(c, edges.get(c)).fill_null(MISSING_GROUP) for c in brief.sensitive_features]
    return df.select(exprs).to_pandas() if exprs else pd.DataFrame(index=range(df.height))
