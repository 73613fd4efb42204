"""LightGBM and XGBoost estimators as workbench candidates use them (private; public through
:mod:`workbench.modeling.candidates`).

They are the libraries' own scikit-learn estimators with one addition, ``decision_function`` (the raw margin:
the log-odds for binary, one raw score per class for multiclass), which scikit-learn's classifiers have and the
SHAP additivity check of :func:`workbench.evaluation.explain.explain` reads. Nothing else is overridden: fitting,
``predict_proba``, pickling and ONNX conversion (onnxmltools' converters, registered for these exact types by
:func:`workbench.export.onnx.register_gbm_converters`) are the libraries'.

Determinism: every estimator is built with ``n_jobs=1`` and the run's seed (LightGBM ``deterministic=True``
and ``force_row_wise=True``, XGBoost ``tree_method="hist"``), so the same seed and data give the same model
and the search's trials are reproducible.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from lightgbm import LGBMClassifier, LGBMRegressor
from xgboost import XGBClassifier, XGBRegressor

__all__ = ["WorkbenchLGBMClassifier", "WorkbenchLGBMRegressor", "WorkbenchXGBClassifier", "WorkbenchXGBRegressor",
           "GBM_ESTIMATORS", "lgbm_estimator", "xgb_estimator"]


class WorkbenchLGBMClassifier(LGBMClassifier):
    """:class:`lightgbm.LGBMClassifier` with ``decision_function`` (the raw score)."""

    def decision_function(self, X: Any) -> np.ndarray:
        return np.asarray(self.predict(X, raw_score=True), dtype=np.float64)


class WorkbenchLGBMRegressor(LGBMRegressor):
    """:class:`lightgbm.LGBMRegressor` (a distinct type only so that the converter registration is explicit)."""


class WorkbenchXGBClassifier(XGBClassifier):
    """:class:`xgboost.XGBClassifier` with ``decision_function`` (the output margin)."""

    def decision_function(self, X: Any) -> np.ndarray:
        return np.asarray(self.predict(X, output_margin=True), dtype=np.float64)


class WorkbenchXGBRegressor(XGBRegressor):
    """:class:`xgboost.XGBRegressor` (a distinct type only so that the converter registration is explicit)."""


GBM_ESTIMATORS: tuple[type, ...] = (WorkbenchLGBMClassifier, WorkbenchLGBMRegressor, WorkbenchXGBClassifier,
                                    WorkbenchXGBRegressor)
"""Every estimator type this module defines (the converter registration and the skops trusted list use it)."""


def lgbm_estimator(*, classifier: bool, seed: int) -> Any:
    """A deterministic LightGBM estimator with the library's default learning parameters."""
    cls = WorkbenchLGBMClassifier if classifier else WorkbenchLGBMRegressor
    return cls(n_estimators=200, learning_rate=0.05, num_leaves=31, min_child_samples=20, subsample=1.0,
               colsample_bytree=1.0, reg_lambda=1e-3, random_state=seed, n_jobs=1, deterministic=True,
               force_row_wise=True, verbose=-1)


def xgb_estimator(*, classifier: bool, seed: int) -> Any:
    """A deterministic XGBoost estimator (histogram method, one thread)."""
    cls = WorkbenchXGBClassifier if classifier else WorkbenchXGBRegressor
    return cls(n_estimators=200, learning_rate=0.1, max_depth=6, min_child_weight=1.0, subsample=1.0,
               colsample_bytree=1.0, reg_lambda=1.0, tree_method="hist", random_state=seed, n_jobs=1,
               verbosity=0)
