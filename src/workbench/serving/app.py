"""The HTTP edge of the BentoML service: the raw-body input spec, the body-size limit, the response, and the
direct ``/predict`` route.

``bento/service.py`` uses these pieces:

:func:`request_spec`
    The ``/predict`` input spec. It documents the model's request schema (OpenAPI at ``/docs``), but hands the
    raw body to :meth:`Predictor.handle <workbench.serving.Predictor.handle>` instead of letting BentoML
    validate it: BentoML answers a validation error with 400 and a message that does not name the field, and it
    validates into model objects (slower). One parse, one validation, errors as 4xx naming record and field.
    No BentoML serde runs, so nothing is ever unpickled (BentoML itself refuses the pickle media type, 415).
    This overrides ``IODescriptor.from_http_request``, the classmethod BentoML 1.4 awaits to parse a body: an
    undocumented hook, so the ASGI-app and real-server tests pin its behaviour.
:class:`BodyLimit`
    ASGI middleware (``Service.add_asgi_middleware``, documented): 415 unless ``POST /predict`` is
    ``application/json``; 413 when a body exceeds ``limits.max_body_bytes`` -- from ``Content-Length`` before
    reading anything, or while counting a chunked body -- so an oversized body is never buffered whole (stock
    BentoML read and parsed a 100 MB body); both drain the body (bounded) first, so Python clients read them.
:class:`ServiceRoutes`
    ``/readyz`` with the reason, ``/docs.json`` as the service behaves -- for the model serving *now* (after a hot
    swap, the new champion's fields, answer, example and tag; built once per champion) --, ``/`` without
    BentoML's boilerplate.
:func:`install_header_timeout`
    Closes connections stalled in their request head (uvicorn has no such timeout).
:func:`respond`
    Runs the predictor for one request. Small bodies are answered on the event loop: the work is about 50 us,
    less than handing it to a thread. Bodies above :data:`INLINE_BODY_BYTES` (large batches, milliseconds of
    parsing and scoring) go to a worker thread, one at a time per process, so the loop keeps answering small
    requests and health checks meanwhile (the GIL is shared, but released by onnxruntime and between ticks).

:class:`PredictRoute`
    ASGI middleware that answers ``POST /predict`` with the same predictor and :func:`answer`, inside BentoML's
    metrics, tracing, access-log, timeout and body-limit middlewares but without its route machinery (see the
    class); ``WORKBENCH_DIRECT_PREDICT=0`` in the service leaves ``/predict`` to BentoML's route.

This module imports BentoML and Starlette; the rest of :mod:`workbench.serving` does not (except
:func:`~workbench.serving.resolve_model`, which looks the tag up in the BentoML model store).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import re
import threading
from typing import Any

import anyio
import anyio.to_thread
import bentoml
from pydantic_core import to_json
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .predictor import Predictor, Reply, Unavailable, error_reply, new_request_id, public_reason
from .schema import RequestSchema

log = logging.getLogger(__name__)

__all__ = ["DRAIN_MAX_BYTES", "HEADER_TIMEOUT", "INLINE_BODY_BYTES", "BodyLimit", "PredictRoute", "PredictorSlot",
           "ServiceRoutes", "answer", "cancel_bentoml_timeout_timers", "champion_of", "direct_predict",
           "document_key", "install_header_timeout", "request_id_from", "request_spec", "respond",
           "service_options"]

INLINE_BODY_BYTES = 64 * 1024
"""Bodies up to this size (a few hundred records) are scored on the event loop; larger ones in a thread."""

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
_BIG_BATCH = threading.Lock()  # one large batch at a time per process (they compete for the GIL anyway)


def service_options(*, threads: int = 1) -> dict[str, Any]:
    """The ``@bentoml.service`` settings of ``bento/service.py``, each measured with benchmarks/bench_serving.py.
    The benchmark's comparison services use them too, so they differ from the real one only in what they compare.

    * ``workers``: ``$WORKBENCH_WORKERS``, else one per CPU core (at most 4): parallelism from processes.
    * ``threads=1``: the API is async; BentoML's thread pool (for sync APIs) is unused.
    * ``tracing``: /predict excluded. BentoML's OpenTelemetry middleware starts three spans per request even
      when nothing samples them: ~360 us of CPU per /predict. /predict has its X-Request-ID and the prediction log.
    * ``logging``: /predict out of BentoML's per-request access log, whose line cost ~45 us of CPU per request,
      as much as the prediction. Every answered /predict is in the prediction log; every refused one is logged
      to ``bentoml.access`` by :func:`answer`. Other paths keep their lines.
    * binds 127.0.0.1 unless ``--host``/``BENTOML_HOST`` says otherwise; ``OMP_NUM_THREADS=1``.
    """
    workers = int(os.environ.get("WORKBENCH_WORKERS", "0")) or min(4, len(os.sched_getaffinity(0)))
    return {
        "workers": workers,
        "threads": threads,
        "traffic": {"timeout": 30},
        "http": {"host": "127.0.0.1"},
        "tracing": {"excluded_urls": ["/predict"]},
        "logging": {"access": {"skip_paths": ["/metrics", "/healthz", "/livez", "/readyz", "/predict"]}},
        "envs": [{"name": "OMP_NUM_THREADS", "value": "1"}],
    }


def direct_predict() -> bool:
    """Whether :class:`PredictRoute` answers /predict: yes unless ``$WORKBENCH_DIRECT_PREDICT`` is 0/false/no/off."""
    return os.environ.get("WORKBENCH_DIRECT_PREDICT", "1").strip().lower() not in ("0", "false", "no", "off")


def _inline_refs(schema: dict) -> dict:
    """The JSON schema with its ``$defs`` substituted in place (BentoML's OpenAPI builder drops ``$defs``)."""
    defs = schema.get("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                return walk(defs[ref.removeprefix("#/$defs/")])
            return {k: walk(v) for k, v in node.items() if k != "$defs"}
        if isinstance(node, list):
            return [walk(v) for v in node]
        return node

    return walk(schema)


def request_spec(schema: RequestSchema) -> type[bentoml.IODescriptor]:
    """The ``/predict`` input spec for one model: documents ``schema``, delivers the raw body as ``body``."""
    body_schema = _inline_refs(schema.json_schema())

    class PredictRequest(bentoml.IODescriptor):
        body: bytes = b""

        @classmethod
        async def from_http_request(cls, request: Request, serde: Any) -> PredictRequest:
            return cls.model_construct(body=await request.body())

        @classmethod
        def model_json_schema(cls, *args: Any, **kwargs: Any) -> dict[str, Any]:
            return dict(body_schema, title="PredictRequest",
                        description="One record (a JSON object) or a batch (a JSON array of records).")

    return PredictRequest


def request_id_from(request: Request | None) -> str:
    """The caller's ``X-Request-ID`` when it is a sane token (letters, digits, ``._:-``; up to 128), else a
    fresh random id."""
    if request is not None:
        given = request.headers.get("x-request-id")
        if given and _REQUEST_ID.match(given):
            return given
    return new_request_id()


def _caller_key_from_headers(headers: list[tuple[bytes, bytes]]) -> str | None:
    """The ``X-Caller-Key`` header when it is a sane token (as a request id), else None."""
    for key, value in headers:
        if key == b"x-caller-key":
            given = value.decode("latin-1")
            return given if _REQUEST_ID.match(given) else None
    return None


def _request_id_from_headers(headers: list[tuple[bytes, bytes]]) -> str:
    """:func:`request_id_from` on raw ASGI headers (lower-case names, latin-1 values)."""
    for key, value in headers:
        if key == b"x-request-id":
            given = value.decode("latin-1")
            if _REQUEST_ID.match(given):
                return given
            break
    return new_request_id()


async def respond(predictor: Predictor | Unavailable, body: bytes, ctx: bentoml.Context | None = None) -> Response:
    """Answer one ``/predict`` body (see the module docstring for where the work runs).

    With the API's context, its status code is set too: BentoML copies ``ctx.response.status_code`` over the
    returned response's status.
    """
    request = ctx.request if ctx is not None else None
    key = request.headers.get("x-caller-key") if request is not None else None
    reply = await answer(predictor, body, request_id_from(request),
                         caller_key=key if key and _REQUEST_ID.match(key) else None)
    if ctx is not None:
        ctx.response.status_code = reply.status
    after = getattr(predictor, "after_reply", None)  # a shadow challenger scores once the answer is out
    return Response(reply.body, status_code=reply.status, media_type="application/json",
                    headers={"X-Request-ID": reply.request_id},
                    background=BackgroundTask(after) if after is not None else None)


async def answer(predictor: Predictor | Unavailable, body: bytes, request_id: str, *,
                 caller_key: str | None = None) -> Reply:
    """The reply to one ``/predict`` body: small bodies on the event loop, large ones in a worker thread.

    A refusal (4xx/5xx) is written to BentoML's access log (logger ``bentoml.access``) with its status, request
    id and reason: the service keeps ``/predict`` out of BentoML's per-request access log (every answered
    request is in the prediction log instead), so this is where refused ones are seen.

    ``caller_key`` (the ``X-Caller-Key`` header, when sane) keeps a caller on one model of a canary release
    (:class:`workbench.serving.deploy.Deployment`); a single-model predictor ignores it.
    """
    if len(body) <= INLINE_BODY_BYTES:
        reply = predictor.handle(body, request_id=request_id, caller_key=caller_key)
    else:
        reply = await anyio.to_thread.run_sync(_handle_big, predictor, body, request_id, caller_key)
    if reply.status >= 400:
        _log_refusal(reply, len(body))
    return reply


_ACCESS = logging.getLogger("bentoml.access")


def _log_refusal(reply: Reply, size: int | str, path: str = "/predict") -> None:
    if not _ACCESS.isEnabledFor(logging.INFO):
        return
    try:
        reason = json.loads(reply.body).get("error", "")
    except ValueError:
        reason = ""
    _ACCESS.info("POST %s refused: status=%d request_id=%s body=%sB: %s", path, reply.status, reply.request_id,
                 size, reason[:500])


def _handle_big(predictor: Predictor | Unavailable, body: bytes, request_id: str,
                caller_key: str | None = None) -> Reply:
    with _BIG_BATCH:
        return predictor.handle(body, request_id=request_id, caller_key=caller_key)


DRAIN_MAX_BYTES = 128 * 1024 * 1024
"""An oversized or refused body is read and discarded up to this many bytes (and :data:`DRAIN_SECONDS`) before
the refusal is sent: clients that send the whole body before reading (Python's ``http.client``/``urllib``, hence
``requests``) then read the 413/415 instead of a broken pipe. Past it the connection is closed at once."""
DRAIN_SECONDS = 15.0

JSON_MEDIA_TYPES = ("application/json",)


def _media_type(headers: list[tuple[bytes, bytes]]) -> str | None:
    for key, value in headers:
        if key == b"content-type":
            return value.decode("latin-1").split(";", 1)[0].strip().lower()
    return None


class BodyLimit:
    """ASGI middleware at the edge of ``POST /predict`` (and the size limit of every other body).

    * ``Content-Type`` must be ``application/json`` on ``POST /predict`` (parameters such as ``charset`` allowed):
      anything else -- ``text/plain``, which a web page can post cross-origin without a CORS preflight, BentoML's
      pickle type, no header -- is answered **415** in the service's error body, no traceback.
    * A body larger than the limit gets **413** (JSON, naming the limit): from ``Content-Length`` before
      anything is buffered, or while counting a chunked body. The limit is the serving champion's
      ``limits.max_body_bytes`` when ``slot`` holds one (so it follows a hot swap), else ``max_bytes``. Either refusal first reads and discards the rest of
      the body, up to :data:`DRAIN_MAX_BYTES` / :data:`DRAIN_SECONDS`, then answers with ``Connection: close``.
    * Both carry ``X-Request-ID`` and are logged to ``bentoml.access`` with it (as :func:`answer` logs its
      refusals). A body within the limit is buffered and replayed to the app unchanged.
    """

    def __init__(self, app: ASGIApp, *, max_bytes: int, path: str = "/predict",
                 drain_bytes: int = DRAIN_MAX_BYTES, drain_seconds: float = DRAIN_SECONDS,
                 slot: PredictorSlot | None = None) -> None:
        self.app = app
        self.max_bytes = int(max_bytes)
        self.slot = slot
        self.path = path
        self.drain_bytes = int(drain_bytes)
        self.drain_seconds = float(drain_seconds)

    async def _drain(self, receive: Receive, received: int) -> None:
        """Read and discard the rest of the body (bounded in bytes and time)."""
        with anyio.move_on_after(self.drain_seconds):
            while received <= self.drain_bytes:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return
                received += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, status: int, type_: str, message: str,
                      received: int, size: int | str) -> None:
        await self._drain(receive, received)
        rid = _request_id_from_headers(scope["headers"])
        reply = error_reply(status, type_, message, rid)
        _log_refusal(reply, size, scope.get("path", ""))
        await Response(reply.body, status_code=status, media_type="application/json",
                       headers={"Connection": "close", "X-Request-ID": rid})(scope, receive, send)

    def limit(self) -> int:
        """The body limit now: the serving champion's ``limits.max_body_bytes``, else ``max_bytes``."""
        if self.slot is not None:
            config = getattr(champion_of(self.slot.predictor), "config", None)
            if config is not None:
                return int(config.limits.max_body_bytes)
        return self.max_bytes

    async def _too_large(self, scope: Scope, receive: Receive, send: Send, size: str, received: int,
                         limit: int) -> None:
        message = (f"the request body has {size} bytes; the limit is {limit} "
                   "(limits.max_body_bytes in serving.json); split the batch")
        await self._refuse(scope, receive, send, 413, "body_too_large", message, received, size)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            await self.app(scope, receive, send)
            return
        declared = None
        for key, value in scope["headers"]:
            if key == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = -1
                break
        if scope["path"] == self.path and scope["method"] == "POST":
            media = _media_type(scope["headers"])
            if media not in JSON_MEDIA_TYPES:
                what = f"Content-Type {media[:60]!r}" if media else "no Content-Type"
                await self._refuse(scope, receive, send, 415, "unsupported_media_type",
                                   f"the body must be sent as application/json, got {what}", 0,
                                   declared if declared is not None else "?")
                return
        limit = self.limit()
        if declared is not None and declared > limit:
            await self._too_large(scope, receive, send, str(declared), 0, limit)
            return
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                if message.get("more_body", False):
                    await self._too_large(scope, receive, send, f"more than {limit}", size, limit)
                else:
                    await self._too_large(scope, _no_more(receive), send, f"more than {limit}", size, limit)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def _no_more(receive: Receive) -> Receive:
    """A receive whose body is already complete (nothing left to drain)."""
    async def done() -> Message:
        return {"type": "http.request", "body": b"", "more_body": False}
    return done


class ServiceRoutes:
    """ASGI middleware answering, for the service instance in ``slot``:

    * ``GET /readyz``: 200 ``ready`` or 503 with the reason (:meth:`Predictor.readiness
      <workbench.serving.Predictor.readiness>`: model not verified, prediction log unwritable) -- BentoML's only
      said "``__is_ready__()`` returns False";
    * ``GET /docs.json``: ``document(predictor)`` for the predictor serving now
      (:func:`workbench.serving.openapi.openapi_document` of its champion), built once per champion
      (:func:`document_key`: tag, package and ONNX sha256), so a hot swap changes what it documents;
    * ``GET /``: the Swagger UI page without BentoML's boilerplate (:data:`workbench.serving.openapi.INDEX_HTML`).

    Before the instance has registered (start-up), requests go to BentoML unchanged.
    """

    def __init__(self, app: ASGIApp, *, slot: PredictorSlot, document: Any = None) -> None:
        self.app = app
        self.slot = slot
        self.document = document
        self._docs: dict[Any, bytes] = {}  # document_key -> the JSON

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or self.slot.instance is None:
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path == "/readyz":
            ready, why = self.slot.readiness()
            response = Response(b"ready\n" if ready else f"not ready: {why}\n".encode(),
                                status_code=200 if ready else 503, media_type="text/plain")
        elif path == "/docs.json" and self.document is not None:
            predictor = self.slot.predictor
            key = document_key(predictor)
            doc = self._docs.get(key)
            if doc is None:
                doc = to_json(self.document(predictor))
                if len(self._docs) >= 8:  # models swapped in and out: keep the cache bounded
                    self._docs.clear()
                self._docs[key] = doc
            response = Response(doc, media_type="application/json")
        elif path == "/" and self.document is not None:
            from .openapi import INDEX_HTML

            response = Response(INDEX_HTML, media_type="text/html")
        else:
            await self.app(scope, receive, send)
            return
        await response(scope, receive, send)


HEADER_TIMEOUT = 10.0
"""Seconds a connection may take to deliver a complete request head, from connecting or from its previous
response (``$WORKBENCH_HEADER_TIMEOUT``)."""


def install_header_timeout(seconds: float | None = None) -> bool:
    """Close connections that do not deliver a complete request head within ``seconds`` (default
    ``$WORKBENCH_HEADER_TIMEOUT`` or :data:`HEADER_TIMEOUT`).

    uvicorn (0.3x-0.5x, both its h11 and httptools protocols) has no such timeout: its ``timeout_keep_alive`` is
    armed only after a response and cancelled by any byte received, so a client that connects and sends half a
    header (or a byte every few seconds) holds the connection forever; BentoML exposes no setting for it (only a
    hidden ``--timeout-keep-alive`` flag for the same idle timer). This wraps the protocols' ``connection_made``
    and ``on_response_complete`` to arm a timer that closes the connection if no new request has started by then.
    Returns False (changing nothing) if a protocol lacks the attributes this relies on.
    """
    seconds = float(os.environ.get("WORKBENCH_HEADER_TIMEOUT", HEADER_TIMEOUT) if seconds is None else seconds)
    protocols = []
    for module, name in (("uvicorn.protocols.http.h11_impl", "H11Protocol"),
                         ("uvicorn.protocols.http.httptools_impl", "HttpToolsProtocol")):
        try:
            mod = __import__(module, fromlist=[name])
        except ImportError:  # httptools not installed
            continue
        protocols.append(getattr(mod, name))
    for cls in protocols:
        if not all(hasattr(cls, a) for a in ("connection_made", "connection_lost", "on_response_complete")):
            log.warning("uvicorn's %s changed; no header timeout (see workbench.serving.app)", cls.__name__)
            return False
    for cls in protocols:
        if getattr(cls, "_workbench_header_timeout", None) is not None:
            cls._workbench_header_timeout = seconds
            continue
        _wrap_protocol(cls)
        cls._workbench_header_timeout = seconds
    return True


def _arm(proto: Any) -> None:
    old = getattr(proto, "_workbench_timer", None)
    if old is not None:
        old.cancel()
    cycle = getattr(proto, "cycle", None)

    def expire() -> None:
        transport = getattr(proto, "transport", None)
        current = getattr(proto, "cycle", None)
        if transport is None or transport.is_closing():
            return
        if current is cycle and (current is None or getattr(current, "response_complete", True)):
            transport.close()  # no request head arrived in time

    proto._workbench_timer = proto.loop.call_later(type(proto)._workbench_header_timeout, expire)


def _wrap_protocol(cls: Any) -> None:
    made, lost, complete = cls.connection_made, cls.connection_lost, cls.on_response_complete

    def connection_made(self, transport):  # type: ignore[no-untyped-def]
        made(self, transport)
        _arm(self)

    def on_response_complete(self):  # type: ignore[no-untyped-def]
        complete(self)
        if not self.transport.is_closing():
            _arm(self)

    def connection_lost(self, exc):  # type: ignore[no-untyped-def]
        timer = getattr(self, "_workbench_timer", None)
        if timer is not None:
            timer.cancel()
        lost(self, exc)

    cls.connection_made, cls.connection_lost, cls.on_response_complete = (connection_made, connection_lost,
                                                                          on_response_complete)


def cancel_bentoml_timeout_timers() -> bool:
    """Make BentoML's ``TimeoutMiddleware`` cancel its per-request timer once the response has started.

    BentoML 1.4 (``bentoml._internal.server.http.traffic``) arms ``loop.call_later(traffic.timeout, ...)`` for
    every request and never cancels it: the timer, its future and the request's copied context live on for
    ``traffic.timeout`` seconds, and the garbage collector's full passes over them stalled every request in
    flight (up to 85 ms; p99 130-330 ms at 1-32 clients). Returns False, changing nothing, if the installed
    BentoML's middleware is not the one this was written against.
    """
    from bentoml._internal.server.http.traffic import TimeoutMiddleware
    from starlette.responses import JSONResponse

    original = TimeoutMiddleware.__call__
    if getattr(original, "_workbench_cancels_timer", False):
        return True
    try:
        source = inspect.getsource(original)
    except (OSError, TypeError):
        source = ""
    if "loop.call_later(self.timeout, self._set_timer_out, waiter)" not in source:
        log.warning("BentoML's TimeoutMiddleware changed; not patching it (see workbench.serving.app)")
        return False

    async def __call__(self, scope, receive, send):  # BentoML 1.4.39's, plus timer.cancel()
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

        async def _send(message):
            if not waiter.done():
                waiter.set_result(None)
            await send(message)

        fut = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
        try:
            await waiter
        except TimeoutError:
            if fut.cancel():
                resp = JSONResponse({"error": f"Not able to process the request in {self.timeout} seconds"},
                                    status_code=504)
                await resp(scope, receive, send)
        else:
            timer.cancel()
            await fut

    __call__._workbench_cancels_timer = True
    TimeoutMiddleware.__call__ = __call__
    return True


def champion_of(predictor: Any) -> Any:
    """The model answering for ``predictor``: a :class:`~workbench.serving.deploy.Deployment`'s current champion,
    else the predictor itself (a :class:`Predictor`, an :class:`Unavailable`, or None)."""
    return getattr(predictor, "champion", predictor)


def document_key(predictor: Any) -> tuple:
    """What ``/docs.json`` is cached by: the serving champion's ``(tag, package_sha256)`` (a Deployment's
    :attr:`~workbench.serving.deploy.Deployment.champion_key`), its ONNX sha256 and whether it is verified."""
    champion = champion_of(predictor)
    key = getattr(predictor, "champion_key", None) or (getattr(champion, "tag", None), None)
    return (*key, getattr(champion, "sha256", None), bool(getattr(champion, "ready", False)))


class PredictorSlot:
    """Where the service instance registers itself once created, for :class:`PredictRoute` (built earlier, with
    the ASGI app, before the instance exists). The route reads ``instance.predictor`` on every request, so a
    predictor swapped on the instance is used at once (serving the production pointer with hot swap on, the
    default, it is a :class:`~workbench.serving.deploy.Deployment`, which swaps its models inside)."""

    instance: Any = None

    @property
    def predictor(self) -> Predictor | Unavailable | None:
        return getattr(self.instance, "predictor", None)

    def readiness(self) -> tuple[bool, str]:
        """``(ready, why not)`` of the registered instance's predictor."""
        predictor = self.predictor
        if predictor is None:
            return False, "the service is starting"
        return predictor.readiness()


class PredictRoute:
    """ASGI middleware answering ``POST /predict`` itself, with the service's predictor.

    Why: for a one-record request the predictor's work is ~50 us, while BentoML's route for the same API
    (routing, the per-request context, dependency resolution and signature inspection in its endpoint
    wrapper) added ~170 us of CPU per request on this machine. Added with ``Service.add_asgi_middleware``
    (documented), it sits inside BentoML's outer middlewares, so ``/predict`` keeps BentoML's request metrics
    on ``/metrics``, its tracing exclusion, access log, request timeout, and :class:`BodyLimit`; only the
    route itself is short-circuited. The API stays declared on the service (OpenAPI at ``/docs``, Python
    clients) and both paths answer through :func:`answer` with the same bytes, status and ``X-Request-ID``
    (tests/serving/test_asgi.py runs the ASGI tests through both). Other paths and methods, and any request
    before the service instance has registered in the slot, go to BentoML unchanged.
    """

    def __init__(self, app: ASGIApp, *, slot: PredictorSlot, path: str = "/predict") -> None:
        self.app = app
        self.slot = slot
        self.path = path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        predictor = self.slot.predictor
        if predictor is None or scope["type"] != "http" or scope["path"] != self.path or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        rid = _request_id_from_headers(scope["headers"])
        chunks: list[bytes] = []
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        try:
            reply = await answer(predictor, chunks[0] if len(chunks) == 1 else b"".join(chunks), rid,
                                 caller_key=_caller_key_from_headers(scope["headers"]))
        except Exception as exc:  # a bug or a model failure: say so as JSON, with the request id
            log.exception("POST %s failed (request %s)", self.path, rid)
            reply = error_reply(500, "internal_error",
                                public_reason(f"internal error while scoring: {type(exc).__name__}: {exc}"), rid)
        await send({"type": "http.response.start", "status": reply.status,
                    "headers": [(b"content-type", b"application/json"),
                                (b"content-length", str(len(reply.body)).encode()),
                                (b"x-request-id", reply.request_id.encode())]})
        await send({"type": "http.response.body", "body": reply.body})
        after = getattr(predictor, "after_reply", None)
        if after is not None:  # a shadow challenger scores the request now that its answer is out
            try:
                after()
            except Exception:  # noqa: BLE001 - never the caller's problem
                log.exception("shadow scoring failed after request %s", rid)
