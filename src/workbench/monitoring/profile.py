"""The reference profile: what the certified model saw, summarised so drift checks need no training data.

Saved with the model at promotion (``reference_profile.json`` in the model package). Per numeric feature: decile
bin edges with the share of rows per bin (plus the share missing) and a sorted sample of up to 5,000 values for
the KS test; per categorical feature: the share of each category (missing as ``"(missing)"``); and the
distribution of the model's held-out probabilities with its positive rate at the decision threshold.
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
import polars as pl

__all__ = ["build_profile", "bin_shares", "MISSING", "UNSEEN"]

MISSING = "(missing)"
UNSEEN = "(unseen)"


def _edges(values: np.ndarray, bins: int) -> list[float]:
    if values.size == 0:
        return []
    qs = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
    return sorted({float(q) for q in qs})


def bin_shares(values: np.ndarray, edges: list[float]) -> np.ndarray:
    """Share of ``values`` (NaN-free) in the bins (-inf, e1], (e1, e2], ..., (ek, inf)."""
    idx = np.searchsorted(np.asarray(edges, dtype=np.float64), values, side="left")
    counts = np.bincount(idx, minlength=len(edges) + 1).astype(np.float64)
    return counts / max(values.size, 1)


def _numeric(s: pl.Series, bins: int, sample: int, rng: np.random.Generator) -> dict:
    n = s.len()
    vals = s.drop_nulls().cast(pl.Float64)
    vals = vals.filter(vals.is_not_nan()).to_numpy()
    edges = _edges(vals, bins)
    take = vals if vals.size <= sample else rng.choice(vals, size=sample, replace=False)
    return {"kind": "numeric", "rows": n, "null_fraction": float(1 - vals.size / max(n, 1)), "edges": edges,
            "shares": bin_shares(vals, edges).tolist(), "sample": np.sort(take).tolist(),
            "min": float(vals.min()) if vals.size else None, "max": float(vals.max()) if vals.size else None,
            "mean": float(vals.mean()) if vals.size else None}


def _categorical(s: pl.Series) -> dict:
    n = s.len()
    vc = s.cast(pl.String).fill_null(MISSING).value_counts()
    shares = {str(k): v / n for k, v in sorted(vc.iter_rows(), key=lambda kv: (-kv[1], str(kv[0])))}
    return {"kind": "categorical", "rows": n, "shares": shares}


def build_profile(df: pl.DataFrame, *, features: list[str], numeric: list[str], probabilities: np.ndarray,
                  threshold: float, bins: int = 10, sample: int = 5000, seed: int = 0,
                  source: dict | None = None) -> dict:
    """Profile ``features`` of ``df`` (the training split) and the model's held-out ``probabilities``."""
    rng = np.random.default_rng(seed)
    num = set(numeric)
    feats = {c: (_numeric(df.get_column(c), bins, sample, rng) if c in num else _categorical(df.get_column(c)))
             for c in features}
    p = np.asarray(probabilities, dtype=np.float64)
    p_edges = _edges(p, bins)
    return {
        "created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "source": source or {},
        "bins": bins, "features": feats,
        "prediction": {"edges": p_edges, "shares": bin_shares(p, p_edges).tolist(), "rows": int(p.size),
                       "mean": float(p.mean()) if p.size else None, "threshold": float(threshold),
                       "positive_rate": float((p > threshold).mean()) if p.size else None,
                       "sample": np.sort(p if p.size <= sample else rng.choice(p, size=sample, replace=False)).tolist()},
    }
