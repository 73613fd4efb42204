"""Input checks and small helpers shared by the evaluation modules (private).

Every check turns a bad input into an :class:`~workbench.errors.EvaluationError` that names the argument and
says what was expected, before any metric is computed.
"""

from __future__ import annotations

import numbers
from typing import Any

import numpy as np

from .._names import suggest
from ..errors import EvaluationError

_TARGET_HINT = "encode the target as 1 for the positive label, 0 otherwise"


def as_1d(values: Any, *, argument: str) -> np.ndarray:
    """A one-dimensional numpy array from a list, numpy array, pandas or polars Series."""
    if hasattr(values, "to_numpy") and not isinstance(values, np.ndarray):
        values = values.to_numpy()
    arr = np.asarray(values)
    if arr.ndim == 2 and arr.shape[1] == 1:
        arr = arr[:, 0]
    if arr.ndim != 1:
        hint = "pass predict_proba(X)[:, 1], the positive-class column" if argument == "y_prob" else None
        raise EvaluationError(f"expected a one-dimensional array, got shape {arr.shape}", argument=argument,
                              hint=hint)
    if arr.size == 0:
        raise EvaluationError("is empty", argument=argument, hint="pass at least one row")
    return arr


def check_target(y_true: Any, *, argument: str = "y_true") -> np.ndarray:
    """``y_true`` as an int8 array of 0/1 (booleans are accepted)."""
    arr = as_1d(y_true, argument=argument)
    if arr.dtype == bool:
        return arr.astype(np.int8)
    if not np.issubdtype(arr.dtype, np.number):
        raise EvaluationError(f"expected 0/1 labels, got values of type {arr.dtype} (e.g. {arr[0]!r})",
                              argument=argument, hint=_TARGET_HINT)
    bad = ~np.isin(arr, (0, 1))
    if bad.any():
        raise EvaluationError(f"{int(bad.sum())} values are not 0 or 1 (first: {arr[bad][0]!r})",
                              argument=argument, hint=_TARGET_HINT)
    return arr.astype(np.int8)


def check_probabilities(y_prob: Any, *, argument: str = "y_prob") -> np.ndarray:
    """``y_prob`` as a float64 array of finite values in [0, 1]."""
    arr = as_1d(y_prob, argument=argument)
    if not np.issubdtype(arr.dtype, np.number) or arr.dtype == bool:
        raise EvaluationError(f"expected probabilities, got values of type {arr.dtype}", argument=argument,
                              hint="pass predict_proba(X)[:, 1]")
    arr = arr.astype(np.float64)
    nan = ~np.isfinite(arr)
    if nan.any():
        raise EvaluationError(f"{int(nan.sum())} values are NaN or infinite", argument=argument,
                              hint="a NaN probability usually means a missing numeric input the pipeline "
                                   "does not impute")
    out = (arr < 0) | (arr > 1)
    if out.any():
        raise EvaluationError(f"{int(out.sum())} values outside [0, 1] (min {arr.min():.4g}, "
                              f"max {arr.max():.4g})", argument=argument,
                              hint="pass probabilities (predict_proba), not decision scores or logits")
    return arr


def check_same_length(**arrays: np.ndarray) -> int:
    """The common length of the arrays, or an error listing every length."""
    lengths = {k: len(v) for k, v in arrays.items()}
    if len(set(lengths.values())) > 1:
        shown = ", ".join(f"{k} has {n}" for k, n in lengths.items())
        raise EvaluationError(f"lengths differ: {shown}", argument=next(iter(lengths)),
                              hint="pass labels, probabilities and sensitive features for the same rows")
    return next(iter(lengths.values()))


def check_threshold(threshold: float, *, argument: str = "threshold") -> float:
    if isinstance(threshold, bool) or not (isinstance(threshold, numbers.Real) and 0 < threshold < 1):
        raise EvaluationError(f"expected a number strictly between 0 and 1, got {threshold!r}",
                              argument=argument)
    return float(threshold)


def check_choice(value: str, choices: list[str] | tuple[str, ...], *, argument: str) -> str:
    if value not in choices:
        raise EvaluationError(f"unknown value {value!r}{suggest(str(value), list(choices))}",
                              argument=argument, hint=f"use one of: {', '.join(choices)}")
    return value


def axes_or_new(ax: Any = None) -> Any:
    """``ax``, or the Axes of a new pyplot figure (matplotlib is imported only when a plot is asked for)."""
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, ax = plt.subplots(figsize=(6, 4), layout="constrained")
    return ax
