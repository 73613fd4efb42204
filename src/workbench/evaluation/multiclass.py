"""Evaluation of multiclass classifiers: the metric registry, held-out evaluation and fairness slices.

* :data:`MULTICLASS_METRICS` / :data:`MULTICLASS_GREATER_IS_BETTER` -- every metric a multiclass brief may name;
* :func:`evaluate_multiclass` -- a :class:`MulticlassReport`: metrics, per-class precision / recall / F1 /
  support / one-vs-rest PR-AUC, the confusion matrix and per-class (one-vs-rest, quantile-bin) calibration;
* :func:`multiclass_fairness_report` -- per group (Fairlearn ``MetricFrame``) accuracy, per-class recall and
  per-class selection rate with bootstrap intervals, and the gaps ``accuracy_difference``,
  ``recall_difference`` and ``selection_rate_difference`` (max over classes; the gap row names the class)
  with intervals and verdicts (:class:`MulticlassFairnessReport`).

Conventions (round-2 spec): ``classes`` is the sorted list of class names (strings, K >= 3); ``y_true`` holds
int codes 0..K-1 indexing ``classes``; ``proba`` is float (n, K) with rows summing to 1, column k the
probability of ``classes[k]``. The predicted class is the argmax (ties go to the first class). A class absent
from ``y_true`` does not fail anything: what is undefined for it (recall, PR-AUC, calibration) is NaN.

The report classes, :data:`MULTICLASS_GREATER_IS_BETTER` and :data:`MULTICLASS_GAP_METRICS` are defined without
scikit-learn or Fairlearn (:mod:`._heldout`, :mod:`._fairness_report`) and re-exported here.
"""

from __future__ import annotations

import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from fairlearn.metrics import MetricFrame
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    recall_score,
)

from ..errors import EvaluationError
from . import _bootstrap as bs
from ._bootstrap import feature_rng, resample_chunks
from ._checks import as_1d, check_choice, check_same_length
from ._fairness_report import MULTICLASS_GAP_METRICS, MulticlassFairnessReport
from ._gaps import Component, extremes, gap_row, num
from ._heldout import MULTICLASS_GREATER_IS_BETTER, MulticlassReport, div_or_nan
from ._task_fairness import check_fairness_options, task_fairness_report
from .metrics import _calibration

__all__ = [
    "MULTICLASS_METRICS",
    "MULTICLASS_GREATER_IS_BETTER",
    "MULTICLASS_GAP_METRICS",
    "MulticlassReport",
    "MulticlassFairnessReport",
    "check_classes",
    "check_codes",
    "check_proba",
    "evaluate_multiclass",
    "multiclass_fairness_report",
    "predict_classes",
]

log = logging.getLogger(__name__)

PROBA_SUM_TOLERANCE = 1e-4  # rows of proba must sum to 1 within this (float32 outputs renormalised upstream)


# ---------------------------------------------------------------------------------------------- inputs
def predict_classes(proba: np.ndarray) -> np.ndarray:
    """The predicted class code per row: the argmax of ``proba`` (ties go to the first class)."""
    return np.argmax(np.asarray(proba), axis=1).astype(np.int64)


def check_classes(classes: Any) -> list[str]:
    """``classes`` as a list of at least three distinct strings."""
    if isinstance(classes, str) or not isinstance(classes, Sequence | np.ndarray):
        raise EvaluationError(f"expected a list of class names, got {type(classes).__name__}", argument="classes",
                              hint="pass the sorted distinct target values as strings (the task's classes)")
    out = [str(c) for c in classes]
    if len(out) < 3 or len(set(out)) != len(out):
        raise EvaluationError(f"expected at least three distinct class names, got {out!r}", argument="classes",
                              hint="two classes are the binary task: use evaluate_binary")
    return out


