"""Regression: a numeric target, scored by the predicted value (in the target's units)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from .base import Task, without_intersection

__all__ = ["RegressionTask"]


@dataclass(frozen=True)
class RegressionTask(Task):
    name: ClassVar[str] = "regression"
    short: ClassVar[str] = "regression"
    is_classifier: ClassVar[bool] = False
    metrics: ClassVar[dict[str, bool]] = {"mae": False, "rmse": False, "r2": True, "median_ae": False,
                                           "mape": False}
    default_primary: ClassVar[str] = "mae"
    gap_metrics: ClassVar[tuple[str, ...]] = ("mae_difference", "mae_relative_difference",
                                              "mean_residual_difference")
    default_gap_thresholds: ClassVar[dict[str, float]] = {"mae_relative_difference": 0.5}
    baselines: ClassVar[tuple[str, ...]] = ("median", "mean", "rule")
    candidates: ClassVar[tuple[str, ...]] = ("ridge", "hgb", "lgbm", "xgb")
    search_families: ClassVar[tuple[str, ...]] = ("lgbm", "xgb")
    onnx_outputs: ClassVar[tuple[str, ...]] = ("prediction",)
    answer_fields: ClassVar[tuple[str, ...]] = ("prediction",)
    prediction_drift: ClassVar[str] = "PSI and KS on the predicted values"
    target_keys: ClassVar[tuple[str, ...]] = ()

    def choose_metrics(self, y_train: np.ndarray, *, override: str | None = None) -> tuple[str, list[str]]:
        primary = override or self.default_primary
        positive = bool(len(y_train)) and bool(np.all(np.asarray(y_train) > 0))
        secondary = [m for m in self.metrics if m != primary and (m != "mape" or positive)]
        return primary, secondary

    def check_target(self, col: Any, *, brief: Any, path: str | Path | None = None) -> None:
        import polars as pl

        from ..errors import DataError

        t = brief.target.column
        if not col.dtype.is_numeric() or col.dtype == pl.Boolean:
            present = col.drop_nulls().cast(pl.String)
            bad = present.filter(present.cast(pl.Float64, strict=False).is_null())
            sample = (bad if bad.len() else present).unique().sort().head(5).to_list()
            raise DataError(f"a regression target must be numeric, found text values such as "
                            f"{', '.join(repr(v) for v in sample)}", file=path, column=t,
                            hint="clean the column so it holds numbers only, or use a classification task")
        values = col.drop_nulls().cast(pl.Float64)
        values = values.filter(values.is_finite())
        if values.len() < 10:
            raise DataError(f"the target has {values.len()} finite values; regression needs more", file=path,
                            column=t, hint="check the file or choose another target column")
        if values.n_unique() < 2:
            raise DataError("the target is constant: there is nothing to predict", file=path, column=t,
                            hint="choose another target column")

    def encode_target(self, col: Any, *, brief: Any, classes: list[str] | None = None) -> np.ndarray:
        import polars as pl

        return col.cast(pl.Float64).fill_nan(None).to_numpy().astype(np.float64)

    def stratify_labels(self, y: np.ndarray, *, n_bins: int = 10) -> np.ndarray:
        """Quantile bins of the target (up to ``n_bins``; fewer when the target has few distinct values or
        a bin would hold fewer than two rows), so every fold sees the whole range."""
        y = np.asarray(y, dtype=np.float64)
        bins = max(1, min(n_bins, len(y) // 4 or 1))
        edges = np.unique(np.quantile(y, np.linspace(0, 1, bins + 1)[1:-1])) if bins > 1 else np.array([])
        return np.searchsorted(edges, y, side="right").astype(np.int64)

    def scores(self, model: Any, X: Any) -> np.ndarray:
        return np.asarray(model.predict(X), dtype=np.float64).reshape(-1)

    def serving_fields(self, *, contract: dict, threshold: float | None, classes: list[str] | None,
                       target_std: float | None) -> dict:
        return {"target_std": None if target_std is None else float(target_std)}

    # ------------------------------------------------------------------ evaluation hooks
    def cross_validate(self, make_model: Any, X: Any, y: np.ndarray, *, n_splits: int, seed: int,
                       threshold: float | None = None) -> Any:
        from ..evaluation._crossval import cross_validate_task
        from ..evaluation.regression import REGRESSION_METRICS, regression_strata

        metrics = {m: f for m, f in REGRESSION_METRICS.items() if m != "mape" or bool(np.all(y > 0))}

        def score(model: Any, Xf: Any) -> np.ndarray:
            return np.asarray(model.predict(Xf), dtype=np.float64).reshape(-1)

        return cross_validate_task(make_model, X, y, score=score, metrics=metrics,
                                   greater_is_better=self.metrics, n_splits=n_splits, seed=seed,
                                   stratify=regression_strata(y, n_splits=n_splits))

    def evaluate(self, y: np.ndarray, scores: np.ndarray, *, primary: str, threshold: float | None = None,
                 classes: list[str] | None = None) -> Any:
        from ..evaluation.regression import evaluate_regression

        return evaluate_regression(y, scores, primary=primary)

    def fairness(self, y: np.ndarray, scores: np.ndarray, sensitive: Any, *, brief: Any, n_bootstrap: int,
                 seed: int, classes: list[str] | None = None, acknowledge: list | None = None) -> Any:
        """The fairness report; ``acknowledge`` defaults to the brief's ``fairness.acknowledge``."""
        from ..evaluation.regression import regression_fairness_report

        f = brief.fairness
        report = regression_fairness_report(y, scores, sensitive, thresholds=dict(f.thresholds),
                                          min_slice_size=f.min_slice_size, confidence_level=f.confidence_level,
                                          n_bootstrap=n_bootstrap, seed=seed,
                                          acknowledge=f.acknowledge if acknowledge is None else acknowledge)
        return without_intersection(report, brief)

    def plot_evaluation(self, report: Any) -> Any:
        from matplotlib.figure import Figure

        fig = Figure(figsize=(10, 4))
        ax1, ax2 = fig.subplots(1, 2)
        report.plot_predicted_vs_actual(ax=ax1)
        report.plot_residuals(ax=ax2)
        fig.tight_layout()
        return fig
