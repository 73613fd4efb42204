"""Benchmark only -- comparison (b): the workbench service scoring with the fitted scikit-learn pipeline.

Everything but the scorer is the production service's (``bento/service.py``): the same request schema and
guard (:class:`workbench.serving.Predictor`), the same edge (``BodyLimit``, ``PredictRoute`` unless
``WORKBENCH_DIRECT_PREDICT=0``, the cancelled timeout timers), the prediction log and Prometheus counters, the
same ``@bentoml.service`` settings (:func:`workbench.serving.app.service_options`). Only ``InferenceSession.run`` is replaced by ``pipeline.predict_proba`` on a pandas
frame built from the same feeds (float32 numerics with NaN for missing, ``""`` for a missing category).

The pipeline is read from the pickle named by ``$WORKBENCH_BENCH_PIPELINE``, written by
``benchmarks/bench_serving.py`` into its own temporary folder a moment earlier. (Unpickling is acceptable here
only because this is a benchmark reading its own file; the real service never unpickles anything.)

    WORKBENCH_BENCH_PIPELINE=/tmp/.../pipeline.pkl bentoml serve sklearn_service:PredictSklearn --host 127.0.0.1
"""

from __future__ import annotations

import gc
import os
import pickle
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import bentoml
import numpy as np
import pandas as pd

from workbench.serving import Predictor, resolve_model
from workbench.serving.app import (
    BodyLimit,
    PredictorSlot,
    PredictRoute,
    cancel_bentoml_timeout_timers,
    direct_predict,
    request_spec,
    respond,
    service_options,
)
from workbench.serving.observe import prediction_log_for, prometheus_hook
from workbench.serving.schema import PredictionResponse, RequestSchema, ServingConfig

cancel_bentoml_timeout_timers()
MODEL = resolve_model()
CONFIG = ServingConfig.load(MODEL.path / "serving.json")
PredictRequest = request_spec(RequestSchema(CONFIG))
SLOT = PredictorSlot()


class SklearnScorer:
    """``run_raw(feeds)`` with the scikit-learn pipeline: the :class:`~workbench.serving.OnnxScorer` slot."""

    def __init__(self, pipeline: Any) -> None:
        self.pipeline = pipeline
        self.columns = list(pipeline.feature_names_in_)  # scikit-learn wants the fitted column order

    def run_raw(self, feeds: Mapping[str, np.ndarray]) -> np.ndarray:
        frame = pd.DataFrame({name: feeds[name].ravel() for name in self.columns})
        return self.pipeline.predict_proba(frame)[:, 1]


@bentoml.service(name="workbench-sklearn", **service_options())
class PredictSklearn:
    def __init__(self) -> None:
        with Path(os.environ["WORKBENCH_BENCH_PIPELINE"]).open("rb") as f:
            pipeline = pickle.load(f)  # noqa: S301 -- the benchmark's own file (see the module docstring)
        self.predictor = Predictor(CONFIG, SklearnScorer(pipeline), tag=MODEL.tag + "+sklearn",
                                   sha256=CONFIG.onnx_sha256)
        self.predictor.self_test()
        self.predictor.ready = True
        self.predictor.log = prediction_log_for(self.predictor.tag)
        self.predictor.on_scored = prometheus_hook(self.predictor.tag)
        SLOT.instance = self
        gc.freeze()

    def __is_ready__(self) -> bool:
        return self.predictor.ready

    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=PredictionResponse)
    async def predict(self, body: bytes, ctx: bentoml.Context) -> PredictionResponse:
        return await respond(self.predictor, body, ctx)


PredictSklearn.add_asgi_middleware(BodyLimit, max_bytes=CONFIG.limits.max_body_bytes)
if direct_predict():
    PredictSklearn.add_asgi_middleware(PredictRoute, slot=SLOT, path="/predict")