def check_codes(y_true: Any, n_classes: int, *, argument: str = "y_true") -> np.ndarray:
    """``y_true`` as int64 class codes in ``0 .. n_classes - 1``."""
    arr = as_1d(y_true, argument=argument)
    hint = "encode the target as int codes: classes.index(label)"
    if not np.issubdtype(arr.dtype, np.number) or arr.dtype == bool:
        raise EvaluationError(f"expected int class codes, got values of type {arr.dtype} (e.g. {arr[0]!r})",
                              argument=argument, hint=hint)
    bad = ~np.isin(arr, np.arange(n_classes))
    if bad.any():
        raise EvaluationError(f"{int(bad.sum())} values are not class codes 0..{n_classes - 1} "
                              f"(first: {arr[bad][0]!r})", argument=argument, hint=hint)
    return arr.astype(np.int64)


def check_proba(proba: Any, n_classes: int, *, argument: str = "proba") -> np.ndarray:
    """``proba`` as a float64 (n, n_classes) array of probabilities whose rows sum to 1."""
    arr = np.asarray(proba.to_numpy() if hasattr(proba, "to_numpy") else proba)
    if arr.ndim != 2 or arr.shape[1] != n_classes:
        raise EvaluationError(f"expected shape (n, {n_classes}), one column per class, got {arr.shape}",
                              argument=argument, hint="pass predict_proba(X), columns in the order of classes")
    if arr.shape[0] == 0:
        raise EvaluationError("is empty", argument=argument, hint="pass at least one row")
    if not np.issubdtype(arr.dtype, np.number) or arr.dtype == bool:
        raise EvaluationError(f"expected probabilities, got values of type {arr.dtype}", argument=argument)
    arr = arr.astype(np.float64)
    if not np.isfinite(arr).all():
        raise EvaluationError(f"{int((~np.isfinite(arr)).any(axis=1).sum())} rows hold NaN or infinite values",
                              argument=argument, hint="a NaN probability usually means a missing numeric input "
                                                      "the pipeline does not impute")
    if (arr < 0).any() or (arr > 1).any():
        raise EvaluationError(f"values outside [0, 1] (min {arr.min():.4g}, max {arr.max():.4g})",
                              argument=argument, hint="pass probabilities (predict_proba), not decision scores")
    off = np.abs(arr.sum(axis=1) - 1)
    if (off > PROBA_SUM_TOLERANCE).any():
        raise EvaluationError(f"{int((off > PROBA_SUM_TOLERANCE).sum())} rows do not sum to 1 (largest "
                              f"deviation {off.max():.3g})", argument=argument,
                              hint="pass predict_proba(X); renormalise float32 outputs in float64")
    return arr


# ---------------------------------------------------------------------------------------------- metrics
def _quiet(fn: Callable[..., float]) -> Callable[[np.ndarray, np.ndarray], float]:
    def metric(y_true: np.ndarray, proba: np.ndarray) -> float:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "y_pred contains classes not in y_true" and the like
            return float(fn(np.asarray(y_true), np.asarray(proba)))

    metric.__name__ = fn.__name__
    return metric


def _macro_f1(y, proba):
    return f1_score(y, predict_classes(proba), average="macro", zero_division=0.0)


def _weighted_f1(y, proba):
    return f1_score(y, predict_classes(proba), average="weighted", zero_division=0.0)


def _accuracy(y, proba):
    return accuracy_score(y, predict_classes(proba))


def _balanced_accuracy(y, proba):
    return balanced_accuracy_score(y, predict_classes(proba))


def _log_loss(y, proba):
    return log_loss(y, proba, labels=list(range(proba.shape[1])))


#: Metric functions ``f(y_true codes, proba) -> float``. F1 scores average over the classes present in
#: ``y_true`` or predicted (scikit-learn's default), balanced accuracy over the classes present in ``y_true``,
#: log loss over every class (``labels=range(K)``).
MULTICLASS_METRICS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "macro_f1": _quiet(_macro_f1), "weighted_f1": _quiet(_weighted_f1), "accuracy": _quiet(_accuracy),
    "balanced_accuracy": _quiet(_balanced_accuracy), "log_loss": _quiet(_log_loss),
}
# MULTICLASS_GREATER_IS_BETTER (log loss is a loss) is kept with the report, in ._heldout.


