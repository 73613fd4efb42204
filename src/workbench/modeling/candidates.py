"""Candidate models: scikit-learn pipelines built from the data contract, each one ONNX-convertible.

Every candidate is ``Pipeline([("prep", ColumnTransformer), ("model", classifier)])`` with explicit column
lists (``make_column_selector`` does not take polars frames and hides which columns a model uses). Missing
values are decided inside the pipeline (median for numerics, the category ``"__missing__"`` for categoricals)
so scikit-learn and the exported ONNX graph treat them the same way.

``hgb`` ordinal-encodes categoricals and does *not* use HistGradientBoosting's native categorical support:
that variant converts to ONNX silently wrong (about 84% label agreement on Adult).

``lgbm`` and ``xgb`` are LightGBM's and XGBoost's scikit-learn estimators (see :mod:`._gbm`) behind the same
ordinal-encoding preprocessor, deterministic (``n_jobs=1``, the run's seed). Their native categorical handling
is not used: onnxmltools does not convert LightGBM's, and only a parity certificate on real data could prove
XGBoost's. Measured parity on the bundled data (test split + edge cases, onnxmltools 1.16, skl2onnx 1.20,
ai.onnx.ml opset 3): LightGBM 4.7 max |dp| 3e-7 (Adult), 9e-8 (penguins), |dy| 1.5e-4 (wage, y std 0.42);
XGBoost 3.2 max |dp| 5e-7 (Adult), 2e-7 (penguins), |dy| 1.4e-4 (wage); 100% label agreement. XGBoost's
earlier failure (max |dp| 1.8e-2 binary, 3-class label flips) came from a StandardScaler in front of it:
XGBoost casts its inputs to float32 and puts split thresholds on data values, so the scaler's float64 (pipeline)
vs float32 (graph) arithmetic moves rows across splits; without a scaler (the ordinal pipeline only imputes
and encodes) the float32 inputs are the same on both sides and the graph matches to 5e-7.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from ..errors import ModelError
from .frame import IMPUTED_CATEGORY, MISSING_CATEGORY, ColumnRoles, column_roles

__all__ = ["CandidateSpec", "CANDIDATES", "TASK_CANDIDATES", "SEARCH_FAMILIES", "candidates_for", "make_candidate", "apply_params",
           "unknown_model_error"]


@dataclass(frozen=True)
class CandidateSpec:
    """A registered candidate: how to build it and what later phases may do with it.

    ``onnx_convertible`` lets promotion refuse a model it cannot export; ``explainer`` names the SHAP
    explainer :func:`workbench.evaluation.explain.explain` uses for it.
    """

    name: str
    description: str
    build: Callable[[ColumnRoles, int], Pipeline]
    onnx_convertible: bool
    explainer: Literal["tree", "linear"]


def _categorical_imputer() -> SimpleImputer:
    return SimpleImputer(missing_values=MISSING_CATEGORY, strategy="constant", fill_value=IMPUTED_CATEGORY)


def _preprocessor(roles: ColumnRoles, *, encoding: Literal["onehot", "ordinal"]) -> ColumnTransformer:
    numeric_steps: list[tuple[str, Any]] = [("impute", SimpleImputer(strategy="median"))]
    if encoding == "onehot":
        numeric_steps.append(("scale", StandardScaler()))
        encoder: Any = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    else:
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    transformers = []
    if roles.numeric:
        transformers.append(("num", Pipeline(numeric_steps), list(roles.numeric)))
    if roles.categorical:
        transformers.append(("cat", Pipeline([("impute", _categorical_imputer()), ("encode", encoder)]),
                             list(roles.categorical)))
    return ColumnTransformer(transformers, remainder="drop", sparse_threshold=0.0)


def _logreg(roles: ColumnRoles, seed: int) -> Pipeline:
    return Pipeline([("prep", _preprocessor(roles, encoding="onehot")),
                     ("model", LogisticRegression(max_iter=1000, random_state=seed))])


def _hgb(roles: ColumnRoles, seed: int) -> Pipeline:
    model = HistGradientBoostingClassifier(categorical_features=None, random_state=seed)
    return Pipeline([("prep", _preprocessor(roles, encoding="ordinal")), ("model", model)])


def _ridge(roles: ColumnRoles, seed: int) -> Pipeline:
    return Pipeline([("prep", _preprocessor(roles, encoding="onehot")), ("model", Ridge(alpha=1.0))])


def _hgb_regressor(roles: ColumnRoles, seed: int) -> Pipeline:
    model = HistGradientBoostingRegressor(categorical_features=None, random_state=seed)
    return Pipeline([("prep", _preprocessor(roles, encoding="ordinal")), ("model", model)])


def _gbm(library: str, *, classifier: bool, seed: int) -> Any:
    from . import _gbm as g  # imported on first use: lightgbm and xgboost take a while to import

    return (g.lgbm_estimator if library == "lgbm" else g.xgb_estimator)(classifier=classifier, seed=seed)


def _lgbm(roles: ColumnRoles, seed: int) -> Pipeline:
    return Pipeline([("prep", _preprocessor(roles, encoding="ordinal")),
                     ("model", _gbm("lgbm", classifier=True, seed=seed))])


def _lgbm_regressor(roles: ColumnRoles, seed: int) -> Pipeline:
    return Pipeline([("prep", _preprocessor(roles, encoding="ordinal")),
                     ("model", _gbm("lgbm", classifier=False, seed=seed))])


def _xgb(roles: ColumnRoles, seed: int) -> Pipeline:
    return Pipeline([("prep", _preprocessor(roles, encoding="ordinal")),
                     ("model", _gbm("xgb", classifier=True, seed=seed))])


def _xgb_regressor(roles: ColumnRoles, seed: int) -> Pipeline:
    return Pipeline([("prep", _preprocessor(roles, encoding="ordinal")),
                     ("model", _gbm("xgb", classifier=False, seed=seed))])


_LGBM_TEXT = "LightGBM gradient boosting (leaf-wise trees) on numerics and ordinal-encoded categoricals"
_XGB_TEXT = "XGBoost gradient boosting (depth-wise histogram trees) on numerics and ordinal-encoded categoricals"

CANDIDATES: dict[str, CandidateSpec] = {
    "logreg": CandidateSpec(
        "logreg", "logistic regression on scaled numerics and one-hot categoricals", _logreg,
        onnx_convertible=True, explainer="linear"),
    "hgb": CandidateSpec(
        "hgb", "histogram gradient boosting on numerics and ordinal-encoded categoricals", _hgb,
        onnx_convertible=True, explainer="tree"),
    "lgbm": CandidateSpec("lgbm", _LGBM_TEXT, _lgbm, onnx_convertible=True, explainer="tree"),
    "xgb": CandidateSpec("xgb", _XGB_TEXT, _xgb, onnx_convertible=True, explainer="tree"),
}
"""The binary task's candidates (every task's: :data:`TASK_CANDIDATES`)."""

TASK_CANDIDATES: dict[str, dict[str, CandidateSpec]] = {
    "binary_classification": CANDIDATES,
    "multiclass_classification": {
        "logreg": CandidateSpec(
            "logreg", "multinomial logistic regression on scaled numerics and one-hot categoricals", _logreg,
            onnx_convertible=True, explainer="linear"),
        "hgb": CandidateSpec(
            "hgb", "histogram gradient boosting (one tree per class and iteration) on numerics and "
                   "ordinal-encoded categoricals", _hgb, onnx_convertible=True, explainer="tree"),
        "lgbm": CandidateSpec("lgbm", _LGBM_TEXT + " (one tree per class and iteration)", _lgbm,
                              onnx_convertible=True, explainer="tree"),
        "xgb": CandidateSpec("xgb", _XGB_TEXT + " (one tree per class and iteration)", _xgb,
                             onnx_convertible=True, explainer="tree"),
    },
    "regression": {
        "ridge": CandidateSpec(
            "ridge", "ridge regression (L2-regularised linear model) on scaled numerics and one-hot categoricals",
            _ridge, onnx_convertible=True, explainer="linear"),
        "hgb": CandidateSpec(
            "hgb", "histogram gradient boosting regression on numerics and ordinal-encoded categoricals",
            _hgb_regressor, onnx_convertible=True, explainer="tree"),
        "lgbm": CandidateSpec("lgbm", _LGBM_TEXT + " (regression)", _lgbm_regressor, onnx_convertible=True,
                              explainer="tree"),
        "xgb": CandidateSpec("xgb", _XGB_TEXT + " (regression)", _xgb_regressor, onnx_convertible=True,
                             explainer="tree"),
    },
}

SEARCH_FAMILIES: dict[str, tuple[str, ...]] = {task: ("lgbm", "xgb") for task in TASK_CANDIDATES}
"""The families :mod:`workbench.modeling.search` tunes when ``brief.search.families`` is empty."""


def candidates_for(task: str) -> dict[str, CandidateSpec]:
    """The candidates of a task (``brief.task``)."""
    return TASK_CANDIDATES[getattr(task, "name", task)]


def unknown_model_error(name: str, valid: list[str]) -> ModelError:
    return ModelError(f"unknown model name; valid names: {', '.join(valid)}", model=name,
                      hint=f"choose one of: {', '.join(valid)}")


def apply_params(estimator: Any, params: Mapping[str, Any] | None, *, name: str) -> Any:
    """Set ``params`` on a built model. A key without ``__`` addresses the final step of a pipeline.

    Raises
    ------
    ModelError
        A parameter name the model does not have (the message lists the valid ones).
    """
    if not params:
        return estimator
    prefix = "model__" if isinstance(estimator, Pipeline) else ""
    full = {(k if "__" in k else prefix + k): v for k, v in params.items()}
    valid = estimator.get_params(deep=True)
    unknown = [k for k in full if k not in valid]
    if unknown:
        shown = sorted(k.removeprefix(prefix) for k in valid if "__" not in k.removeprefix(prefix))
        raise ModelError(f"unknown parameters {unknown}", model=name,
                         hint=f"valid parameters of the final estimator: {', '.join(shown)}")
    return estimator.set_params(**full)


def make_candidate(name: str, contract: Any, *, seed: int, params: Mapping[str, Any] | None = None,
                   task: str = "binary_classification") -> Pipeline:
    """Build an unfitted candidate pipeline.

    Parameters
    ----------
    name:
        A key of :data:`CANDIDATES` (``"logreg"``, ``"hgb"``).
    contract:
        The data contract (or :class:`ColumnRoles`, or a model frame): the numeric and categorical columns.
    seed:
        Seed of every random choice the model makes.
    params:
        Overrides; ``{"max_iter": 200}`` sets the classifier's parameter, ``{"prep__...": ...}`` any step's.
    task:
        The brief's task: which catalogue ``name`` is looked up in (:data:`TASK_CANDIDATES`).

    Raises
    ------
    ModelError
        Unknown candidate name or parameter, or no feature columns.
    """
    catalogue = candidates_for(task)
    spec = catalogue.get(name)
    if spec is None:
        raise unknown_model_error(name, list(catalogue))
    roles = column_roles(contract)
    if not roles.order:
        raise ModelError("the contract has no numeric or categorical feature columns", model=name)
    return apply_params(spec.build(roles, int(seed)), params, name=name)
