"""The task protocol: everything that differs between binary classification, multiclass classification and
regression, asked of one object instead of re-derived in every module.

A :class:`Task` is a frozen description plus a few pure methods. It owns:

* the **target**: validation (:meth:`Task.check_target`), encoding (:meth:`Task.encode_target`), the classes;
* the **split**: the labels a stratified split or CV stratifies on (:meth:`Task.stratify_labels`: the classes,
  or quantile bins of a numeric target);
* the **metric catalogue**, which metrics are losses, and the default primary metric;
* the **fairness gap metrics** a brief may gate on;
* the **models**: baseline and candidate names (built in :mod:`workbench.modeling`);
* the **scores** a model gives (:meth:`Task.scores`: P(positive), a probability matrix, or predictions);
* the **ONNX outputs** and the serving answer's fields.

Evaluation, fairness, explanation, parity and serving call the task's hooks; the task itself imports nothing
heavy at module import time (scikit-learn only inside methods), so the serving path may import it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np

__all__ = ["TaskName", "Task", "TASK_NAMES"]

TaskName = Literal["binary_classification", "multiclass_classification", "regression"]
TASK_NAMES: tuple[str, ...] = ("binary_classification", "multiclass_classification", "regression")


@dataclass(frozen=True)
class Task:
    """What a task is. Subclasses fill the class-level facts and implement the target methods."""

    name: ClassVar[str]
    short: ClassVar[str]
    is_classifier: ClassVar[bool]
    #: metric name -> greater is better
    metrics: ClassVar[dict[str, bool]]
    default_primary: ClassVar[str]
    gap_metrics: ClassVar[tuple[str, ...]]
    default_gap_thresholds: ClassVar[dict[str, float]]
    baselines: ClassVar[tuple[str, ...]]
    candidates: ClassVar[tuple[str, ...]]
    #: candidate families the hyper-parameter search tunes when ``brief.search.families`` is empty
    search_families: ClassVar[tuple[str, ...]] = ()
    onnx_outputs: ClassVar[tuple[str, ...]]
    #: fields of one served prediction (besides ``flags``)
    answer_fields: ClassVar[tuple[str, ...]]
    #: statistic that compares live predictions with the reference (drift)
    prediction_drift: ClassVar[str]
    #: what the brief's target section may hold besides ``column``
    target_keys: ClassVar[tuple[str, ...]] = ()
    extra: dict = field(default_factory=dict)

    # ------------------------------------------------------------------ metrics
    def greater_is_better(self, metric: str) -> bool:
        return self.metrics[metric]

    def better(self, a: float, b: float, metric: str) -> bool:
        """Whether ``a`` is strictly better than ``b`` on ``metric``."""
        return a > b if self.metrics[metric] else a < b

    def choose_metrics(self, y_train: np.ndarray, *, override: str | None = None) -> tuple[str, list[str]]:
        """Primary and secondary metrics for this target (the brief's ``success.metric`` wins)."""
        primary = override or self.default_primary
        secondary = [m for m in self.metrics if m != primary]
        return primary, secondary

    # ------------------------------------------------------------------ target
    def check_target(self, col: Any, *, brief: Any, path: str | Path | None = None) -> None:  # pragma: no cover
        raise NotImplementedError

    def classes(self, col: Any, *, brief: Any) -> list[str] | None:
        """The target's classes in code order (None for regression and binary's implicit 0/1)."""
        return None

    def encode_target(self, col: Any, *, brief: Any, classes: list[str] | None = None) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover

    def stratify_labels(self, y: np.ndarray, *, n_bins: int = 10) -> np.ndarray:
        """Labels to stratify a split or the CV folds on: the encoded target itself for classification."""
        return np.asarray(y)

    # ------------------------------------------------------------------ models
    def scores(self, model: Any, X: Any) -> np.ndarray:
        """The task's scores of a fitted scikit-learn model on a model frame (see the module docstring)."""
        raise NotImplementedError  # pragma: no cover

    def describe(self) -> str:
        return self.name.replace("_", " ")

    # ------------------------------------------------------------------ evaluation hooks
    def cross_validate(self, make_model: Any, X: Any, y: np.ndarray, *, n_splits: int, seed: int,
                       threshold: float | None = None) -> Any:
        """Seeded, stratified k-fold CV of a model factory on the training split: a ``CVReport``."""
        raise NotImplementedError  # pragma: no cover

    def evaluate(self, y: np.ndarray, scores: np.ndarray, *, primary: str, threshold: float | None = None,
                 classes: list[str] | None = None) -> Any:
        """The held-out evaluation report of these scores."""
        raise NotImplementedError  # pragma: no cover

    def fairness(self, y: np.ndarray, scores: np.ndarray, sensitive: Any, *, brief: Any, n_bootstrap: int,
                 seed: int, classes: list[str] | None = None, acknowledge: list | None = None) -> Any:
        """The fairness report: per-group figures and gated gaps with bootstrap intervals (``acknowledge``:
        groups accepted without evidence, default the brief's ``fairness.acknowledge``)."""
        raise NotImplementedError  # pragma: no cover

    def plot_evaluation(self, report: Any) -> Any:
        """The figure a notebook shows under the held-out evaluation."""
        raise NotImplementedError  # pragma: no cover

    def compare(self, candidate: dict, baseline: dict, *, primary: str, min_improvement: float = 0.0) -> dict:
        return compare_metrics(self, candidate, baseline, primary=primary, min_improvement=min_improvement)

    # ------------------------------------------------------------------ serving
    def serving_fields(self, *, contract: dict, threshold: float | None, classes: list[str] | None,
                       target_std: float | None) -> dict:
        """The task's keys of a model package's ``serving.json`` (how the service turns scores into answers)."""
        return {}


def without_intersection(report: Any, brief: Any) -> Any:
    """The fairness report without the intersection of the sensitive features when the brief says
    ``fairness.intersections: false`` (each feature's figures come from its own resamples, so dropping the
    intersection changes nothing else)."""
    if getattr(brief.fairness, "intersections", True) or len(report.features) < 2:
        return report
    single = set(brief.sensitive_features)
    report.features = [f for f in report.features if f in single]
    report.groups = {f: rows for f, rows in report.groups.items() if f in single}
    report.gaps = [g for g in report.gaps if g["feature"] in single]
    report.notes = [*report.notes, "The intersection of the sensitive features is not sliced "
                                   "(the brief's fairness.intersections is false)."]
    return report


def compare_metrics(task: Task, candidate: dict, baseline: dict, *, primary: str,
                    min_improvement: float = 0.0) -> dict:
    """Candidate minus baseline for every metric of ``task`` both have, signed so that positive means better
    (the task-generic form of :func:`workbench.evaluation.metrics.compare_to_baseline`)."""
    import math

    common = [m for m in task.metrics if m in candidate and m in baseline]
    deltas = {m: (1.0 if task.metrics[m] else -1.0) * (float(candidate[m]) - float(baseline[m])) for m in common}
    delta = deltas.get(primary, math.nan)
    return {"primary": primary, "primary_delta": delta, "min_improvement": float(min_improvement),
            "beats_baseline": bool(delta > min_improvement), "deltas": deltas,
            "missing": sorted(set(candidate) ^ set(baseline)),
            "candidate": {m: float(candidate[m]) for m in common},
            "baseline": {m: float(baseline[m]) for m in common}}
