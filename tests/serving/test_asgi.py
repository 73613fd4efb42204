"""Tier 2: the BentoML service's ASGI app in-process (``Service.to_asgi()`` under Starlette's TestClient, which
runs the lifespan, so ``__init__`` loads and verifies the model as under ``bentoml serve``)."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import textwrap
import warnings

import pytest

from .conftest import ROOT, bentoml_home, load_service_module

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # starlette: "use httpx2" (httpx is what we have)
    from starlette.testclient import TestClient


@pytest.fixture(scope="module", params=["direct", "bentoml-route"])
def service(request, serving_package):
    """The service as shipped (``POST /predict`` answered by ``PredictRoute``) and with
    ``WORKBENCH_DIRECT_PREDICT=0`` (BentoML's route answers it): every test here must pass through both."""
    mp = pytest.MonkeyPatch()
    mp.setenv("WORKBENCH_DIRECT_PREDICT", "1" if request.param == "direct" else "0")
    try:
        module = load_service_module(f"workbench_bento_service_tier2_{request.param.replace('-', '_')}")
    finally:
        mp.undo()
    assert module.DIRECT is (request.param == "direct")
    return module


@pytest.fixture(scope="module")
def client(service):
    from prometheus_client import REGISTRY

    before = set(REGISTRY._collector_to_names)
    with TestClient(service.Predict.to_asgi()) as c:
        yield c
    _stop_watcher(service.SLOT.instance)
    # BentoML registers its request metrics in the default registry; a second app in this process (the other
    # parametrization) would clash with them, as it never does under `bentoml serve` (one app per process)
    for collector in set(REGISTRY._collector_to_names) - before:
        REGISTRY.unregister(collector)


def _stop_watcher(instance) -> None:
    """The service follows the pointer by default (a Deployment's watcher thread): stop it, so it does not go on
    following the suite's pointer after the module."""
    predictor = getattr(instance, "predictor", None)
    if hasattr(predictor, "stop"):
        predictor.stop()


def test_probes(client):
    assert client.get("/readyz").status_code == 200
    assert client.get("/livez").status_code == 200


def test_predict_single_and_batch(client, serving_package):
    r = client.post("/predict", json=serving_package.records[0])
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    body = r.json()
    assert body["model_version"] == serving_package.tag and r.headers["x-request-id"] == body["request_id"]
    r = client.post("/predict", json=serving_package.records[:25])
    assert r.status_code == 200 and len(r.json()["predictions"]) == 25


def test_large_batch_is_scored_off_the_event_loop_with_the_same_answers(client, service, serving_package):
    from workbench.serving.app import INLINE_BODY_BYTES

    body = json.dumps(serving_package.records)
    assert len(body) > INLINE_BODY_BYTES
    r = client.post("/predict", content=body, headers={"X-Request-ID": "big", "Content-Type": "application/json"})
    direct = service.load_predictor(service.MODEL).handle(body.encode(), request_id="big")
    assert r.status_code == 200 and r.content == direct.body


def test_request_id_is_echoed_when_sane(client, serving_package):
    r = client.post("/predict", json=serving_package.records[0], headers={"X-Request-ID": "trace-42.a:b"})
    assert r.headers["x-request-id"] == "trace-42.a:b" == r.json()["request_id"]
    r = client.post("/predict", json=serving_package.records[0], headers={"X-Request-ID": "bad id\twith spaces"})
    assert r.headers["x-request-id"] != "bad id\twith spaces"


@pytest.mark.parametrize(("body", "status", "field"), [
    (b"{", 400, None),
    (b"", 400, None),
    (b"[]", 422, None),
    (b'{"age": 1}', 422, "workclass"),
])
def test_refusals_keep_their_status_through_bentoml(client, body, status, field):
    r = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    out = r.json()
    assert out["request_id"] == r.headers["x-request-id"]
    if field:
        assert f"field '{field}'" in out["error"]


def test_nan_literal_is_422_naming_the_field(client, serving_package):
    body = json.dumps(dict(serving_package.records[0], hours_per_week=1234.5)).replace("1234.5", "NaN")
    r = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "field 'hours_per_week'" in r.json()["error"]


def test_oversized_body_is_413_by_content_length(client, serving_package):
    limit = serving_package.serving["limits"]["max_body_bytes"]
    r = client.post("/predict", content=b" " * (limit + 1), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and str(limit) in r.json()["error"]


def test_oversized_chunked_body_is_413(client, serving_package):
    limit = serving_package.serving["limits"]["max_body_bytes"]
    chunk = b" " * (1 << 20)
    sent = []

    def chunks():
        for _ in range(limit // len(chunk) + 2):
            sent.append(len(chunk))
            yield chunk

    r = client.post("/predict", content=chunks(), headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "more than" in r.json()["error"]


@pytest.mark.parametrize("content_type", ["application/vnd.bentoml+pickle", "text/plain", None,
                                          "multipart/form-data; boundary=x"])
def test_content_type_must_be_json_415(client, serving_package, content_type, caplog):
    """Only application/json is scored: text/plain (postable cross-origin without a preflight), BentoML's pickle
    type (never unpickled), no header -> 415 in the service's error body, with the request id, logged."""
    import logging
    import pickle

    body = pickle.dumps(serving_package.records[0]) if content_type and "pickle" in content_type \
        else json.dumps(serving_package.records[0]).encode()
    headers = {"X-Request-ID": "ct-1", **({"Content-Type": content_type} if content_type else {})}
    with caplog.at_level(logging.INFO, logger="bentoml.access"):
        r = client.post("/predict", content=body, headers=headers)
    assert r.status_code == 415, r.text
    out = r.json()
    assert out["errors"][0]["type"] == "unsupported_media_type" and out["request_id"] == "ct-1"
    assert r.headers["x-request-id"] == "ct-1" and "Traceback" not in r.text
    assert any("status=415" in m and "ct-1" in m for m in caplog.messages)
    ok = client.post("/predict", content=json.dumps(serving_package.records[0]),
                     headers={"Content-Type": "application/json; charset=utf-8"})
    assert ok.status_code == 200


def test_duplicate_keys_are_400_naming_the_key(client, serving_package):
    rec = json.dumps(serving_package.records[0])
    body = rec[:-1] + ', "age": 99}'
    r = client.post("/predict", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "'age' appears twice" in r.json()["error"], r.text
    r = client.post("/predict", content=f"[{rec}, {body}]", headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "'age'" in r.json()["error"]
    # a ':' inside a value (a time, a URL) takes the exact check, and passes
    r = client.post("/predict", content=json.dumps(dict(serving_package.records[0], occupation="a:b:c")),
                    headers={"Content-Type": "application/json"})
    assert r.status_code == 200


def test_a_huge_category_string_is_refused_and_never_echoed(client, serving_package, caplog):
    import logging

    big = "x" * (1 << 20)
    with caplog.at_level(logging.INFO):
        r = client.post("/predict", content=json.dumps(dict(serving_package.records[0], occupation=big)),
                        headers={"Content-Type": "application/json"})
    assert r.status_code == 422 and "too long" in r.json()["error"] and r.json()["errors"][0]["field"] == "occupation"
    assert len(r.content) < 2000 and all(len(m) < 2000 for m in caplog.messages)
    # an unseen category of ordinary length is still scored (and flagged)
    r = client.post("/predict", json=dict(serving_package.records[0], occupation="Astronaut"))
    assert r.status_code == 200 and r.json()["predictions"][0]["flags"] == {"occupation": "unseen_category"}


def test_openapi_documents_the_record_schema(client):
    r = client.get("/docs.json")
    assert r.status_code == 200
    schema = json.dumps(r.json()["paths"]["/predict"]["post"]["requestBody"])
    assert '"age"' in schema and "additionalProperties" in schema


def test_unverified_model_is_not_ready(serving_package, tmp_path, monkeypatch):
    # pinned: this is about the model the server starts with (with hot swap, a worker would also try whatever
    # other verified model the copied pointer names by then, and serve that one)
    monkeypatch.setenv("WORKBENCH_HOT_SWAP", "0")
    home = tmp_path / "home"
    shutil.copytree(serving_package.home, home, ignore=shutil.ignore_patterns("bentos"))
    onnx = next((home / "models").glob("*/*/model.onnx"))
    onnx.write_bytes(onnx.read_bytes() + b"\0")  # altered after promotion
    with bentoml_home(home):
        svc = load_service_module("workbench_bento_service_tampered")
        instance = svc.Predict.inner()  # what the app's lifespan runs (a second app would clash in prometheus)
    try:
        assert not instance.__is_ready__()
        reply = instance.predictor.handle(json.dumps(serving_package.records[0]).encode())
        assert reply.status == 503 and b"refusing to serve" in reply.body
    finally:
        _stop_watcher(instance)


def test_not_ready_service_answers_503_over_http(client, serving_package):
    import bentoml

    from workbench.serving import Unavailable

    instance = bentoml.get_current_service()
    served = instance.predictor
    instance.predictor = Unavailable("sha256 mismatch (test)")
    try:
        assert client.get("/livez").status_code == 200
        assert client.get("/readyz").status_code == 503
        r = client.post("/predict", json=serving_package.records[0])
        assert r.status_code == 503 and "sha256 mismatch (test)" in r.json()["error"]
    finally:
        instance.predictor = served
    assert client.get("/readyz").status_code == 200


ISOLATION = textwrap.dedent("""
    import _pickle, json, pickle, sys

    def refuse(*args, **kwargs):
        raise AssertionError("the serving path unpickled something")

    pickle.load = pickle.loads = _pickle.load = _pickle.loads = refuse
    pickle.Unpickler = _pickle.Unpickler = refuse
    sys.path.insert(0, sys.argv[1])
    import service  # resolves, verifies and loads nothing yet

    instance = service.Predict.inner()  # __init__: load + sha256 + self-test
    assert instance.predictor.ready
    reply = instance.predictor.handle(json.dumps(json.loads(sys.argv[2])).encode())
    assert reply.status == 200, reply.body
    loaded = sorted({m.split(".")[0] for m in sys.modules} & {"sklearn", "shap", "fairlearn", "pandas", "polars"})
    print(json.dumps(loaded))
""")


def test_service_imports_no_research_stack_and_unpickles_nothing(serving_package):
    proc = subprocess.run([sys.executable, "-c", ISOLATION, str(ROOT / "bento"),
                           json.dumps(serving_package.records[0])],
                          capture_output=True, text=True, timeout=120, cwd=ROOT / "bento")
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


def test_predict_takes_the_path_the_service_was_configured_with(client, service, serving_package, monkeypatch):
    """Shipped: PredictRoute answers /predict before BentoML's route (whose handler is never called); with
    WORKBENCH_DIRECT_PREDICT=0 BentoML's route answers it (through ``respond``)."""
    calls = []
    real = service.respond

    async def spy(*args, **kwargs):
        calls.append(1)
        return await real(*args, **kwargs)

    monkeypatch.setattr(service, "respond", spy)
    r = client.post("/predict", json=serving_package.records[0], headers={"X-Request-ID": "which-path"})
    assert r.status_code == 200 and r.headers["x-request-id"] == "which-path" == r.json()["request_id"]
    assert r.headers["content-type"] == "application/json"
    assert len(calls) == (0 if service.DIRECT else 1)
    assert client.get("/predict").status_code == 405  # other methods are BentoML's, on both paths


def test_refusals_are_in_the_access_log_and_answers_are_not(client, serving_package, caplog):
    """/predict is skipped by BentoML's access log (the prediction log has every answer); refusals are logged
    to bentoml.access with status, request id and reason, on both paths."""
    import logging

    with caplog.at_level(logging.INFO, logger="bentoml.access"):
        client.post("/predict", json=serving_package.records[0])
        client.post("/predict", content=b'{"age": 1}', headers={"X-Request-ID": "bad-one",
                                                               "Content-Type": "application/json"})
    lines = [r.getMessage() for r in caplog.records if r.name == "bentoml.access" and "/predict" in r.getMessage()]
    assert len(lines) == 1, lines
    assert "status=422" in lines[0] and "request_id=bad-one" in lines[0] and "'workclass'" in lines[0]
