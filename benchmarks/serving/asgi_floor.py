"""Benchmark only -- comparison (c), the floor: a bare ASGI app scoring one record with the same ONNX session.

No framework, no middleware, no validation beyond JSON parsing, no prediction log: the least any Python HTTP
server on this machine can do per request with this model. ``benchmarks/bench_serving.py`` serves it with
uvicorn (the server BentoML itself runs), the same number of workers as the BentoML service, access log off::

    WORKBENCH_BENCH_MODEL_DIR=<model folder in the store> \\
        uvicorn asgi_floor:app --host 127.0.0.1 --port 3000 --workers 2 --no-access-log

It reads the model package folder directly (``serving.json`` + the ONNX file), so it needs no BentoML import.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic_core import from_json, to_json

from workbench.serving.schema import ServingConfig
from workbench.serving.scorer import OnnxScorer

MODEL_DIR = Path(os.environ["WORKBENCH_BENCH_MODEL_DIR"])
CONFIG = ServingConfig.load(MODEL_DIR / "serving.json")
SCORER = OnnxScorer((MODEL_DIR / CONFIG.onnx_file).read_bytes(), [i.model_dump() for i in CONFIG.inputs], threads=1)
NAMES = [i.name for i in CONFIG.inputs]
TAG = f"{MODEL_DIR.parent.name}:{MODEL_DIR.name}"
THRESHOLD, POS, NEG = CONFIG.threshold, CONFIG.positive_label, CONFIG.negative_label
JSON_HEADERS = [(b"content-type", b"application/json")]


async def _reply(send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": [*JSON_HEADERS, (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


async def app(scope, receive, send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    if scope["type"] != "http":
        return
    if scope["method"] == "GET":
        await _reply(send, 200 if scope["path"] in ("/readyz", "/livez") else 404, b'{"ok":true}')
        return
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    try:
        record = from_json(b"".join(chunks))
        p = float(SCORER.predict_proba({n: [record[n]] for n in NAMES})[0])
    except (ValueError, KeyError, TypeError) as exc:
        await _reply(send, 400, to_json({"error": str(exc)}))
        return
    await _reply(send, 200, to_json({"model_version": TAG, "request_id": os.urandom(16).hex(), "threshold": THRESHOLD,
                                     "predictions": [{"probability": p, "label": POS if p > THRESHOLD else NEG,
                                                      "flags": {}}]}))
