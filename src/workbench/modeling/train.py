"""Fitting: one call fits a candidate or a baseline by name and records what was fitted, how and how fast."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from .._report import jsonable
from .baselines import BASELINES, baselines_for, describe_baseline, make_baseline
from .candidates import CANDIDATES, candidates_for, make_candidate, unknown_model_error
from .frame import check_model_frame, column_roles

__all__ = ["FittedModel", "fit_model", "MODEL_NAMES"]

log = logging.getLogger(__name__)

MODEL_NAMES: tuple[str, ...] = (*CANDIDATES, *BASELINES)


@dataclass
class FittedModel:
    """A fitted model and the facts a run manifest keeps about it.

    ``model`` has the scikit-learn interface (``predict_proba``); for candidates it is the whole pipeline,
    from model frame to probability. ``params`` are the final estimator's parameters.
    """

    model: Any
    name: str
    kind: Literal["candidate", "baseline"]
    fit_seconds: float
    params: dict
    features: list[str]
    seed: int
    onnx_convertible: bool = False
    description: str = ""
    n_train: int = 0
    extra: dict = field(default_factory=dict)
    task: str = "binary_classification"
    classes: list[str] | None = None

    def scores(self, X: pd.DataFrame) -> np.ndarray:
        """The task's scores (:meth:`workbench.tasks.Task.scores`): P(positive), class probabilities, or
        predicted values."""
        from ..tasks import get_task

        return get_task(self.task).scores(self.model, X[self.features])

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Class probabilities, as scikit-learn gives them (one column per class)."""
        return self.model.predict_proba(X[self.features])

    def positive_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class (the second class), one value per row."""
        return self.predict_proba(X)[:, -1]

    def to_dict(self) -> dict:
        return jsonable({"name": self.name, "kind": self.kind, "fit_seconds": self.fit_seconds,
                         "params": self.params, "features": self.features, "seed": self.seed,
                         "onnx_convertible": self.onnx_convertible, "description": self.description,
                         "n_train": self.n_train, "task": self.task, "classes": self.classes, **self.extra})


def _final_params(model: Any) -> dict:
    est = model.steps[-1][1] if hasattr(model, "steps") else model
    # The rule baseline's column lists repeat ``features``; HGB's ``categorical_features=None`` is kept.
    return {k: v for k, v in est.get_params(deep=False).items()
            if not (k.endswith("_features") and isinstance(v, list | tuple))}


def fit_model(name: str, X: pd.DataFrame, y: Any, *, seed: int, contract: Any = None,
              params: Mapping[str, Any] | None = None, task: str = "binary_classification",
              classes: list[str] | None = None) -> FittedModel:
    """Fit a candidate or baseline by name.

    Parameters
    ----------
    name:
        One of :data:`MODEL_NAMES`: candidates ``"logreg"``, ``"hgb"``; baselines ``"majority"``, ``"rule"``.
    X:
        Model frame from :func:`~workbench.modeling.to_model_frame`.
    y:
        Binary target (0/1, e.g. from :func:`workbench.data.io.target_vector`).
    seed:
        Seed of every random choice; the same seed and data give the same model.
    contract:
        Data contract giving the column roles; when omitted they are read from ``X``'s dtypes (float columns
        numeric, object columns categorical), which is what ``to_model_frame`` produces.
    params:
        Parameter overrides for the final estimator (see :func:`~workbench.modeling.make_candidate`).
    task, classes:
        The brief's task (which catalogue ``name`` comes from) and, for multiclass, the class of each code.

    Raises
    ------
    ModelError
        Unknown model name or parameter.
    ContractError
        ``X`` lacks a feature column or holds None/NaN in a categorical column.
    """
    cands, bases = candidates_for(task), baselines_for(task)
    if name not in cands and name not in bases:
        raise unknown_model_error(name, [*cands, *bases])
    roles = column_roles(contract if contract is not None else X)
    check_model_frame(X, roles)
    is_candidate = name in cands
    model = (make_candidate(name, roles, seed=seed, params=params, task=task) if is_candidate
             else make_baseline(name, roles, seed=seed, params=params, task=task, classes=classes))
    Xf = X[roles.features]
    y = np.asarray(y)
    start = time.perf_counter()
    model.fit(Xf, y)
    seconds = time.perf_counter() - start
    log.info("fitted %s on %d rows x %d features in %.2f s", name, len(Xf), Xf.shape[1], seconds)
    classes = list(classes) if classes is not None else None
    if is_candidate:
        spec = cands[name]
        return FittedModel(model, name, "candidate", seconds, _final_params(model), roles.features, int(seed),
                           onnx_convertible=spec.onnx_convertible, description=spec.description,
                           n_train=len(Xf), task=task, classes=classes)
    extra = {"rule_scores": model.scores_, "rule": model.rule_} if name == "rule" else {}
    return FittedModel(model, name, "baseline", seconds, _final_params(model), roles.features, int(seed),
                       onnx_convertible=False, description=describe_baseline(model, classes=classes),
                       n_train=len(Xf), extra=extra, task=task, classes=classes)
