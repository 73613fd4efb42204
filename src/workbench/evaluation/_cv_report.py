"""The cross-validation report (private; public through :mod:`workbench.evaluation` and
:mod:`~workbench.evaluation.metrics`): per-fold metric values and fit times, read back from its saved JSON
without scikit-learn (the folds are made and scored in :mod:`._crossval`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._report import Report, html_table
from ._checks import check_choice


@dataclass
class CVReport(Report):
    """Per-fold metric values and fit times of a k-fold; ``mean`` and ``std`` (ddof=1) per metric.

    ``folds`` holds one dict per fold: ``fold``, ``n_train``, ``n_test``, ``fit_seconds`` and each metric.
    ``threshold`` is the binary decision threshold (None for the other tasks). ``greater_is_better`` is set by
    :func:`~workbench.evaluation.cross_validate_task` (any metric names), with ``stratified`` saying whether folds
    were stratified; the binary :func:`~workbench.evaluation.cross_validate_scores` leaves it None and its output
    is unchanged.
    """

    n_splits: int
    seed: int
    threshold: float | None
    metrics: list[str]
    folds: list[dict[str, Any]]
    title: str = "Cross-validation"
    greater_is_better: dict[str, bool] | None = None
    stratified: bool = True

    def scores(self, metric: str) -> np.ndarray:
        """The per-fold values of one metric."""
        check_choice(metric, self.metrics, argument="metric")
        return np.array([np.nan if f[metric] is None else f[metric] for f in self.folds], dtype=float)

    @property
    def mean(self) -> dict[str, float]:
        return {m: float(np.mean(self.scores(m))) for m in self.metrics}

    @property
    def std(self) -> dict[str, float]:
        return {m: float(np.std(self.scores(m), ddof=1)) for m in self.metrics}

    @property
    def fit_seconds(self) -> list[float]:
        return [f["fit_seconds"] for f in self.folds]

    def to_dict(self) -> dict:
        fit = self.fit_seconds
        out = {"n_splits": self.n_splits, "seed": self.seed, "threshold": self.threshold,
               "metrics": self.metrics, "folds": self.folds, "mean": self.mean, "std": self.std,
               "fit_seconds": {"mean": float(np.mean(fit)), "total": float(np.sum(fit))}}
        if self.greater_is_better is not None:
            out.update(greater_is_better=self.greater_is_better, stratified=self.stratified)
        return out

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CVReport:
        """Rebuild a report from :meth:`to_dict` output (e.g. a saved JSON file)."""
        return cls(n_splits=int(d["n_splits"]), seed=d["seed"], threshold=d.get("threshold"),
                   metrics=list(d["metrics"]), folds=[dict(f) for f in d["folds"]],
                   greater_is_better=d.get("greater_is_better"), stratified=d.get("stratified", True))

    def summary(self) -> dict:
        mean, std = self.mean, self.std
        return {"cv": {m: {"mean": mean[m], "std": std[m]} for m in self.metrics},
                "fit_seconds_mean": float(np.mean(self.fit_seconds))}

    def _html_body(self) -> str:
        mean, std = self.mean, self.std
        rows = [{"metric": m, "mean ± std": f"{mean[m]:.4f} ± {std[m]:.4f}",
                 **{f"fold {f['fold']}": f[m] for f in self.folds}} for m in self.metrics]
        rows.append({"metric": "fit seconds", "mean ± std": f"{np.mean(self.fit_seconds):.3f}",
                     **{f"fold {f['fold']}": f["fit_seconds"] for f in self.folds}})
        kind = "stratified" if self.stratified else "plain (unstratified)"
        threshold = f", threshold {self.threshold:g}" if self.threshold is not None else ""
        return (f"<p>{self.n_splits}-fold {kind} cross-validation (shuffled, seed {self.seed})"
                f"{threshold}</p>" + html_table(rows))
