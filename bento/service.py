"""The workbench prediction service: ``bentoml serve`` serves the production model.

Run it from this folder: ``bentoml serve --host 127.0.0.1 --port 3000`` (``service:Predict``). The model is
resolved at import -- ``$WORKBENCH_MODEL_TAG``, else the model a built Bento was built with, else the
production pointer (:func:`workbench.serving.resolve_model`).

* **From the production pointer** (the usual case), each worker follows the pointer (hot swap, on by default):
  a new champion is verified beside the old one and swapped in atomically without a restart -- which is also how
  ``workbench release`` and ``workbench rollback`` reach a running server --, a shadow or canary challenger is
  served beside it, and a failing challenger is rolled back automatically (:mod:`workbench.serving.deploy`). A
  worker respawned after a pointer change starts on the pointer's model.
* **Pinned**: a model named by ``$WORKBENCH_MODEL_TAG`` or by a built Bento, or any model with
  ``WORKBENCH_HOT_SWAP=0``, is resolved **once per server**: the first process of ``bentoml serve`` resolves it
  before any worker starts and pins it (``$WORKBENCH_SERVING_PIN``), and every worker, respawned ones included,
  serves that model until the server is restarted.

The model is loaded, verified whole (``package.json``: every file's sha256) and self-tested in ``__init__``;
``/readyz`` answers 200 only after that, and never for a model that fails verification, nor while the prediction
log cannot be written (it says why: ``not ready: prediction log unwritable: ...``).
All logic lives in :mod:`workbench.serving`; this file imports nothing else from workbench, and nothing from
scikit-learn, shap or fairlearn.

Serving decisions (measured on the Adult logistic regression; see README "Serving"):

* ``POST /predict`` is answered by :class:`~workbench.serving.app.PredictRoute`, a middleware inside BentoML's
  (metrics, access log, timeout, body limit all still apply) that calls the same predictor as the API below,
  skipping BentoML's route machinery: ~170 us of CPU per request, three times the prediction's own
  (``WORKBENCH_DIRECT_PREDICT=0`` turns it off; the API below then answers, with the same bytes).
* ``async`` API, work on the event loop: a record takes ~50 us end to end, less than a thread hand-off; large
  bodies (> 64 KiB) are scored in a worker thread (:func:`workbench.serving.app.respond`).
* One onnxruntime thread per worker and one worker per CPU core (at most 4; ``WORKBENCH_WORKERS`` overrides):
  parallelism comes from processes, so no worker's threads compete with another's (``OMP_NUM_THREADS=1``).
* No adaptive batching: it gained nothing for ONNX here and answered 503 at its latency cap.
* ``gc.freeze()`` after loading: start-up objects are never scanned by the garbage collector again.
* BentoML's per-request timeout timers are cancelled once a response starts, and ``/predict`` is excluded from
  tracing (see benchmarks/bench_serving.py: p99 at 1 client 209 ms -> ~1 ms) and from BentoML's per-request
  access log (refusals are still logged; :func:`workbench.serving.app.service_options`).
* The edge: ``application/json`` required (415), bodies over ``limits.max_body_bytes`` refused (413) after
  draining them (bounded) so every client reads the answer, duplicate keys refused (400), strings bounded by the
  contract, connections stalled in their request head closed after ``$WORKBENCH_HEADER_TIMEOUT`` (10 s), every
  refusal logged with its request id; ``/docs.json`` documents exactly that, for the model serving now (after a hot
  swap, the new champion's fields, answer, example and tag: :func:`workbench.serving.openapi.service_document`).
* Binds 127.0.0.1 unless ``--host``/``BENTOML_HOST`` says otherwise (the image sets ``BENTOML_HOST=0.0.0.0``).
"""

from __future__ import annotations

import gc
from pathlib import Path

import bentoml

from workbench.serving import load_predictor, resolve_model
from workbench.serving.app import (
    BodyLimit,
    PredictorSlot,
    PredictRoute,
    ServiceRoutes,
    cancel_bentoml_timeout_timers,
    direct_predict,
    install_header_timeout,
    request_spec,
    respond,
    service_options,
)
from workbench.serving.deploy import Deployment, hot_swap_enabled
from workbench.serving.observe import (
    deploy_metrics,
    log_failure_hook,
    log_on_failure,
    prediction_log_for,
    prometheus_hook,
)
from workbench.serving.openapi import service_document
from workbench.serving.schema import RequestSchema, ServingConfig, response_model

# BentoML 1.4 arms a 30 s timer per request and never cancels it; the garbage collector's passes over those
# timers stalled requests by up to 85 ms (p99 209 ms at 1 client). Cancel them once the response has started.
cancel_bentoml_timeout_timers()
install_header_timeout()  # uvicorn never closes a connection stalled in its request head

