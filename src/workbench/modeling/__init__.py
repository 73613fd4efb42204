"""Prototype modeling: the model frame, candidate pipelines, baselines and fitting.

* :func:`to_model_frame` -- polars data to the pandas frame every model takes (the one conversion point);
* :data:`CANDIDATES` / :func:`make_candidate` -- ONNX-convertible pipelines built from the data contract;
* :data:`BASELINES` / :func:`make_baseline` -- the majority-prior and one-feature-rule baselines;
* :func:`fit_model` -- fit any of them by name into a :class:`FittedModel`.
"""

from .baselines import (
    BASELINES,
    TASK_BASELINES,
    BaselineSpec,
    OneFeatureClassRule,
    OneFeatureRegressionRule,
    OneFeatureRule,
    baselines_for,
    describe_baseline,
    make_baseline,
)
from .candidates import CANDIDATES, SEARCH_FAMILIES, TASK_CANDIDATES, CandidateSpec, candidates_for, make_candidate
from .frame import IMPUTED_CATEGORY, MISSING_CATEGORY, ColumnRoles, column_roles, to_model_frame
from .train import MODEL_NAMES, FittedModel, fit_model

__all__ = [
    "BASELINES",
    "CANDIDATES",
    "TASK_BASELINES",
    "TASK_CANDIDATES",
    "SEARCH_FAMILIES",
    "OneFeatureClassRule",
    "OneFeatureRegressionRule",
    "baselines_for",
    "candidates_for",
    "IMPUTED_CATEGORY",
    "MISSING_CATEGORY",
    "MODEL_NAMES",
    "BaselineSpec",
    "CandidateSpec",
    "ColumnRoles",
    "FittedModel",
    "OneFeatureRule",
    "column_roles",
    "describe_baseline",
    "fit_model",
    "make_baseline",
    "make_candidate",
    "to_model_frame",
]
