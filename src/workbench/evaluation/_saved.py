"""Saved evaluation and fairness reports read back as their objects, whatever the task (private; public through
:mod:`workbench.evaluation`).

Like the report classes, this module imports numpy and nothing heavier: a run's reports read back without
scikit-learn, SciPy or Fairlearn.

A report's JSON says its task: the multiclass and regression reports write ``task``, the binary ones (whose shape
predates round 2) write none, so a missing ``task`` means binary. A report object passed in is returned as it is,
so a caller can take either a saved dict or the object.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .._names import suggest
from ..errors import EvaluationError
from ._fairness_report import FairnessReport, MulticlassFairnessReport, RegressionFairnessReport
from ._heldout import EvaluationReport, HeldOutReport, MulticlassReport, RegressionReport

__all__ = ["EVALUATION_REPORTS", "FAIRNESS_REPORTS", "evaluation_report_from_dict", "fairness_report_from_dict"]

BINARY = "binary_classification"

#: The held-out evaluation report class of each task.
EVALUATION_REPORTS: dict[str, type[HeldOutReport]] = {
    BINARY: EvaluationReport, "multiclass_classification": MulticlassReport, "regression": RegressionReport}
#: The fairness report class of each task.
FAIRNESS_REPORTS: dict[str, type[FairnessReport]] = {
    BINARY: FairnessReport, "multiclass_classification": MulticlassFairnessReport,
    "regression": RegressionFairnessReport}


def _class_for(table: Mapping[str, type], d: Any, task: str | None, what: str) -> type:
    if not isinstance(d, Mapping):
        raise EvaluationError(f"expected the dict a saved {what} holds, got {type(d).__name__}", argument=what,
                              hint="pass the report's to_dict() output or its JSON file's content")
    name = str(d.get("task") or task or BINARY)
    if name not in table:
        raise EvaluationError(f"unknown task {name!r}{suggest(name, list(table))}", argument=f"{what}.task",
                              hint=f"use one of: {', '.join(table)}")
    return table[name]


def evaluation_report_from_dict(d: Mapping[str, Any] | HeldOutReport, *, task: str | None = None) -> HeldOutReport:
    """The held-out evaluation report of ``d`` (a saved ``reports/evaluation.json``, or a leaderboard model's
    ``test``): :class:`EvaluationReport`, :class:`MulticlassReport` or :class:`RegressionReport` by the task the
    dict records (else ``task``, else binary). A report object is returned unchanged."""
    if isinstance(d, HeldOutReport):
        return d
    return _class_for(EVALUATION_REPORTS, d, task, "evaluation report").from_dict(d)


def fairness_report_from_dict(d: Mapping[str, Any] | FairnessReport, *, task: str | None = None) -> FairnessReport:
    """The fairness report of ``d`` (a saved ``reports/fairness.json`` or a package's ``fairness.json``):
    :class:`FairnessReport`, :class:`MulticlassFairnessReport` or :class:`RegressionFairnessReport` by the task
    the dict records (else ``task``, else binary). A report object is returned unchanged."""
    if isinstance(d, FairnessReport):
        return d
    return _class_for(FAIRNESS_REPORTS, d, task, "fairness report").from_dict(d)