# Hot swap (default): every worker resolves the production pointer itself and follows it (workbench.serving.deploy).
# A model that does not come from the pointer -- $WORKBENCH_MODEL_TAG, or the model a built Bento's bento.yaml (one
# folder up) names -- and any model with WORKBENCH_HOT_SWAP=0 is pinned: resolved once, in `bentoml serve`'s first
# process; its workers (respawned ones too) inherit it.
BENTO_DIR = Path(__file__).resolve().parents[1]
HOT_SWAP = hot_swap_enabled()
MODEL = resolve_model(bento_dir=BENTO_DIR, pin=not HOT_SWAP)
if HOT_SWAP and not MODEL.from_pointer:
    MODEL = resolve_model(bento_dir=BENTO_DIR, pin=True)
FOLLOW_POINTER = HOT_SWAP and MODEL.from_pointer
LOG_ON_FAILURE = log_on_failure()  # "refuse" (503) or "serve" (answer anyway, loudly): WORKBENCH_LOG_ON_FAILURE
try:
    CONFIG = ServingConfig.load(MODEL.path / "serving.json")  # for the schema; verified in __init__
except Exception:  # an unreadable serving.json: __init__ reports it (the service starts unavailable)
    CONFIG = None
if CONFIG is None:  # documents nothing until the package is fixed; /predict answers 503 with the reason
    from workbench.serving.schema import ErrorResponse as PredictResponse

    class PredictRequest(bentoml.IODescriptor):
        body: bytes = b""
else:
    PredictRequest = request_spec(RequestSchema(CONFIG))
    # What /predict answers, for /docs: binary probability + label, multiclass label + probabilities, regression
    # prediction (serving.json's task).
    PredictResponse = response_model(CONFIG)
# POST /predict is answered by a middleware with the same predictor, skipping BentoML's per-request route
# machinery (~170 us of CPU per request); WORKBENCH_DIRECT_PREDICT=0 sends it through BentoML's route instead.
DIRECT = direct_predict()
SLOT = PredictorSlot()


# workers per core, one thread, tracing and access log off for /predict, 127.0.0.1: see service_options
@bentoml.service(name="workbench", **service_options())
class Predict:
    model = bentoml.models.BentoModel(MODEL.tag)  # what `bentoml build` packs into the Bento

    def __init__(self) -> None:
        # Verifies the ONNX sha256 (serving.json, the pointer, the store metadata) and self-tests; a failure
        # leaves it Unavailable: /readyz 503, /predict 503 with the reason.
        predictor = load_predictor(MODEL)
        if predictor.ready:
            _observe(predictor)
        self.predictor = predictor
        if FOLLOW_POINTER:  # hot swap: champion swaps, challenger, rollback; one watcher thread per worker
            self.predictor = Deployment(predictor, champion_key=(MODEL.tag, MODEL.package_certified.get(
                "the production pointer")), prepare=_observe, metrics=deploy_metrics()).start()
        SLOT.instance = self  # PredictRoute answers /predict with self.predictor from now on
        # Start-up objects (~90k: BentoML, pydantic, onnxruntime) never die; a full GC pass over them took
        # ~33 ms here, a stall on every request in flight. Freeze them out of the collector's scans.
        gc.freeze()

    def __is_ready__(self) -> bool:
        return self.predictor.readiness()[0]

    @bentoml.api(route="/predict", input_spec=PredictRequest, output_spec=PredictResponse)
    async def predict(self, body: bytes, ctx: bentoml.Context) -> PredictResponse:  # type: ignore[valid-type]
        """Score one record (a JSON object) or a batch (an array of records): the task's answer (binary:
        probability and label; multiclass: label and every class's probability; regression: prediction) and
        flags per record."""
        return await respond(self.predictor, body, ctx)


def _observe(predictor) -> None:  # noqa: ANN001
    """Every answered request is in the prediction log before its answer leaves (workbench drift reads it); live
    counters by model version on /metrics. An unwritable log folder never crashes the worker: the service starts
    not ready, with the reason, and recovers once the folder is writable."""
    predictor.log = prediction_log_for(predictor.tag)
    predictor.log_policy = LOG_ON_FAILURE
    if predictor.log is not None:
        predictor.log.check()
    predictor.on_scored = prometheus_hook(predictor.tag)
    predictor.on_log_failure = log_failure_hook(predictor.tag)


def _document(predictor) -> dict:  # noqa: ANN001
    """/docs.json for the model serving now (built once per champion): BentoML's document with /predict, the
    probes and the title as the service behaves."""
    return service_document(Predict.openapi_spec.asdict(), predictor, config=CONFIG, tag=MODEL.tag,
                            model_dir=MODEL.path)


# the body limit follows the serving champion's limits.max_body_bytes (after a hot swap too)
Predict.add_asgi_middleware(BodyLimit, max_bytes=CONFIG.limits.max_body_bytes if CONFIG else 10 * 1024 * 1024,
                            slot=SLOT)
Predict.add_asgi_middleware(ServiceRoutes, slot=SLOT, document=_document)
if DIRECT:  # inside BodyLimit and BentoML's metrics, tracing, access-log and timeout middlewares
    Predict.add_asgi_middleware(PredictRoute, slot=SLOT, path="/predict")
