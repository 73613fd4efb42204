"""What the regression and multiclass fairness reports share (private): the sensitive features' groups, the
option checks and the loop that slices every feature into a :class:`TaskFairnessReport`.

Each feature's intervals come from resamples of that feature's own groups, drawn from a generator seeded by
``(seed, crc32(feature name))`` (:mod:`._bootstrap`), so adding a sensitive feature never changes another
feature's intervals; the gap rows and verdicts are made by :mod:`._gaps`.
"""

from __future__ import annotations

import logging
import math
import numbers
import time
import warnings
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import numpy as np

from ..errors import EvaluationError
from . import _bootstrap as bs
from ._checks import check_choice
from ._fairness_report import TaskFairnessReport
from ._gaps import ack_notes, normalise_acks
from .fairness import INTERSECTION_SEP, _sensitive_columns, group_codes

log = logging.getLogger(__name__)

#: ``slice_feature(feature, codes, group_names, *, seed, n_bootstrap, min_slice_size, confidence_level,
#: thresholds, acks) -> (group rows, gap rows)``: one feature's slices.
SliceFeature = Callable[..., tuple[list[dict], list[dict]]]


def feature_groups(sensitive: Any, n: int) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per sensitive feature, then their intersection when there are several: (group code of each row, group
    names in code order). Missing values form the group ``"(missing)"``."""
    columns = _sensitive_columns(sensitive, n)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    uniques = {}
    for name, labels in columns.items():
        names, codes = group_codes(labels)
        uniques[name] = names
        out[name] = (codes, names)
    if len(columns) > 1:
        cell, combos = bs.cells_of([out[name][0] for name in columns])
        labels = np.array([INTERSECTION_SEP.join(str(uniques[c][k]) for c, k in zip(columns, row, strict=True))
                           for row in combos])
        out[INTERSECTION_SEP.join(columns)] = (cell, labels)
    return out


def check_fairness_options(thresholds: Mapping[str, float] | None, gap_metrics: tuple[str, ...], *,
                           min_slice_size: int, confidence_level: float, n_bootstrap: int, seed: int,
                           upper: float | None) -> dict[str, float]:
    """Validated thresholds (keys among ``gap_metrics``, numbers in [0, upper]) and options."""
    if thresholds is not None and not isinstance(thresholds, Mapping):
        raise EvaluationError(f"expected a mapping of gap metric to largest allowed value, got "
                              f"{type(thresholds).__name__}", argument="thresholds")
    out = {}
    for metric, value in (thresholds or {}).items():
        check_choice(metric, gap_metrics, argument="thresholds")
        ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
        if not (ok and value >= 0 and (upper is None or value <= upper)):
            allowed = f"[0, {upper:g}]" if upper is not None else "a finite number >= 0"
            raise EvaluationError(f"{metric}: expected {allowed}, got {value!r}", argument="thresholds")
        out[metric] = float(value)
    for name, value, least in (("min_slice_size", min_slice_size, 1), ("n_bootstrap", n_bootstrap, 10),
                               ("seed", seed, 0)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise EvaluationError(f"expected a whole number of at least {least}, got {value!r}", argument=name)
    if not (isinstance(confidence_level, numbers.Real) and 0.5 < confidence_level < 1):
        raise EvaluationError(f"expected a number between 0.5 and 1, got {confidence_level!r}",
                              argument="confidence_level")
    return out


def task_fairness_report(cls: type[TaskFairnessReport], sensitive: Any, n: int, slice_feature: SliceFeature, *,
                         thresholds: dict[str, float], min_slice_size: int, confidence_level: float,
                         n_bootstrap: int, seed: int, acknowledge: Iterable[Any] | None,
                         overall: Callable[[], dict[str, Any]], started: float, **extra: Any) -> TaskFairnessReport:
    """Slice each sensitive feature (and their intersection) with ``slice_feature`` and assemble the report
    ``cls``: its groups and gaps, the figures ``overall()`` gives over every row, the brief's acknowledgements
    (recorded in the notes) and ``extra`` fields (e.g. ``classes``). Logs the time since ``started``."""
    features = feature_groups(sensitive, n)
    acks = normalise_acks(acknowledge)
    groups: dict[str, list[dict]] = {}
    gaps: list[dict] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        for feature, (codes, names) in features.items():
            groups[feature], feature_gaps = slice_feature(
                feature, codes, names, seed=int(seed), n_bootstrap=int(n_bootstrap),
                min_slice_size=int(min_slice_size), confidence_level=float(confidence_level),
                thresholds=thresholds, acks=acks)
            gaps.extend(feature_gaps)
    report = cls(features=list(features), groups=groups, gaps=gaps, threshold=None, thresholds=thresholds,
                 min_slice_size=int(min_slice_size), confidence_level=float(confidence_level),
                 n_bootstrap=int(n_bootstrap), seed=int(seed), n_rows=n, overall=overall(), acknowledge=acks,
                 **extra)
    report.notes.extend(ack_notes(acks, {f: [r["group"] for r in rows] for f, rows in groups.items()}))
    log.info("%s fairness report: %d rows, %d features, %d replicates in %.2fs; verdict %s",
             report.task.split("_")[0], n, len(features), n_bootstrap, time.perf_counter() - started, report.verdict)
    return report
