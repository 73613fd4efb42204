"""Multiclass classification: three or more classes, coded 0..K-1 in sorted order, scored by a probability
matrix (column k = P(classes[k]))."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .base import Task, without_intersection

__all__ = ["MulticlassTask", "MAX_CLASSES"]

MAX_CLASSES = 100
"""A target with more distinct values than this is not a classification target."""


@dataclass(frozen=True)
class MulticlassTask(Task):
    name: ClassVar[str] = "multiclass_classification"
    short: ClassVar[str] = "multiclass"
    is_classifier: ClassVar[bool] = True
    metrics: ClassVar[dict[str, bool]] = {"macro_f1": True, "balanced_accuracy": True, "accuracy": True,
                                           "weighted_f1": True, "log_loss": False}
    default_primary: ClassVar[str] = "macro_f1"
    gap_metrics: ClassVar[tuple[str, ...]] = ("accuracy_difference", "recall_difference",
                                              "selection_rate_difference")
    default_gap_thresholds: ClassVar[dict[str, float]] = {"accuracy_difference": 0.2, "recall_difference": 0.2}
    baselines: ClassVar[tuple[str, ...]] = ("majority", "rule")
    candidates: ClassVar[tuple[str, ...]] = ("logreg", "hgb", "lgbm", "xgb")
    search_families: ClassVar[tuple[str, ...]] = ("lgbm", "xgb")
    onnx_outputs: ClassVar[tuple[str, ...]] = ("label", "probabilities")
    answer_fields: ClassVar[tuple[str, ...]] = ("label", "probabilities")
    prediction_drift: ClassVar[str] = "PSI and chi-square on the predicted class shares"
    target_keys: ClassVar[tuple[str, ...]] = ()

    def check_target(self, col: Any, *, brief: Any, path: str | Path | None = None) -> None:
        import polars as pl

        from ..errors import DataError

        t = brief.target.column
        labelled = col.drop_nulls()
        if col.dtype.is_float():
            frac = labelled.filter(labelled.is_not_nan())
            if (frac.round(0) != frac).any():
                raise DataError("holds fractional numbers: a multiclass target needs class labels",
                                file=path, column=t, hint="use task: regression for a numeric target")
        counts = labelled.cast(pl.String).value_counts().sort("count")
        k = counts.height
        shown = ", ".join(f"{v!r} ({n})" for v, n in counts.sort(counts.columns[0]).rows()[:12])
        if k == 2:
            raise DataError(f"a multiclass task needs at least three classes, found 2: {shown}", file=path,
                            column=t, hint="use task: binary_classification with target.positive_label")
        if k < 2:
            raise DataError(f"the target has {k} distinct value(s): {shown}", file=path, column=t,
                            hint="choose a target column with at least three classes")
        if k > MAX_CLASSES:
            raise DataError(f"the target has {k} distinct values, more than {MAX_CLASSES} classes", file=path,
                            column=t, hint="use task: regression for a numeric target, or group the classes")
        smallest, n = counts.row(0)
        if n < 2:
            raise DataError(f"class {smallest!r} has {n} row: a class needs at least two rows to be learned "
                            f"and tested", file=path, column=t,
                            hint="drop or merge the rare class before loading")

    def classes(self, col: Any, *, brief: Any) -> list[str]:
        import polars as pl

        return sorted(col.drop_nulls().cast(pl.String).unique().to_list())

    def encode_target(self, col: Any, *, brief: Any, classes: list[str] | None = None) -> np.ndarray:
        """Class codes 0..K-1 in the order of ``classes`` (default: sorted). A value outside ``classes``
        (or a null) is -1: callers drop or refuse those rows."""
        import polars as pl

        classes = classes if classes is not None else self.classes(col, brief=brief)
        index = {c: i for i, c in enumerate(classes)}
        text = col.cast(pl.String).to_list()
        return np.array([index.get(v, -1) if v is not None else -1 for v in text], dtype=np.int64)

    def scores(self, model: Any, X: Any) -> np.ndarray:
        return np.asarray(model.predict_proba(X), dtype=np.float64)

    def serving_fields(self, *, contract: dict, threshold: float | None, classes: list[str] | None,
                       target_std: float | None) -> dict:
        return {"classes": list(classes or [])}

    # ------------------------------------------------------------------ evaluation hooks
    def cross_validate(self, make_model: Any, X: Any, y: np.ndarray, *, n_splits: int, seed: int,
                       threshold: float | None = None) -> Any:
        from ..evaluation._crossval import cross_validate_task
        from ..evaluation.multiclass import MULTICLASS_METRICS

        k = int(np.max(y)) + 1 if len(y) else 0

        def score(model: Any, Xf: Any) -> np.ndarray:
            return _full_proba(model, Xf, k)

        return cross_validate_task(make_model, X, y, score=score, metrics=MULTICLASS_METRICS,
                                   greater_is_better=self.metrics, n_splits=n_splits, seed=seed,
                                   stratify=self.stratify_labels(y))

    def evaluate(self, y: np.ndarray, scores: np.ndarray, *, primary: str, threshold: float | None = None,
                 classes: list[str] | None = None) -> Any:
        from ..evaluation.multiclass import evaluate_multiclass

        return evaluate_multiclass(y, scores, classes=list(classes or []), primary=primary)

    def fairness(self, y: np.ndarray, scores: np.ndarray, sensitive: Any, *, brief: Any, n_bootstrap: int,
                 seed: int, classes: list[str] | None = None, acknowledge: list | None = None) -> Any:
        """The fairness report; ``acknowledge`` defaults to the brief's ``fairness.acknowledge``."""
        from ..evaluation.multiclass import multiclass_fairness_report

        f = brief.fairness
        report = multiclass_fairness_report(y, scores, sensitive, classes=list(classes or []),
                                          thresholds=dict(f.thresholds), min_slice_size=f.min_slice_size,
                                          confidence_level=f.confidence_level, n_bootstrap=n_bootstrap, seed=seed,
                                          acknowledge=f.acknowledge if acknowledge is None else acknowledge)
        return without_intersection(report, brief)

    def plot_evaluation(self, report: Any) -> Any:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4))
        ax1, ax2 = fig.subplots(1, 2)
        report.plot_confusion(ax=ax1)
        report.plot_calibration(ax=ax2)
        fig.tight_layout()
        return fig


def _full_proba(model: Any, X: Any, k: int) -> np.ndarray:
    """``predict_proba`` with one column per class code 0..k-1 (a fold may miss a rare class)."""
    p = np.asarray(model.predict_proba(X), dtype=np.float64)
    if p.shape[1] == k:
        return p
    out = np.zeros((p.shape[0], k))
    out[:, np.asarray(model.classes_, dtype=np.int64)] = p
    return out
