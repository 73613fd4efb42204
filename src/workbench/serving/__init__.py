"""Deployment: what the BentoML service needs, and nothing more.

This package imports numpy, onnxruntime and pydantic (BentoML only in :mod:`~workbench.serving.app` and inside
:func:`resolve_model`): never scikit-learn, shap or fairlearn, and it unpickles nothing. The service
(``bento/service.py``) is a thin shell over it.

* :mod:`~workbench.serving.schema` -- ``serving.json`` and the request schema built from it;
* :mod:`~workbench.serving.guard` -- flags for missing, unseen and out-of-range values;
* :mod:`~workbench.serving.answers` -- what a task's answer is (binary, multiclass, regression), chosen once at load;
* :mod:`~workbench.serving.predictor` -- :class:`Predictor`: load, verify, validate, score, answer;
* :mod:`~workbench.serving.app` -- the HTTP edge used by the BentoML service;
* :mod:`~workbench.serving.scorer`, :mod:`~workbench.serving.pointer`.
"""

from .guard import Guard
from .predictor import ModelRef, ModelVerificationError, Predictor, Reply, Unavailable, load_predictor, resolve_model
from .schema import RequestError, RequestSchema, ServingConfig, response_model
from .scorer import OnnxScorer

__all__ = ["Guard", "ModelRef", "ModelVerificationError", "OnnxScorer", "Predictor", "Reply", "RequestError",
           "RequestSchema", "ServingConfig", "Unavailable", "load_predictor", "resolve_model", "response_model"]
