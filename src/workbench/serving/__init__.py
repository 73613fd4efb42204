"""Deployment: what the BentoML service needs, and nothing more.

This package imports numpy, onnxruntime and pydantic only: never scikit-learn, shap or fairlearn, and it
unpickles nothing. The service (``bento/service.py``) is a thin shell over it.
"""

from .scorer import OnnxScorer

__all__ = ["OnnxScorer"]
