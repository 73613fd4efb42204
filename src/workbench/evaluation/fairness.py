"""Fairness slices: per-group metrics, gaps between groups with bootstrap confidence intervals, and verdicts.

:func:`fairness_report` disaggregates a model's decisions with Fairlearn's ``MetricFrame`` by each sensitive
feature and by their intersection, and returns a :class:`FairnessReport`:

* per group: rows, positives, selection rate, TPR, FPR, accuracy, PR-AUC, each rate with a bootstrap interval,
  and whether the group is large enough to count as evidence (``min_slice_size``);
* per feature: the demographic-parity difference and ratio and the equalized-odds difference over the groups
  with enough evidence and over every group, each with a percentile bootstrap interval, beside Fairlearn's own
  whole-population figure (``fairlearn_value``);
* per (feature, gap) a verdict: "within threshold" only when the whole interval is on the right side of the
  brief's threshold and no group lacks evidence; a small group is never left out silently: if even the lower
  bound of its gap exceeds the threshold the gap "exceeds threshold", otherwise it is "insufficient evidence —
  review" until the brief acknowledges the group (:mod:`workbench.evaluation._gaps`).

The bootstrap resamples rows within each group of each feature, from that feature's own seeded generator, and is
vectorised over replicates (:mod:`workbench.evaluation._bootstrap`). Missing sensitive values form the group
``"(missing)"``; the bins of a numeric feature keep their order (``<= 35``, ``(35, 50]``, ``> 50``). A prediction
is positive when the probability is above ``threshold``.
"""

from __future__ import annotations

import logging
import math
import numbers
import re
import time
import warnings
from collections.abc import Iterable
from typing import Any

import numpy as np
from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate, true_positive_rate

from ..brief import FairnessSpec
from ..errors import EvaluationError
from . import _bootstrap as bs
from ._checks import check_choice, check_probabilities, check_same_length, check_target, check_threshold
from ._fairness_report import GAP_METRICS, GROUP_METRICS, FairnessReport
from ._gaps import RATIO_METRICS, REVIEW, Component, Verdict, ack_notes, gap_row, normalise_acks
from ._scoring import METRICS, predict_labels

__all__ = [
    "GAP_METRICS",
    "GROUP_METRICS",
    "INTERSECTION_SEP",
    "MISSING_GROUP",
    "REVIEW",
    "FairnessReport",
    "Verdict",
    "fairness_report",
    "group_codes",
]

log = logging.getLogger(__name__)

MISSING_GROUP = "(missing)"
INTERSECTION_SEP = " & "


def _confusion_counts(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
    """MetricFrame metric: rows, positives, selected and true positives of a slice."""
    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred)
    return np.array([y_true.size, y_true.sum(), y_pred.sum(), np.sum(y_true & y_pred)], dtype=np.int64)


def _cell_counts(y: np.ndarray, yhat: np.ndarray, cell: np.ndarray, n_cells: int) -> np.ndarray:
    """(n_cells, 4) confusion counts per cell, disaggregated by Fairlearn's ``MetricFrame``.

    MetricFrame runs once, over the finest slicing (the intersection); a group of one feature is a union of
    cells, so its counts are exact sums. (One MetricFrame per feature and metric took about 0.8 s on Adult.)
    """
    mf = MetricFrame(metrics={"counts": _confusion_counts}, y_true=y, y_pred=yhat, sensitive_features=cell)
    by_cell = mf.by_group["counts"]
    return np.stack([by_cell.loc[k] for k in range(n_cells)])


def _sensitive_columns(sensitive: Any, n: int) -> dict[str, np.ndarray]:
    """Each sensitive column as an array of group labels (str), missing values as ``MISSING_GROUP``."""
    if hasattr(sensitive, "to_frame") and not hasattr(sensitive, "columns"):  # a pandas or polars Series
        sensitive = sensitive.to_frame()
    if not hasattr(sensitive, "columns") or len(sensitive.columns) == 0:
        raise EvaluationError(f"expected a polars or pandas DataFrame with one column per sensitive feature, "
                              f"got {type(sensitive).__name__}", argument="sensitive",
                              hint="pass test_frame.select(brief.sensitive_features)")
    if len(sensitive) != n:
        raise EvaluationError(f"lengths differ: y_true has {n} rows, sensitive has {len(sensitive)}",
                              argument="sensitive", hint="pass the sensitive columns of the same rows")
    out: dict[str, np.ndarray] = {}
    for name in sensitive.columns:
        col = sensitive[name]
        if hasattr(col, "isna"):  # pandas
            missing = col.isna().to_numpy()
            values = col.astype(str).to_numpy()
        else:  # polars
            if col.dtype.is_float():
                col = col.fill_nan(None)
            missing = col.is_null().to_numpy()
            values = col.cast(str).to_numpy()
        if missing.all():
            raise EvaluationError("every value is missing", argument=f"sensitive[{name!r}]",
                                  hint="drop the column from the brief's sensitive_features or fill it in")
        out[str(name)] = np.where(missing, MISSING_GROUP, values).astype(str)
    return out


