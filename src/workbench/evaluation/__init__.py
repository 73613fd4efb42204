"""Evaluation (Prototype phase): how good a binary classifier is, and how fair.

* :mod:`~workbench.evaluation.metrics` -- the metric registry, the choice of the primary metric, held-out
  evaluation (:class:`EvaluationReport`), seeded stratified cross-validation (:class:`CVReport`) and the
  comparison with a baseline;
* :mod:`~workbench.evaluation.fairness` -- Fairlearn ``MetricFrame`` slices by sensitive feature and their
  intersection, gaps with bootstrap intervals and verdicts against the brief (:class:`FairnessReport`);
* :mod:`~workbench.evaluation.explain` -- SHAP explanations summed back to the original columns, with the
  additivity check and per-group drivers (:class:`ShapReport`).

Every result is a report object (``to_dict()``, ``save()``, ``_repr_html_()``) that a run folder keeps and the
promotion gates read. This package does not import :mod:`workbench.export` or :mod:`workbench.monitoring`.
"""

from .explain import ShapReport, explain
from .fairness import (
    GAP_METRICS,
    GROUP_METRICS,
    FairnessReport,
    fairness_report,
)
from .metrics import (
    GREATER_IS_BETTER,
    METRICS,
    CVReport,
    EvaluationReport,
    choose_metrics,
    compare_to_baseline,
    cross_validate_scores,
    evaluate_binary,
    predict_labels,
)

__all__ = [
    "GAP_METRICS",
    "GREATER_IS_BETTER",
    "GROUP_METRICS",
    "METRICS",
    "CVReport",
    "EvaluationReport",
    "FairnessReport",
    "ShapReport",
    "choose_metrics",
    "compare_to_baseline",
    "cross_validate_scores",
    "evaluate_binary",
    "explain",
    "fairness_report",
    "predict_labels",
]
