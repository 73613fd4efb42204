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
promotion gates read; the held-out and fairness reports also read back from their saved JSON (``from_dict()``;
:func:`evaluation_report_from_dict` / :func:`fairness_report_from_dict` pick the task's class), and the fairness
report draws the stakeholder app's interactive chart (``chart()``). This package does not import
:mod:`workbench.export` or :mod:`workbench.monitoring`.

Names are resolved on first use (PEP 562): ``from workbench.evaluation import X`` imports only the module that
defines ``X``. The report objects, their metric directions and gap names, and the readers of saved reports live in
modules that import numpy and nothing heavier (:mod:`._heldout`, :mod:`._fairness_report`, :mod:`._cv_report`,
:mod:`._saved`), so reading a run's reports back never imports scikit-learn, SciPy, Fairlearn or SHAP; computing
them (:func:`evaluate_binary`, :func:`fairness_report`, ...) imports what it needs.
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import Any

#: The module that defines each public name (the compute modules re-export the report classes and tables under
#: their historical paths: ``workbench.evaluation.metrics.EvaluationReport`` is the same class).
_DEFINED_IN: dict[str, str] = {
    # held-out reports, their metric directions, and the cross-validation report: sklearn-free
    "EvaluationReport": "_heldout", "MulticlassReport": "_heldout", "RegressionReport": "_heldout",
    "GREATER_IS_BETTER": "_heldout", "MULTICLASS_GREATER_IS_BETTER": "_heldout",
    "REGRESSION_GREATER_IS_BETTER": "_heldout",
    "CVReport": "_cv_report",
    # fairness reports and their gap and figure names: sklearn-free
    "FairnessReport": "_fairness_report", "TaskFairnessReport": "_fairness_report",
    "MulticlassFairnessReport": "_fairness_report", "RegressionFairnessReport": "_fairness_report",
    "GAP_METRICS": "_fairness_report", "GROUP_METRICS": "_fairness_report",
    "MULTICLASS_GAP_METRICS": "_fairness_report", "REGRESSION_GAP_METRICS": "_fairness_report",
    # saved reports read back as their objects: sklearn-free
    "EVALUATION_REPORTS": "_saved", "FAIRNESS_REPORTS": "_saved",
    "evaluation_report_from_dict": "_saved", "fairness_report_from_dict": "_saved",
    # computing: scikit-learn, Fairlearn, SciPy, SHAP
    "METRICS": "metrics", "choose_metrics": "metrics", "compare_to_baseline": "metrics",
    "cross_validate_scores": "metrics", "evaluate_binary": "metrics", "predict_labels": "metrics",
    "cross_validate_task": "_crossval",
    "fairness_report": "fairness",
    "MULTICLASS_METRICS": "multiclass", "evaluate_multiclass": "multiclass",
    "multiclass_fairness_report": "multiclass",
    "REGRESSION_METRICS": "regression", "evaluate_regression": "regression",
    "regression_fairness_report": "regression", "regression_strata": "regression",
    "ShapReport": "explain", "explain": "explain", "SavedShap": "_shap_saved",
}
#: Submodules reachable as attributes of the package without importing them first (``workbench.evaluation.metrics``).
_SUBMODULES = ("fairness", "leakage", "metrics", "multiclass", "regression")


def __getattr__(name: str) -> Any:
    if name in _DEFINED_IN:
        value = getattr(importlib.import_module(f"{__name__}.{_DEFINED_IN[name]}"), name)
    elif name in _SUBMODULES:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # resolved once
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, *_SUBMODULES})


class _Package(types.ModuleType):
    """The package module: ``explain`` is both a submodule and the function it defines, and the import system
    binds a submodule on its package once it is loaded; the public name keeps the function, as it did when the
    package imported everything up front (``from workbench.evaluation.explain import ...`` is unaffected)."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and name in _DEFINED_IN and value.__name__ == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package

__all__ = [
    "EVALUATION_REPORTS",
    "FAIRNESS_REPORTS",
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
    "SavedShap",
    "ShapReport",
    "TaskFairnessReport",
    "choose_metrics",
    "compare_to_baseline",
    "cross_validate_scores",
    "cross_validate_task",
    "evaluate_binary",
    "evaluate_multiclass",
    "evaluate_regression",
    "evaluation_report_from_dict",
    "explain",
    "fairness_report_from_dict",
    "fairness_report",
    "multiclass_fairness_report",
    "predict_labels",
    "regression_fairness_report",
    "regression_strata",
]
