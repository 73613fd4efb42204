"""Benchmark only: ``bento/service.py`` with a synchronous API, to measure the sync-vs-async decision.

Identical to the production service except that ``predict`` is a plain ``def``: BentoML then runs every
request in its thread pool (``threads``, from ``$WORKBENCH_BENCH_THREADS``, default 1) instead of on the event
loop. So that its route is what is measured, ``PredictRoute`` is not installed here: compare it with
``--variants bentoml-route`` (the async service through BentoML's route). ``benchmarks/bench_serving.py --variants sync`` (or ``sync+threads=4``) serves it.
"""

from __future__ import annotations

import gc
import os

import bentoml
from starlette.responses import Response

from workbench.serving import load_predictor, resolve_model
from workbench.serving.app import (
    BodyLimit,
    cancel_bentoml_timeout_timers,
    request_id_from,
    request_spec,
    service_options,
)
from workbench.serving.observe import prediction_log_for, prometheus_hook
from workbench.serving.schema import PredictionResponse, RequestSchema, ServingConfig

cancel_bentoml_timeout_timers()
MODEL = resolve_model()
CONFIG = ServingConfig.load(MODEL.path / "serving.json")
PredictRequest = request_spec(RequestSchema(CONFIG))
THREADS = int(os.environ.get("WORKBENCH_BENCH_THREADS", "1"))


@bentoml.service(name="workbench-sync", **service_options(threads=THREADS))
class PredictSync:
    def __init__(self) -> None:
        self.predictor = load_predictor(MODEL)
        if self.predictor.ready:
            self.predictor.log = prediction_log_for(self.predictor.tag)
            self.predictor.on_scored = prometheus_hook(self.predictor.tag)
        gc.freeze()

    def __is_ready__(self) -> bool:
        return self.predictor.ready

    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=PredictionResponse)
    def predict(self, body: bytes, ctx: bentoml.Context) -> PredictionResponse:
        reply = self.predictor.handle(body, request_id=request_id_from(ctx.request))
        ctx.response.status_code = reply.status
        return Response(reply.body, status_code=reply.status, media_type="application/json",
                        headers={"X-Request-ID": reply.request_id})


PredictSync.add_asgi_middleware(BodyLimit, max_bytes=CONFIG.limits.max_body_bytes)
