"""The reference profile: what the certified model saw, summarised so drift checks need no training data.

Saved with the model at promotion (``reference_profile.json`` in the model package). Per numeric feature: decile
bin edges with the share of rows per bin (plus the share missing) and a sorted sample of up to 5,000 values for
the KS test; per categorical feature: the share of each category (missing as ``"(missing)"``); and the model's
held-out predictions, per task (``profile["task"]``, absent for binary): binary, the distribution of the
probabilities with the positive rate at the decision threshold; multiclass, the share of each predicted class and
the mean probability per class; regression, the distribution of the predictions (like a numeric feature).
"""

from __future__ import annotations

import datetime as _dt

import numpy as np
import polars as pl

__all__ = ["build_profile", "bin_shares", "profile_task", "MISSING", "UNSEEN"]

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


def build_profile(df: pl.DataFrame, *, features: list[str], numeric: list[str],
                  probabilities: np.ndarray | None = None, threshold: float | None = None,
                  task: str = "binary_classification", scores: np.ndarray | None = None,
                  classes: list[str] | None = None, bins: int = 10, sample: int = 5000, seed: int = 0,
                  source: dict | None = None) -> dict:
    """Profile ``features`` of ``df`` (the training split) and the model's held-out predictions.

    The prediction reference depends on ``task``:

    * ``"binary_classification"``: ``probabilities`` (or ``scores``), P(positive) ``(n,)``, with ``threshold``:
      decile edges and shares, a sample for KS, the mean and the positive rate at the threshold;
    * ``"multiclass_classification"``: ``scores``, probabilities ``(n, K)`` (column k = ``classes[k]``): the share
      of each class among the predicted labels (argmax, ties to the first class) and the mean probability per class;
    * ``"regression"``: ``scores``, predictions ``(n,)``: like a numeric feature (decile edges and shares, a
      sample for KS, mean, std, min, max).

    Raises
    ------
    ValueError
        The scores do not fit the task (no scores, a binary profile without threshold, multiclass without
        classes or with a column count that differs from them).
    """
    rng = np.random.default_rng(seed)
    num = set(numeric)
    feats = {c: (_numeric(df.get_column(c), bins, sample, rng) if c in num else _categorical(df.get_column(c)))
             for c in features}
    values = scores if scores is not None else probabilities
    if values is None:
        raise ValueError("build_profile needs the model's held-out scores (scores=, or probabilities= for binary)")
    if task == "binary_classification":
        if threshold is None:
            raise ValueError("a binary profile needs the decision threshold")
        prediction = _binary_prediction(np.asarray(values, dtype=np.float64), float(threshold), bins, sample, rng)
    elif task == "multiclass_classification":
        prediction = _multiclass_prediction(np.asarray(values, dtype=np.float64), classes)
    elif task == "regression":
        prediction = _regression_prediction(np.asarray(values, dtype=np.float64).reshape(-1), bins, sample, rng)
    else:
        raise ValueError(f"unknown task {task!r}")
    out = {"created_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"), "source": source or {},
           "bins": bins, "features": feats, "prediction": prediction}
    if task != "binary_classification":  # a profile without "task" is binary (every profile before round 2)
        out["task"] = task
    return out


def profile_task(profile: dict) -> str:
    """The task a reference profile describes (profiles written before multiclass and regression are binary)."""
    return str(profile.get("task", "binary_classification"))


def _binary_prediction(p: np.ndarray, threshold: float, bins: int, sample: int, rng: np.random.Generator) -> dict:
    p_edges = _edges(p, bins)
    return {"edges": p_edges, "shares": bin_shares(p, p_edges).tolist(), "rows": int(p.size),
            "mean": float(p.mean()) if p.size else None, "threshold": float(threshold),
            "positive_rate": float((p > threshold).mean()) if p.size else None,
            "sample": np.sort(p if p.size <= sample else rng.choice(p, size=sample, replace=False)).tolist()}


def _multiclass_prediction(proba: np.ndarray, classes: list[str] | None) -> dict:
    if not classes:
        raise ValueError("a multiclass profile needs the classes (in code order)")
    if proba.ndim != 2 or proba.shape[1] != len(classes):
        raise ValueError(f"multiclass scores must be (n, {len(classes)}) for classes {classes}; got {proba.shape}")
    n = proba.shape[0]
    counts = np.bincount(proba.argmax(axis=1), minlength=len(classes)) if n else np.zeros(len(classes), int)
    return {"kind": "categorical", "classes": [str(c) for c in classes], "rows": int(n),
            "shares": {str(c): float(k / max(n, 1)) for c, k in zip(classes, counts, strict=True)},
            "mean_probabilities": {str(c): float(m) for c, m in zip(classes, proba.mean(axis=0) if n else
                                                                     np.zeros(len(classes)), strict=True)}}


def _regression_prediction(y: np.ndarray, bins: int, sample: int, rng: np.random.Generator) -> dict:
    out = _numeric(pl.Series("prediction", y), bins, sample, rng)
    out["std"] = float(y[np.isfinite(y)].std()) if np.isfinite(y).any() else None
    return out