# ---------------------------------------------------------------------------------------------- report
def evaluate_multiclass(y_true: Any, proba: Any, *, classes: Sequence[str], primary: str = "macro_f1",
                        n_bins: int = 10) -> MulticlassReport:
    """Evaluate class probabilities against class codes.

    Parameters
    ----------
    y_true:
        Int class codes 0..K-1 indexing ``classes``.
    proba:
        (n, K) probabilities, column k for ``classes[k]`` (``predict_proba`` of a model trained on the codes).
    classes:
        Class names in code order (K >= 3).
    primary:
        The metric the report leads with (a key of :data:`MULTICLASS_METRICS`).
    n_bins:
        Quantile bins of each one-vs-rest calibration curve.

    Returns
    -------
    MulticlassReport

    Raises
    ------
    EvaluationError
        Lengths or shapes differ, codes are outside 0..K-1, probabilities are NaN, outside [0, 1] or rows do
        not sum to 1, or an option is unknown.
    """
    names = check_classes(classes)
    k = len(names)
    y = check_codes(y_true, k)
    p = check_proba(proba, k)
    n = check_same_length(y_true=y, proba=p)
    check_choice(primary, tuple(MULTICLASS_METRICS), argument="primary")
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
        raise EvaluationError(f"expected a whole number of at least 2, got {n_bins!r}", argument="n_bins")
    yhat = predict_classes(p)
    cm = confusion_matrix(y, yhat, labels=list(range(k)))
    tp, support, predicted = np.diag(cm), cm.sum(axis=1), cm.sum(axis=0)
    precision, recall, f1 = div_or_nan(tp, predicted), div_or_nan(tp, support), div_or_nan(2 * tp, support + predicted)
    calibration, per_class, notes = {}, [], []
    for j, c in enumerate(names):
        yj = (y == j).astype(np.int8)
        defined = 0 < support[j] < n
        pr_auc = float(average_precision_score(yj, p[:, j])) if defined else math.nan
        calibration[c] = _calibration(yj, p[:, j], n_bins)
        per_class.append({"class": c, "support": int(support[j]), "predicted": int(predicted[j]),
                          "precision": num(precision[j]), "recall": num(recall[j]), "f1": num(f1[j]),
                          "pr_auc": num(pr_auc), "ece": calibration[c]["ece"]})
        if support[j] == 0:
            notes.append(f"class {c!r} is absent from y_true: its recall, PR-AUC and calibration are undefined")
    return MulticlassReport(n=n, classes=names, primary=primary,
                            metrics={m: f(y, p) for m, f in MULTICLASS_METRICS.items()}, per_class=per_class,
                            confusion=cm.astype(int).tolist(), calibration=calibration, notes=notes)


