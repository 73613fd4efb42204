"""Evaluation (Prototype phase): how good a model is, and how fair, for each task.

* :mod:`~workbench.evaluation.metrics` -- the metric registry, the choice of the primary metric, held-out
  evaluation (:class:`EvaluationReport`), seeded stratified cross-validation (:class:`CVReport`) and the
  comparison with a baseline;
* :mod:`~workbench.evaluation.fairness` -- Fairlearn ``MetricFrame`` slices by sensitive feature and their
  intersection, gaps with bootstrap intervals and verdicts against the brief (:class:`FairnessReport`);
* :mod:`~workbench.evaluation.regression` -- regressors: metric registry, :class:`RegressionReport`,
  :class:`RegressionFairnessReport` (MAE and signed mean residual per group);
* :mod:`~workbench.evaluation.multiclass` -- multiclass classifiers: metric registry, :class:`MulticlassReport`,
  :class:`MulticlassFairnessReport` (accuracy, per-class recall and selection rate per group);
* :func:`cross_validate_task` -- seeded k-fold for any task (the caller says how to score and stratify);
* :mod:`~workbench.evaluation.explain` -- SHAP explanations summed back to the original columns, with the
  additivity check and per-group drivers (:class:`ShapReport`), for the three tasks.

Every result is a report object (``to_dict()``, ``save()``, ``_repr_html_()``) that a run folder keeps and the
promotion gates read. This package does not import :mod:`workbench.export` or :mod:`workbench.monitoring`.
"""

from ._crossval import cross_validate_task
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
from .multiclass import (
    MULTICLASS_GAP_METRICS,
    MULTICLASS_GREATER_IS_BETTER,
    MULTICLASS_METRICS,
    MulticlassFairnessReport,
    MulticlassReport,
    evaluate_multiclass,
    multiclass_fairness_report,
)
from .regression import (
    REGRESSION_GAP_METRICS,
    REGRESSION_GREATER_IS_BETTER,
    REGRESSION_METRICS,
    RegressionFairnessReport,
    RegressionReport,
    TaskFairnessReport,
    evaluate_regression,
    regression_fairness_report,
    regression_strata,
)

__all__ = [
    "GAP_METRICS",
    "GREATER_IS_BETTER",
    "GROUP_METRICS",
    "METRICS",
    "MULTICLASS_GAP_METRICS",
    "MULTICLASS_GREATER_IS_BETTER",
    "MULTICLASS_METRICS",
    "REGRESSION_GAP_METRICS",
    "REGRESSION_GREATER_IS_BETTER",
    "REGRESSION_METRICS",
    "CVReport",
    "EvaluationReport",
    "FairnessReport",
    "MulticlassFairnessReport",
    "MulticlassReport",
    "RegressionFairnessReport",
    "RegressionReport",
    "ShapReport",
    "TaskFairnessReport",
    "choose_metrics",
    "compare_to_baseline",
    "cross_validate_scores",
    "cross_validate_task",
    "evaluate_binary",
    "evaluate_multiclass",
    "evaluate_regression",
    "explain",
    "fairness_report",
    "multiclass_fairness_report",
    "predict_labels",
    "regression_fairness_report",
    "regression_strata",
]
