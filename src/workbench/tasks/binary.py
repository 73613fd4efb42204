"""Binary classification: a 0/1 target (1 = the brief's positive label), scored by P(positive)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .base import Task, without_intersection

__all__ = ["BinaryTask"]


@dataclass(frozen=True)
class BinaryTask(Task):
    name: ClassVar[str] = "binary_classification"
    short: ClassVar[str] = "binary"
    is_classifier: ClassVar[bool] = True
    metrics: ClassVar[dict[str, bool]] = {"pr_auc": True, "roc_auc": True, "f1": True, "accuracy": True,
                                           "balanced_accuracy": True, "log_loss": False, "brier": False}
    default_primary: ClassVar[str] = "pr_auc"
    gap_metrics: ClassVar[tuple[str, ...]] = ("demographic_parity_difference", "demographic_parity_ratio",
                                              "equalized_odds_difference")
    default_gap_thresholds: ClassVar[dict[str, float]] = {"demographic_parity_difference": 0.2,
                                                          "equalized_odds_difference": 0.2}
    baselines: ClassVar[tuple[str, ...]] = ("majority", "rule")
    candidates: ClassVar[tuple[str, ...]] = ("logreg", "hgb", "lgbm", "xgb")
    search_families: ClassVar[tuple[str, ...]] = ("lgbm", "xgb")
    onnx_outputs: ClassVar[tuple[str, ...]] = ("label", "probabilities")
    answer_fields: ClassVar[tuple[str, ...]] = ("probability", "label")
    prediction_drift: ClassVar[str] = "PSI and KS on P(positive), and the positive rate at the threshold"
    target_keys: ClassVar[tuple[str, ...]] = ("positive_label", "decision_threshold")

    def choose_metrics(self, y_train: np.ndarray, *, override: str | None = None) -> tuple[str, list[str]]:
        from ..evaluation.metrics import choose_metrics

        rate = float(np.mean(y_train)) if len(y_train) else 0.5
        return choose_metrics("binary_classification", rate, override=override)

    def check_target(self, col: Any, *, brief: Any, path: str | Path | None = None) -> None:
        import polars as pl

        from ..errors import BriefError, DataError

        t = brief.target.column
        values = col.drop_nulls().cast(pl.String).unique().sort().to_list()
        if len(values) != 2:
            shown = ", ".join(repr(v) for v in values[:10]) + (" ..." if len(values) > 10 else "")
            hint = ("use task: multiclass_classification for more than two classes" if 2 < len(values) <= 50
                    else "map the target to two classes before loading, or choose another column")
            raise DataError(f"a binary task needs exactly two target values, found {len(values)}: {shown}",
                            file=path, column=t, hint=hint)
        pos = str(brief.target.positive_label)
        matches = [v for v in values if v == pos or (col.dtype != pl.String and v.lower() == pos.lower())]
        if not matches:
            raise BriefError(
                f"positive label {brief.target.positive_label!r} is not a value of target column '{t}' in {path}",
                file=brief.source, key="target.positive_label",
                expected="one of " + ", ".join(repr(v) for v in values),
            )

    def encode_target(self, col: Any, *, brief: Any, classes: list[str] | None = None) -> np.ndarray:
        """1 where the target equals the brief's positive label, else 0 (int8; nulls are 0: drop them first)."""
        import polars as pl

        pos = str(brief.target.positive_label)
        expr = col == pos if col.dtype == pl.String else col.cast(pl.String).str.to_lowercase() == pos.lower()
        return expr.fill_null(False).cast(pl.Int8).to_numpy()

    def scores(self, model: Any, X: Any) -> np.ndarray:
        proba = np.asarray(model.predict_proba(X))
        return proba[:, list(model.classes_).index(1)] if 1 in list(model.classes_) else proba[:, -1]

    def serving_fields(self, *, contract: dict, threshold: float | None, classes: list[str] | None,
                       target_std: float | None) -> dict:
        target = next(c for c in contract["columns"] if c["name"] == contract["target"])
        labels = target.get("categories") or []
        pos = contract["positive_label"]
        neg = next((v for v in labels if v != pos), f"not {pos}")
        return {"threshold": float(0.5 if threshold is None else threshold), "positive_label": pos,
                "negative_label": neg}

    def threshold(self, brief: Any) -> float:
        t = brief.target.decision_threshold
        return 0.5 if t is None else float(t)

    # ------------------------------------------------------------------ evaluation hooks
    def cross_validate(self, make_model: Any, X: Any, y: np.ndarray, *, n_splits: int, seed: int,
                       threshold: float | None = None) -> Any:
        from ..evaluation.metrics import cross_validate_scores

        return cross_validate_scores(make_model, X, y, n_splits=n_splits, seed=seed,
                                     threshold=0.5 if threshold is None else threshold)

    def evaluate(self, y: np.ndarray, scores: np.ndarray, *, primary: str, threshold: float | None = None,
                 classes: list[str] | None = None) -> Any:
        from ..evaluation.metrics import evaluate_binary

        return evaluate_binary(y, scores, threshold=0.5 if threshold is None else threshold, primary=primary)

    def fairness(self, y: np.ndarray, scores: np.ndarray, sensitive: Any, *, brief: Any, n_bootstrap: int,
                 seed: int, classes: list[str] | None = None, acknowledge: list | None = None) -> Any:
        """The fairness report; ``acknowledge`` defaults to the brief's ``fairness.acknowledge``."""
        from ..evaluation.fairness import fairness_report

        f = brief.fairness
        report = fairness_report(y, scores, sensitive, threshold=brief.threshold, thresholds=dict(f.thresholds),
                               min_slice_size=f.min_slice_size, confidence_level=f.confidence_level,
                               n_bootstrap=n_bootstrap, seed=seed,
                               acknowledge=f.acknowledge if acknowledge is None else acknowledge)
        return without_intersection(report, brief)

    def plot_evaluation(self, report: Any) -> Any:
        from ..experiments import plot_curves

        return plot_curves(report)

    def compare(self, candidate: dict, baseline: dict, *, primary: str, min_improvement: float = 0.0) -> dict:
        from ..evaluation.metrics import compare_to_baseline

        return compare_to_baseline(candidate, baseline, primary=primary, min_improvement=min_improvement)
