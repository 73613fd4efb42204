"""Flags on scored records: what the model was asked about that it did not see in training.

A value that passes the schema is always scored; the guard says, per record and field, when the model is
answering outside what it was trained on, so a caller never gets such an answer silently:

``missing``          the value was null (or ``""`` for a categorical): the graph imputed it (median / the
                     ``__missing__`` category), as the pipeline did in training;
``unseen_category``  a categorical value not among the training categories: it gets no weight of its own
                     (one-hot) or the "unknown" code (ordinal);
``out_of_range``     a number outside the training range ``[min, max]``: the model extrapolates.

The checks are columnar: one numpy pass over the numeric block (plain Python for a few records, where numpy's
per-call overhead dominates) and one set operation per categorical column; per-record work happens only for
records that carry a flag. Flags never change the probability: they describe the input, not the answer.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from operator import le

import numpy as np

from .schema import InputSpec

__all__ = ["MISSING", "UNSEEN_CATEGORY", "OUT_OF_RANGE", "Guard"]

SMALL_BATCH = 8
"""Up to this many records the numeric checks run in Python; above, in numpy (same results, tested)."""

MISSING = "missing"
UNSEEN_CATEGORY = "unseen_category"
OUT_OF_RANGE = "out_of_range"


class Guard:
    """The training facts of every input (ranges, categories), ready for columnar checks.

    Parameters
    ----------
    inputs:
        The model inputs (``serving.json`` ``inputs``); numeric inputs without a recorded range are only
        checked for missing values, categorical ones without categories likewise.
    """

    def __init__(self, inputs: Sequence[InputSpec]) -> None:
        num = [i for i in inputs if i.kind == "numeric"]
        self.numeric = [i.name for i in num]
        self.ranges = [(-math.inf if i.min is None else i.min, math.inf if i.max is None else i.max) for i in num]
        self.lo = np.array([lo for lo, _ in self.ranges], dtype=np.float64)[:, None]
        self.hi = np.array([hi for _, hi in self.ranges], dtype=np.float64)[:, None]
        self.categorical = [i.name for i in inputs if i.kind == "categorical"]
        self.allowed: list[frozenset[str] | None] = [
            frozenset(i.categories) if i.categories else None for i in inputs if i.kind == "categorical"]
        # check_one's all-clear test, decided in C (map over the values): every bound and category set is known
        # and no category set admits "" (a missing marker is flagged whatever the categories say).
        self._lo1 = [lo for lo, _ in self.ranges]
        self._hi1 = [hi for _, hi in self.ranges]
        self._quick_cat = all(a is not None and "" not in a for a in self.allowed)

    def check(self, numeric: Sequence[Sequence[float | None]],
              categorical: Sequence[Sequence[str | None]]) -> dict[int, dict[str, str]]:
        """Flags of the flagged records only: ``{record index: {field: flag}}``.

        Parameters
        ----------
        numeric:
            One sequence of values per numeric input (in :attr:`numeric` order), None where null.
        categorical:
            One sequence of values per categorical input (in :attr:`categorical` order), None where null.
        """
        flags: dict[int, dict[str, str]] = {}
        n = len(numeric[0]) if numeric else 0
        if n > SMALL_BATCH:
            block = np.array(numeric, dtype=np.float64)  # None -> NaN
            inside = (block >= self.lo) & (block <= self.hi)  # False for NaN
            if not inside.all():
                missing = np.isnan(block)
                for j, i in zip(*np.nonzero(~inside), strict=True):
                    flags.setdefault(int(i), {})[self.numeric[j]] = MISSING if missing[j, i] else OUT_OF_RANGE
        else:  # a few records: plain Python is faster than numpy's per-call overhead
            for name, (lo, hi), values in zip(self.numeric, self.ranges, numeric, strict=True):
                for i, v in enumerate(values):
                    if v is None:
                        flags.setdefault(i, {})[name] = MISSING
                    elif not lo <= v <= hi:
                        flags.setdefault(i, {})[name] = OUT_OF_RANGE
        for name, allowed, values in zip(self.categorical, self.allowed, categorical, strict=True):
            if allowed is not None and allowed.issuperset(values):  # the common case, decided in C
                continue
            for i, v in enumerate(values):
                if v is None or v == "":
                    flags.setdefault(i, {})[name] = MISSING
                elif allowed is not None and v not in allowed:
                    flags.setdefault(i, {})[name] = UNSEEN_CATEGORY
        return flags

    def clean_one(self, numeric: Sequence[float | None], categorical: Sequence[str | None]) -> bool:
        """Whether one record (as :meth:`check_one` takes it) has no flag, decided in C: no None, every number
        within its bounds, every category among the known ones. False can also mean "not decided here" (an input
        without a recorded category set): :meth:`check_one` then checks field by field."""
        return None not in numeric and all(map(le, self._lo1, numeric)) and all(map(le, numeric, self._hi1)) and (
            self._quick_cat and all(map(frozenset.__contains__, self.allowed, categorical)))  # type: ignore[arg-type]

    def check_one(self, numeric: Sequence[float | None], categorical: Sequence[str | None]) -> dict[str, str]:
        """Flags of one record, ``{field: flag}`` (empty when nothing is flagged): :meth:`check` for a single
        record given as its values (in :attr:`numeric` and :attr:`categorical` order), without the columns.

        A clean record (the common one) is recognised by :meth:`clean_one` before any per-field Python runs."""
        if self.clean_one(numeric, categorical):
            return {}
        flags: dict[str, str] = {}
        for name, (lo, hi), v in zip(self.numeric, self.ranges, numeric, strict=True):
            if v is None:
                flags[name] = MISSING
            elif not lo <= v <= hi:
                flags[name] = OUT_OF_RANGE
        for name, allowed, v in zip(self.categorical, self.allowed, categorical, strict=True):
            if v is None or v == "":
                flags[name] = MISSING
            elif allowed is not None and v not in allowed:
                flags[name] = UNSEEN_CATEGORY
        return flags