# ---------------------------------------------------------------------------------------------- fairness
def _recall_fn(k: int) -> Callable[[np.ndarray, np.ndarray], float]:
    def recall(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        mask = np.asarray(y_true) == k
        return float(np.mean(np.asarray(y_pred)[mask] == k)) if mask.any() else math.nan
    return recall


def _figures_fn(k: int) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """MetricFrame metric: accuracy, recall of each class, selection rate of each class (NaN recall for a
    class without rows)."""
    def figures(y_true: np.ndarray, y_pred: np.ndarray) -> np.ndarray:
        cm = confusion_matrix(np.asarray(y_true), np.asarray(y_pred), labels=list(range(k)))
        n = cm.sum()
        return np.concatenate([[np.trace(cm) / n], div_or_nan(np.diag(cm), cm.sum(axis=1)), cm.sum(axis=0) / n])
    return figures


def _class_counts(codes: np.ndarray, n_classes: int) -> np.ndarray:
    """(replicates, n_classes) counts of each code per row of ``codes`` (replicates x rows)."""
    b = codes.shape[0]
    flat = (np.arange(b)[:, None] * n_classes + codes).ravel()
    return np.bincount(flat, minlength=b * n_classes).reshape(b, n_classes)


def _per_class_gap(feature: str, metric: str, point: np.ndarray, reps: np.ndarray, used: np.ndarray,
                   groups: np.ndarray, classes: list[str], opts: dict, fairlearn_value: float,
                   trials: np.ndarray | None = None) -> dict:
    """Gap over classes: ``point`` (K, G), ``reps`` (K, B, G), ``used`` (K, G); the row names the class with the
    largest gap over the sufficient groups."""
    per_class = np.array([bs.spread(point[j][used[j]], kind="difference") for j in range(len(classes))])
    defined = bool(np.isfinite(per_class).any())
    top = int(np.nanargmax(per_class)) if defined else 0
    insufficient = ~np.logical_and.reduce(used)
    from ._gaps import rate_bounds

    def comp(j: int) -> Component:
        if trials is None:
            return Component(point[j], reps[j], used[j])
        return Component(point[j], reps[j], used[j], *rate_bounds(np.nan_to_num(point[j]) * trials[j], trials[j],
                                                                  opts["confidence_level"]))

    row = gap_row(feature, metric, groups, [comp(j) for j in range(len(classes))],
                  fairlearn_value=fairlearn_value, **extremes(point[top], used[top], groups),
                  **{"class": classes[top] if defined else None,
                     "per_class": {c: num(v) for c, v in zip(classes, per_class, strict=True)},
                     "groups_used_by_class": {c: [str(g) for g in groups[used[j]]] for j, c in enumerate(classes)},
                     "groups_insufficient_by_class": {c: [str(g) for g in groups[~used[j] & insufficient]]
                                                      for j, c in enumerate(classes)}}, **opts)
    return row


def _selection_rate_fn(k: int) -> Callable[[np.ndarray, np.ndarray], float]:
    def selection_rate(y_true: np.ndarray, y_pred: np.ndarray) -> float:
        return float(np.mean(np.asarray(y_pred) == k))
    return selection_rate


def _recall_zero_fn(k: int) -> Callable[[np.ndarray, np.ndarray], float]:
    def recall(y_true: np.ndarray, y_pred: np.ndarray) -> float:  # scikit-learn's convention: 0 without rows
        return float(recall_score(np.asarray(y_true) == k, np.asarray(y_pred) == k, zero_division=0))
    return recall


def _fairlearn_gaps(y: np.ndarray, yhat: np.ndarray, labels: np.ndarray, k: int) -> dict[str, float]:
    """The gaps over every group as Fairlearn computes them: ``MetricFrame(...).difference()`` (max - min between
    groups) of accuracy, and the largest over classes of that of each class's recall and selection rate
    (scikit-learn's recall: 0 for a group without rows of the class)."""
    metrics: dict[str, Callable] = {"accuracy": accuracy_score}
    metrics.update({f"recall_{j}": _recall_zero_fn(j) for j in range(k)})
    metrics.update({f"sel_{j}": _selection_rate_fn(j) for j in range(k)})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        diff = MetricFrame(metrics=metrics, y_true=y, y_pred=yhat, sensitive_features=labels).difference(
            method="between_groups")
    return {"accuracy_difference": float(diff["accuracy"]),
            "recall_difference": float(max(diff[f"recall_{j}"] for j in range(k))),
            "selection_rate_difference": float(max(diff[f"sel_{j}"] for j in range(k)))}


def _multiclass_feature(feature: str, codes: np.ndarray, groups: np.ndarray, y: np.ndarray, yhat: np.ndarray,
                        classes: list[str], *, seed: int, n_bootstrap: int, min_slice_size: int,
                        confidence_level: float, thresholds: Mapping[str, float],
                        acks: Mapping[str, Mapping[str, str]]) -> tuple[list[dict], list[dict]]:
    k, g_n = len(classes), groups.size
    rec_names = [f"recall[{c}]" for c in classes]
    sel_names = [f"selection_rate[{c}]" for c in classes]
    figure_names = ["accuracy", *rec_names, *sel_names]
    # One MetricFrame metric returning every figure of a group: Fairlearn's cost grows with the number of
    # metrics (2K + 1 of them took about 1 s per feature on 30,000 rows).
    mf = MetricFrame(metrics={"figures": _figures_fn(k)}, y_true=y, y_pred=yhat, sensitive_features=groups[codes])
    by = np.stack([np.asarray(mf.by_group["figures"].loc[g], dtype=np.float64) for g in groups])
    point = {m: by[:, j] for j, m in enumerate(figure_names)}
    count = np.bincount(codes, minlength=g_n)
    class_counts = np.zeros((g_n, k), dtype=np.int64)
    np.add.at(class_counts, (codes, y), 1)

    rng = feature_rng(seed, feature)
    acc = np.empty((n_bootstrap, g_n))
    rec = np.empty((k, n_bootstrap, g_n))
    sel = np.empty((k, n_bootstrap, g_n))
    order = np.argsort(codes, kind="stable")
    starts = np.concatenate([[0], np.cumsum(count)])
    correct_all = y == yhat
    for i in range(g_n):
        rows_i = order[starts[i]:starts[i + 1]]
        yi, yhi, ci = y[rows_i], yhat[rows_i], correct_all[rows_i]
        hit_i = np.where(ci, yi, k)  # the class of a correctly classified row, k otherwise
        for sl, idx in resample_chunks(rows_i.size, n_bootstrap, rng):
            acc[sl, i] = ci[idx].mean(axis=1)
            sel[:, sl, i] = (_class_counts(yhi[idx], k) / rows_i.size).T
            true_k = _class_counts(yi[idx], k)
            hits = _class_counts(hit_i[idx], k + 1)[:, :k]
            rec[:, sl, i] = div_or_nan(hits, true_k).T

    enough = count >= min_slice_size
    recall_ok = enough[:, None] & (class_counts >= min_slice_size)  # (G, K)
    ci_acc = bs.interval(acc, confidence_level)
    ci_rec = [bs.interval(rec[j], confidence_level) for j in range(k)]
    ci_sel = [bs.interval(sel[j], confidence_level) for j in range(k)]
    rows = []
    for i, g in enumerate(groups):
        short = [c for j, c in enumerate(classes) if not recall_ok[i, j]]
        absent = [c for j, c in enumerate(classes) if class_counts[i, j] == 0]
        note = (f"{int(count[i])} rows < min_slice_size {min_slice_size}" if not enough[i] else
                f"fewer than {min_slice_size} rows of class(es) {', '.join(short)}: their recall interval is wide"
                if short else "")
        if short or not enough[i]:
            note += "; kept with its intervals and in the all-groups gaps"
        if absent:
            note += f"; recall undefined for {', '.join(absent)} (0 rows)"
        ci = {"accuracy": [num(ci_acc[0][i]), num(ci_acc[1][i])]}
        ci.update({rec_names[j]: [num(ci_rec[j][0][i]), num(ci_rec[j][1][i])] for j in range(k)})
        ci.update({sel_names[j]: [num(ci_sel[j][0][i]), num(ci_sel[j][1][i])] for j in range(k)})
        rows.append({"group": str(g), "count": int(count[i]), **{m: num(point[m][i]) for m in figure_names},
                     "class_counts": {c: int(class_counts[i, j]) for j, c in enumerate(classes)},
                     "evidence": "ok" if enough[i] else "insufficient evidence",
                     "evidence_recall": {c: "ok" if recall_ok[i, j] else "insufficient evidence"
                                         for j, c in enumerate(classes)},
                     "note": note, "ci": ci})

    fl = _fairlearn_gaps(y, yhat, groups[codes], k)
    opts = {"thresholds": thresholds, "confidence_level": confidence_level, "acks": acks}
    rec_point = np.stack([point[m] for m in rec_names])
    sel_point = np.stack([point[m] for m in sel_names])
    from ._gaps import rate_bounds

    acc_b = rate_bounds(point["accuracy"] * count, count, confidence_level)
    gaps = [gap_row(feature, "accuracy_difference", groups, [Component(point["accuracy"], acc, enough, *acc_b)],
                    fairlearn_value=fl["accuracy_difference"], **extremes(point["accuracy"], enough, groups),
                    **opts),
            _per_class_gap(feature, "recall_difference", rec_point, rec, recall_ok.T, groups, classes, opts,
                           fl["recall_difference"], trials=class_counts.T.astype(np.float64)),
            _per_class_gap(feature, "selection_rate_difference", sel_point, sel,
                           np.broadcast_to(enough, (k, g_n)), groups, classes, opts,
                           fl["selection_rate_difference"], trials=np.broadcast_to(count.astype(np.float64), (k, g_n)))]
    return rows, gaps


def multiclass_fairness_report(y_true: Any, proba: Any, sensitive: Any, *, classes: Sequence[str],
                               thresholds: Mapping[str, float] | None, min_slice_size: int = 30,
                               confidence_level: float = 0.95, n_bootstrap: int = 200,
                               seed: int = 0, acknowledge: Iterable[Any] | None = None) -> MulticlassFairnessReport:
    """Slice a multiclass classifier's decisions by each sensitive feature and their intersection; bound the gaps.

    Parameters
    ----------
    y_true:
        Int class codes of the held-out rows.
    proba:
        (n, K) class probabilities for the same rows; the decision is the argmax.
    sensitive:
        polars or pandas DataFrame holding only the sensitive columns, same rows. Missing values become the
        group ``"(missing)"``.
    classes:
        Class names in code order (K >= 3).
    thresholds:
        Largest allowed gap per metric (keys among :data:`MULTICLASS_GAP_METRICS`, values in [0, 1]). Gaps
        without a threshold get the verdict "no threshold"; None means no thresholds.
    min_slice_size:
        Groups with fewer rows are "insufficient evidence" and left out of every gap; a group's recall of a
        class is compared only when it has at least this many rows of the class.
    confidence_level, n_bootstrap, seed:
        Percentile bootstrap: interval level, replicates, and the seed; each feature draws from its own
        generator seeded by ``seed`` and the feature's name.
    acknowledge:
        The brief's ``fairness.acknowledge`` (``[{feature, groups, reason}]``), recorded in the gap rows.

    Returns
    -------
    MulticlassFairnessReport

    Raises
    ------
    EvaluationError
        Bad codes, probabilities or lengths, a sensitive column entirely missing, or an invalid option.
    """
    start = time.perf_counter()
    names = check_classes(classes)
    y = check_codes(y_true, len(names))
    p = check_proba(proba, len(names))
    n = check_same_length(y_true=y, proba=p)
    thresholds = check_fairness_options(thresholds, MULTICLASS_GAP_METRICS, min_slice_size=min_slice_size,
                                        confidence_level=confidence_level, n_bootstrap=n_bootstrap, seed=seed,
                                        upper=1.0)
    yhat = predict_classes(p)

    def slice_feature(feature: str, codes: np.ndarray, group_names: np.ndarray, **opts: Any) -> tuple[list, list]:
        return _multiclass_feature(feature, codes, group_names, y, yhat, names, **opts)

    def overall() -> dict[str, Any]:
        out: dict[str, Any] = {"count": n, "accuracy": float(np.mean(y == yhat))}
        out.update({f"recall[{c}]": num(_recall_fn(j)(y, yhat)) for j, c in enumerate(names)})
        out.update({f"selection_rate[{c}]": float(np.mean(yhat == j)) for j, c in enumerate(names)})
        return out

    return task_fairness_report(MulticlassFairnessReport, sensitive, n, slice_feature, thresholds=thresholds,
                                min_slice_size=min_slice_size, confidence_level=confidence_level,
                                n_bootstrap=n_bootstrap, seed=seed, acknowledge=acknowledge, overall=overall,
                                started=start, classes=names)
