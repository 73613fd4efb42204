"""Stratified bootstrap of per-group confusion counts (private, for :mod:`~workbench.evaluation.fairness`).

Rows are resampled with replacement *within each cell* -- a cell is one combination of every sensitive
feature's group -- so every group of every feature, and of their intersection, keeps its size in every
replicate, and one set of replicates serves all of them. A replicate is summarised by three counts per cell
(positives, selected, true positives); a group's counts are the sums over its cells and every rate follows
from them (accuracy is ``(n - positives - selected + 2 * true_positives) / n``). Nothing loops over
replicates in Python: draws are made in chunks of about ``_CHUNK`` values and summed per cell with
``np.add.reduceat``.
"""

from __future__ import annotations

import warnings

import numpy as np

_CHUNK = 1 << 22  # values per chunk of (replicates x rows): about 32 MB of int64 indices


def cells_of(codes: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """The cell of each row and each cell's group code per feature.

    Parameters
    ----------
    codes:
        Per feature, the group code of each row (``np.unique(..., return_inverse=True)``).

    Returns
    -------
    (cell, combos)
        ``cell`` (n,) cell id of each row; ``combos`` (n_cells, n_features) the group codes of each cell, in
        lexicographic order.
    """
    combos, cell = np.unique(np.stack(codes, axis=1), axis=0, return_inverse=True)
    return cell.ravel(), combos


def bootstrap_cell_counts(y: np.ndarray, yhat: np.ndarray, cell: np.ndarray, *, n_bootstrap: int,
                          rng: np.random.Generator) -> np.ndarray:
    """Positives, selected and true positives per replicate and cell, shape (3, n_bootstrap, n_cells)."""
    order = np.argsort(cell, kind="stable")
    sizes = np.bincount(cell)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    col_start, col_size = np.repeat(starts, sizes), np.repeat(sizes, sizes)
    sources = (y[order].astype(np.int8), yhat[order].astype(np.int8), (y & yhat)[order].astype(np.int8))
    n = cell.size
    out = np.empty((3, n_bootstrap, sizes.size), dtype=np.int64)
    per_chunk = max(1, _CHUNK // n)
    for lo in range(0, n_bootstrap, per_chunk):
        b = min(per_chunk, n_bootstrap - lo)
        idx = col_start + rng.integers(0, col_size, size=(b, n))
        for k, src in enumerate(sources):
            out[k, lo:lo + b] = np.add.reduceat(src[idx], starts, axis=1, dtype=np.int64)
    return out


def rates(n: np.ndarray, pos: np.ndarray, sel: np.ndarray, tp: np.ndarray) -> dict[str, np.ndarray]:
    """Selection rate, TPR, FPR and accuracy from counts (any matching shapes); NaN where undefined."""
    n, pos, sel, tp = (np.asarray(a, dtype=np.float64) for a in (n, pos, sel, tp))
    neg = n - pos
    with np.errstate(divide="ignore", invalid="ignore"):
        return {
            "selection_rate": sel / n,
            "tpr": np.where(pos > 0, tp / pos, np.nan),
            "fpr": np.where(neg > 0, (sel - tp) / neg, np.nan),
            "accuracy": (n - pos - sel + 2 * tp) / n,
        }


def spread(values: np.ndarray, *, kind: str) -> np.ndarray:
    """Per row of ``values`` (replicates x groups): max - min (``kind="difference"``) or min / max
    (``"ratio"``; 1 when every value is 0), ignoring NaN; NaN when fewer than two values are defined."""
    defined = np.sum(~np.isnan(values), axis=-1)
    if values.shape[-1] == 0:  # no group qualifies
        return np.full(values.shape[:-1], np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        hi, lo = np.nanmax(values, axis=-1), np.nanmin(values, axis=-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = hi - lo if kind == "difference" else np.where(hi > 0, lo / hi, 1.0)
    return np.where(defined >= 2, out, np.nan)


def interval(values: np.ndarray, confidence_level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval over the first axis, ignoring NaN (NaN when nothing is defined)."""
    alpha = 1 - confidence_level
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        lo, hi = np.nanquantile(values, [alpha / 2, 1 - alpha / 2], axis=0)
    return lo, hi