def _check_options(thresholds: dict[str, float] | None, min_slice_size: int, confidence_level: float,
                   n_bootstrap: int) -> dict[str, float]:
    thresholds = dict(FairnessSpec().thresholds if thresholds is None else thresholds)
    for metric, value in thresholds.items():
        check_choice(metric, GAP_METRICS, argument="thresholds")
        if isinstance(value, bool) or not (isinstance(value, numbers.Real) and 0 <= value <= 1):
            raise EvaluationError(f"{metric}: expected a number in [0, 1], got {value!r}",
                                  argument="thresholds")
    for name, value, least in (("min_slice_size", min_slice_size, 1), ("n_bootstrap", n_bootstrap, 10)):
        if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < least:
            raise EvaluationError(f"expected a whole number of at least {least}, got {value!r}",
                                  argument=name)
    if not (isinstance(confidence_level, numbers.Real) and 0.5 < confidence_level < 1):
        raise EvaluationError(f"expected a number between 0.5 and 1, got {confidence_level!r}",
                              argument="confidence_level")
    return {k: float(v) for k, v in thresholds.items()}


def _num(x: float) -> float | None:
    return float(x) if math.isfinite(x) else None


_BIN = re.compile(r"^(?:<= (?P<le>\S+)|\((?P<lo>\S+), (?P<hi>\S+)\]|> (?P<gt>\S+))$")


def _bin_key(label: str) -> tuple[float, float] | None:
    """Sort key of a bin label of :func:`workbench.data.sensitive.bin_labels` (``<= 35``, ``(35, 50]``,
    ``> 50``), None for any other label."""
    m = _BIN.match(label)
    if m is None:
        return None
    try:
        if m["le"] is not None:
            return (-math.inf, float(m["le"]))
        if m["gt"] is not None:
            return (float(m["gt"]), math.inf)
        return (float(m["lo"]), float(m["hi"]))
    except ValueError:
        return None


def group_codes(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The groups of one sensitive column in display order and each row's group code.

    Bins of a numeric feature (every label but ``"(missing)"`` a bin label such as ``(35, 50]``) are ordered
    by value, ``(missing)`` last; any other column's groups are in sorted order."""
    names, codes = np.unique(labels, return_inverse=True)
    codes = codes.ravel()
    keys = {str(g): _bin_key(str(g)) for g in names if g != MISSING_GROUP}
    if keys and all(k is not None for k in keys.values()):
        order = sorted(range(names.size), key=lambda i: (names[i] == MISSING_GROUP, keys.get(str(names[i]))
                                                         or (math.inf, math.inf)))
        rank = np.empty(names.size, dtype=np.int64)
        rank[np.asarray(order)] = np.arange(names.size)
        names, codes = names[order], rank[codes]
    return names, codes


def _fairlearn_values(y: np.ndarray, yhat: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    """Fairlearn's own figures over every group: one ``MetricFrame`` of its ``selection_rate``,
    ``true_positive_rate`` and ``false_positive_rate``, aggregated as its ``demographic_parity_difference`` /
    ``_ratio`` and ``equalized_odds_difference`` are (between groups; the worst of the TPR and FPR differences).
    One frame instead of three calls halves the cost; Fairlearn counts the TPR of a group without positives as 0.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mf = MetricFrame(metrics={"sel": selection_rate, "tpr": true_positive_rate, "fpr": false_positive_rate},
                         y_true=y, y_pred=yhat, sensitive_features=labels)
        diff, ratio = mf.difference(method="between_groups"), mf.ratio(method="between_groups")
    return {"demographic_parity_difference": float(diff["sel"]), "demographic_parity_ratio": float(ratio["sel"]),
            "equalized_odds_difference": float(max(diff["tpr"], diff["fpr"]))}


def _feature_slices(feature: str, codes: np.ndarray, groups: np.ndarray, counts: np.ndarray, boot: np.ndarray,
                    y: np.ndarray, yhat: np.ndarray, p: np.ndarray, *, min_slice_size: int,
                    confidence_level: float, thresholds: dict[str, float], acks: dict[str, dict[str, str]]
                    ) -> tuple[list[dict], list[dict]]:
    """The group rows and gap rows of one feature (``codes``: the group index of each row; ``counts``: (G, 4)
    rows, positives, selected, true positives; ``boot``: (3, B, G) the feature's own replicates)."""
    n, pos, sel, tp = counts.T
    ap = np.array([METRICS["pr_auc"](y[codes == i], p[codes == i]) for i in range(groups.size)])
    point = bs.rates(n, pos, sel, tp)
    reps = bs.rates(np.broadcast_to(n, boot[0].shape), *boot)
    ci = {m: bs.interval(reps[m], confidence_level) for m in GROUP_METRICS}

    enough = n >= min_slice_size
    # TPR is estimated from a group's positives and FPR from its negatives: the minimum slice size applies to
    # those rows too, or a group with 3 positives would decide the equalized-odds gap by noise alone.
    both = enough & (pos >= min_slice_size) & (n - pos >= min_slice_size)
    rows = []
    for i, g in enumerate(groups):
        undefined = [f"{name} undefined ({what})" for name, what, k in
                     (("TPR", "0 positives", pos[i]), ("FPR", "0 negatives", n[i] - pos[i])) if k == 0]
        note = (f"{int(n[i])} rows < min_slice_size {min_slice_size}" if not enough[i] else
                "" if both[i] else
                f"{int(pos[i])} positives / {int(n[i] - pos[i])} negatives: fewer than min_slice_size "
                f"{min_slice_size}, TPR/FPR interval wide")
        if not (enough[i] and both[i]):
            note += "; kept with its interval and in the all-groups gaps"
        if undefined:
            note += "; " + ", ".join(undefined)
        rows.append({
            "group": str(g), "count": int(n[i]), "positives": int(pos[i]),
            **{m: _num(point[m][i]) for m in GROUP_METRICS}, "pr_auc": _num(ap[i]),
            "evidence": "ok" if enough[i] else "insufficient evidence",
            "evidence_tpr_fpr": "ok" if both[i] else "insufficient evidence", "note": note,
            "ci": {m: [_num(ci[m][0][i]), _num(ci[m][1][i])] for m in GROUP_METRICS},
        })

    fl = _fairlearn_values(y, yhat, groups[codes])
    from ._gaps import rate_bounds

    sel_c = Component(point["selection_rate"], reps["selection_rate"], enough,
                      *rate_bounds(sel, n, confidence_level))
    tpr_b, fpr_b = rate_bounds(tp, pos, confidence_level), rate_bounds(sel - tp, n - pos, confidence_level)
    comps = {"demographic_parity_difference": [sel_c], "demographic_parity_ratio": [sel_c],
             "equalized_odds_difference": [Component(point["tpr"], reps["tpr"], both, *tpr_b),
                                           Component(point["fpr"], reps["fpr"], both, *fpr_b)]}
    gaps = [gap_row(feature, metric, groups, comps[metric], thresholds=thresholds,
                    confidence_level=confidence_level, acks=acks, fairlearn_value=fl[metric],
                    kind="ratio" if metric in RATIO_METRICS else "difference")
            for metric in GAP_METRICS]
    return rows, gaps


def fairness_report(y_true: Any, y_prob: Any, sensitive: Any, *, threshold: float = 0.5,
                    thresholds: dict[str, float] | None = None, min_slice_size: int = 30,
                    confidence_level: float = 0.95, n_bootstrap: int = 200, seed: int = 0,
                    acknowledge: Iterable[Any] | None = None) -> FairnessReport:
    """Slice a model's decisions by each sensitive feature and their intersection; bound the gaps.

    Parameters
    ----------
    y_true:
        0/1 labels of the held-out rows.
    y_prob:
        Probability of the positive label for the same rows.
    sensitive:
        polars or pandas DataFrame holding only the sensitive columns, same rows. Missing values become the
        group ``"(missing)"``.
    threshold:
        Probability above which a prediction is positive (the brief's ``target.decision_threshold``).
    thresholds:
        Largest allowed gap per metric (the brief's ``fairness.thresholds``; keys among :data:`GAP_METRICS`;
        for ``demographic_parity_ratio`` the smallest allowed ratio). Default: the brief's defaults. Gaps
        without a threshold are reported with the verdict "no threshold".
    min_slice_size:
        Groups with fewer rows (for equalized odds, also fewer positives or negatives) are "insufficient
        evidence": left out of ``value`` / ``ci_*`` but kept, with their intervals, in the all-groups gap and
        in the verdict (see :mod:`workbench.evaluation._gaps`).
    confidence_level, n_bootstrap, seed:
        Percentile bootstrap: interval level, replicates and the seed; each feature (and the intersection)
        resamples its own groups from ``numpy.random.default_rng([seed, crc32(feature)])``, so adding a
        sensitive feature never changes another feature's intervals.
    acknowledge:
        The brief's ``fairness.acknowledge``: ``[{feature, groups, reason}]`` (or ``FairnessAck`` objects).
        Recorded in the gap rows of an "insufficient evidence — review" verdict (``acknowledged``); the
        promotion gate passes such a gap only when every insufficient group is acknowledged.

    Returns
    -------
    FairnessReport

    Raises
    ------
    EvaluationError
        Lengths differ, labels are not 0/1, probabilities are NaN or outside [0, 1], a sensitive column is
        entirely missing, or an option is invalid.
    """
    start = time.perf_counter()
    y = check_target(y_true)
    p = check_probabilities(y_prob)
    n = check_same_length(y_true=y, y_prob=p)
    columns = _sensitive_columns(sensitive, n)
    threshold = check_threshold(threshold)
    thresholds = _check_options(thresholds, min_slice_size, confidence_level, n_bootstrap)
    yhat = predict_labels(p, threshold=threshold)

    acks = normalise_acks(acknowledge)

    uniques = {name: group_codes(labels) for name, labels in columns.items()}
    cell, combos = bs.cells_of([codes for _, codes in uniques.values()])
    cell_counts = _cell_counts(y, yhat, cell, len(combos))  # the one MetricFrame pass
    # feature -> (group index of each row, group names in order, group index of each cell)
    features = {name: (codes, names, combos[:, j]) for j, (name, (names, codes)) in enumerate(uniques.items())}
    if len(columns) > 1:
        names = [uniques[name][0] for name in columns]
        cell_labels = np.array([INTERSECTION_SEP.join(str(g[c]) for g, c in zip(names, row, strict=True))
                                for row in combos])
        features[INTERSECTION_SEP.join(columns)] = (cell, cell_labels, np.arange(len(combos)))

    groups: dict[str, list[dict]] = {}
    gaps: list[dict] = []
    for feature, (codes, names, group_of_cell) in features.items():
        counts = np.zeros((names.size, 4), dtype=np.int64)
        np.add.at(counts, group_of_cell, cell_counts)  # a group's counts: the sum over its cells
        boot = bs.bootstrap_cell_counts(y, yhat, codes, n_bootstrap=n_bootstrap,
                                        rng=bs.feature_rng(seed, feature))
        groups[feature], feature_gaps = _feature_slices(
            feature, codes, names, counts, boot, y, yhat, p, min_slice_size=min_slice_size,
            confidence_level=confidence_level, thresholds=thresholds, acks=acks)
        gaps.extend(feature_gaps)

    overall = cell_counts.sum(axis=0)
    o_rates = bs.rates(*overall)
    report = FairnessReport(
        features=list(features), groups=groups, gaps=gaps, threshold=threshold, thresholds=thresholds,
        min_slice_size=int(min_slice_size), confidence_level=float(confidence_level),
        n_bootstrap=int(n_bootstrap), seed=seed, n_rows=n,
        overall={"count": n, "positives": int(overall[1]), **{m: _num(o_rates[m]) for m in GROUP_METRICS},
                 "pr_auc": _num(METRICS["pr_auc"](y, p))},
        acknowledge=acks,
    )
    report.notes.extend(ack_notes(acks, {f: [r["group"] for r in rows] for f, rows in groups.items()}))
    log.info("fairness report: %d rows, %d features, %d replicates in %.2fs; verdict %s", n, len(features),
             n_bootstrap, time.perf_counter() - start, report.verdict)
    return report
