"""One service, two models (:mod:`workbench.serving.deploy`): hot swap from the pointer, shadow, canary, automatic
rollback (error rate, latency, and the primary metric on labelled traffic through ``workbench feedback``).
In-process on real Predictors, and through the service's ASGI app (hot swap on, the default: ``/predict``,
``/docs.json`` and the body limit follow the champion); the pointer and the ledger of the suite's BentoML home are
restored after every test. Against a real ``bentoml serve``: tests/serving/test_deploy_live.py."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
import warnings
from pathlib import Path

import pytest

from workbench.serving.deploy import (
    ChallengerSpec,
    Deployment,
    LabelledSummary,
    Rules,
    Summary,
    bucket,
    judge,
    judge_metric,
    roll_back_challenger,
)
from workbench.serving.predictor import Predictor

from .conftest import load_service_module

RULES = {"window_s": 30.0, "min_requests": 20}  # short, for the challengers' monitoring.json
FLOAT32_BATCH = 1e-6  # a probability scored in a batch vs alone: float32 rounding of the trees' sum (3e-8 seen)


# ----------------------------------------------------------------------------------------------- fixtures
def _clone(serving_package, *, deployment: dict | None = None, tamper: bool = False,
           serving: dict | None = None) -> tuple[str, str]:
    """A new version of the suite's package (same files; ``monitoring.json`` with a ``deployment`` section;
    ``serving``: keys of serving.json replaced); ``tamper``: serving.json altered after registration. Returns
    (tag, package_sha256)."""
    import bentoml

    from workbench.registry.store import save_model_package

    src = serving_package.path
    files: dict = {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*")
                   if p.is_file() and p.name not in ("package.json", "model.yaml")}
    if deployment is not None:
        files["monitoring.json"] = {**json.loads(files["monitoring.json"]), "deployment": deployment}
    if serving is not None:
        files["serving.json"] = {**json.loads(files["serving.json"]), **serving}
    # a model name of its own: other tests resolve "<the suite's model>:latest"
    tag = save_model_package(files, name="workbench-test-deploy", labels={"stage": "certified"},
                             metadata={"run_id": "test-run", "onnx_sha256": serving_package.sha256})
    stored = bentoml.models.get(tag)
    if tamper:
        p = Path(stored.path) / "serving.json"
        p.write_text(p.read_text().replace('"threshold": 0.5', '"threshold": 0.01'))
    return tag, stored.info.metadata["package_sha256"]


@pytest.fixture(scope="module")
def models(serving_package):
    """champion A (the suite's package), challenger B (rules: 30 s window, 20 requests), broken C (altered)."""
    b, b_sha = _clone(serving_package, deployment=RULES)
    c, c_sha = _clone(serving_package, tamper=True)
    return {"A": serving_package.tag, "B": b, "B_sha": b_sha, "C": c, "C_sha": c_sha}


@pytest.fixture(autouse=True)
def restore_registry(serving_home):
    """The session's production pointer and ledger, as they were before the test."""
    from workbench.registry.ledger import ledger_path
    from workbench.serving.pointer import pointer_path

    saved = {p: (p.read_bytes() if p.exists() else None) for p in (pointer_path(), ledger_path())}
    yield
    for p, data in saved.items():
        if data is None:
            p.unlink(missing_ok=True)
        else:
            _atomic(p, data)


def _atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    tmp.write_bytes(data)
    os.replace(tmp, path)  # a new inode, as the registry's atomic write


def write_pointer(tag: str, *, package_sha256: str | None = None, challenger: dict | None = None) -> dict:
    from workbench.serving.pointer import pointer_path

    ptr = {"tag": tag, "run_id": "test-run", "brief": "adult"}
    if package_sha256:
        ptr["package_sha256"] = package_sha256
    if challenger:
        ptr["challenger"] = challenger
    _atomic(pointer_path(), json.dumps(ptr).encode())
    return ptr


def load(serving_package, tag: str) -> Predictor:
    import bentoml

    return Predictor.load(bentoml.models.get(tag).path, tag=tag)


def body_of(serving_package, i: int = 0) -> bytes:
    return json.dumps(serving_package.records[i % len(serving_package.records)]).encode()


def answered_by(reply) -> str:
    assert reply.status == 200, reply.body
    return json.loads(reply.body)["model_version"]


class Recorder:
    """Stands in for the service's Prometheus counters."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []

    def __getattr__(self, name):
        return lambda *args: self.calls.append((name, *args))


def behaving(**by_tag):
    """A loader that loads and verifies as the service does, then gives some tags a scoring behaviour
    (``"raise"`` or a number of seconds to sleep per row scored: a shadow batch of n rows sleeps n times)."""
    def loader(ref):
        p = Predictor.load(ref.path, tag=ref.tag, certified=ref.certified, package_certified=ref.package_certified)
        how, run = by_tag.get(ref.tag), p._run
        if how == "raise":
            def broken(feeds):
                raise RuntimeError("deliberately broken challenger")
            p._run = broken
        elif how is not None:
            p._run = lambda feeds: (time.sleep(how * len(next(iter(feeds.values())))), run(feeds))[1]
        return p
    return loader


# ----------------------------------------------------------------------------------------------- hot swap
def test_pointer_change_swaps_without_restart_and_requests_in_flight_finish_on_their_model(serving_package, models):
    metrics = Recorder()
    a = load(serving_package, models["A"])
    dep = Deployment(a, metrics=metrics, on_rollback=None)
    write_pointer(models["A"])
    dep.poll()
    assert dep.tag == models["A"] and dep.counts["swaps"] == 0  # the pointer names what serves: nothing to do
    gate, started, out = threading.Event(), threading.Event(), {}
    run = a._run

    def held(feeds):  # a request in flight on A while the pointer moves
        started.set()
        assert gate.wait(10)
        return run(feeds)

    a._run = held
    t = threading.Thread(target=lambda: out.setdefault("reply", dep.handle(body_of(serving_package), request_id="f")))
    t.start()
    assert started.wait(10)
    write_pointer(models["B"], package_sha256=models["B_sha"])
    assert dep.check_pointer() and dep.tag == models["B"]
    assert answered_by(dep.handle(body_of(serving_package, 1))) == models["B"]  # new requests: the new model
    gate.set()
    t.join(10)
    assert answered_by(out["reply"]) == models["A"]  # the one in flight finished on the model it started with
    assert dep.counts["swaps"] == 1 and ("swapped", models["B"], "champion") in metrics.calls
    assert not dep.check_pointer()  # unchanged file: a stat, nothing read


def test_a_model_failing_verification_is_never_swapped_in(serving_package, models):
    metrics = Recorder()
    dep = Deployment(load(serving_package, models["A"]), metrics=metrics, on_rollback=None)
    write_pointer(models["C"], package_sha256=models["C_sha"])  # serving.json altered after registration
    dep.poll()
    assert dep.tag == models["A"] and dep.counts["swap_failures"] == 1
    assert "serving.json" in dep.last_failure and str(serving_package.home) not in dep.last_failure
    assert ("swap_failed", models["C"], "champion", "package") in metrics.calls
    assert answered_by(dep.handle(body_of(serving_package))) == models["A"]
    # a good package under a certificate that is not its own: refused too
    write_pointer(models["B"], package_sha256="0" * 64)
    dep.poll()
    assert dep.tag == models["A"] and dep.counts["swap_failures"] == 2
    # a challenger that fails verification is not served; the champion goes on
    write_pointer(models["A"], challenger={"tag": models["C"], "package_sha256": models["C_sha"], "mode": "canary",
                                           "percent": 100})
    dep.poll()
    assert dep.challenger is None and dep.counts["swap_failures"] == 3
    assert answered_by(dep.handle(body_of(serving_package))) == models["A"]


@pytest.fixture()
def hot_swap_service(serving_package, models, monkeypatch):
    """bento/service.py imported with the default settings (hot swap on), its ASGI app under TestClient."""
    from prometheus_client import REGISTRY

    from workbench.serving import observe

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from starlette.testclient import TestClient

    write_pointer(models["A"])
    monkeypatch.delenv("WORKBENCH_HOT_SWAP", raising=False)
    monkeypatch.setenv("WORKBENCH_POINTER_POLL_S", "0.05")
    monkeypatch.setenv("WORKBENCH_PREDICTION_LOG", "off")
    # counters an earlier app in this process created and unregistered (test_asgi.py) are created afresh
    for key, collector in list(observe._COUNTERS.items()):
        if collector not in REGISTRY._collector_to_names:
            del observe._COUNTERS[key]
    module = load_service_module("workbench_bento_service_hot_swap")
    assert module.HOT_SWAP and module.FOLLOW_POINTER
    before = set(REGISTRY._collector_to_names)
    try:
        with TestClient(module.Predict.to_asgi()) as client:
            yield module, client
    finally:
        instance = module.SLOT.instance
        if instance is not None and isinstance(instance.predictor, Deployment):
            instance.predictor.stop()
        for collector in set(REGISTRY._collector_to_names) - before:  # as test_asgi.py: one app per process
            REGISTRY.unregister(collector)


def _wait(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_the_service_follows_the_pointer_with_hot_swap_on(hot_swap_service, serving_package, models):
    module, client = hot_swap_service
    rec = serving_package.records[0]
    assert client.post("/predict", json=rec).json()["model_version"] == models["A"]
    write_pointer(models["C"], package_sha256=models["C_sha"])  # broken: refused, A goes on serving
    dep = module.SLOT.instance.predictor
    assert _wait(lambda: dep.counts["swap_failures"] >= 1)
    assert client.post("/predict", json=rec).json()["model_version"] == models["A"]
    assert client.get("/readyz").status_code == 200
    write_pointer(models["B"], package_sha256=models["B_sha"])
    assert _wait(lambda: client.post("/predict", json=rec).json()["model_version"] == models["B"])
    # a shadow challenger named by the pointer: the champion answers, the shadow scores after the answer is out
    write_pointer(models["B"], package_sha256=models["B_sha"],
                  challenger={"tag": models["A"], "mode": "shadow"})
    assert _wait(lambda: dep.challenger is not None)
    for _ in range(3):
        r = client.post("/predict", json=rec, headers={"X-Caller-Key": "k1"})
        assert r.status_code == 200 and r.json()["model_version"] == models["B"]
    assert _wait(lambda: dep.counts["shadow_scored"] >= 3)
    # on /metrics (the process's Prometheus registry, which BentoML's /metrics serves under `bentoml serve`)
    from prometheus_client import REGISTRY

    assert REGISTRY.get_sample_value("workbench_model_swap_failures_total", {
        "model_version": models["C"], "role": "champion", "reason": "package"}) == 1
    assert REGISTRY.get_sample_value("workbench_model_swaps_total",
                                     {"model_version": models["B"], "role": "champion"}) == 1


def test_docs_and_the_body_limit_follow_the_champion_after_a_hot_swap(hot_swap_service, serving_package, models,
                                                                      multiclass_package):
    module, client = hot_swap_service
    dep = module.SLOT.instance.predictor

    def doc() -> dict:
        r = client.get("/docs.json")
        assert r.status_code == 200
        return r.json()

    def parts(d: dict) -> tuple[set, dict, dict]:
        post = d["paths"]["/predict"]["post"]
        body = post["requestBody"]["content"]["application/json"]
        fields = set(body["schema"]["oneOf"][0]["properties"])
        answer = post["responses"]["200"]["content"]["application/json"]["schema"]
        return fields, body["examples"]["record"]["value"], answer

    first = doc()
    fields, example, answer = parts(first)
    assert first["info"]["version"] == models["A"] and "age" in fields and set(example) == fields
    assert "probability" in json.dumps(answer)
    # a model of another task and contract: the document is now the multiclass model's
    write_pointer(multiclass_package.tag)
    assert _wait(lambda: dep.tag == multiclass_package.tag)
    swapped = doc()
    fields, example, answer = parts(swapped)
    assert swapped["info"]["version"] == multiclass_package.tag
    assert fields == {"size", "weight", "colour", "region"} and set(example) == fields
    assert "probabilities" in json.dumps(answer) and "probability\"" not in json.dumps(answer)
    # the example is the new model's typical record (its serving.json / reference profile), and it is answered
    assert example["colour"] in multiclass_package.serving["inputs"][2]["categories"]
    r = client.post("/predict", json=example)
    assert r.status_code == 200 and r.json()["model_version"] == multiclass_package.tag
    # back to A (cached per champion): A's document again
    write_pointer(models["A"])
    assert _wait(lambda: dep.tag == models["A"])
    assert doc() == first
    # a champion with a smaller body limit: the edge's 413 follows it, and /docs.json says so
    small, small_sha = _clone(serving_package, serving={"limits": {"max_batch_rows": 10_000,
                                                                   "max_body_bytes": 4096}})
    write_pointer(small, package_sha256=small_sha)
    assert _wait(lambda: dep.tag == small)
    assert "4096 bytes" in doc()["paths"]["/predict"]["post"]["responses"]["413"]["description"]
    r = client.post("/predict", content=b" " * 5000, headers={"Content-Type": "application/json"})
    assert r.status_code == 413 and "the limit is 4096" in r.json()["error"]


def test_hot_swap_is_the_default_and_pinned_models_stay_pinned(monkeypatch, serving_package, models):
    from workbench.serving.predictor import PIN_ENV

    write_pointer(models["A"])
    monkeypatch.delenv("WORKBENCH_HOT_SWAP", raising=False)
    monkeypatch.delenv(PIN_ENV, raising=False)
    module = load_service_module("workbench_bento_service_default")
    assert module.HOT_SWAP and module.FOLLOW_POINTER and PIN_ENV not in os.environ  # workers resolve for themselves
    # WORKBENCH_HOT_SWAP=0: the old rule, one model per server until restart (pinned for the workers)
    monkeypatch.setenv("WORKBENCH_HOT_SWAP", "0")
    module = load_service_module("workbench_bento_service_pinned")
    assert module.HOT_SWAP is False and module.FOLLOW_POINTER is False
    assert json.loads(os.environ[PIN_ENV])["tag"] == models["A"]
    monkeypatch.delenv(PIN_ENV)
    # $WORKBENCH_MODEL_TAG, hot swap on: that model is pinned, the pointer is not followed
    monkeypatch.delenv("WORKBENCH_HOT_SWAP")
    monkeypatch.setenv("WORKBENCH_MODEL_TAG", models["B"])
    module = load_service_module("workbench_bento_service_tag")
    assert module.HOT_SWAP and not module.FOLLOW_POINTER and module.MODEL.tag == models["B"]
    assert json.loads(os.environ[PIN_ENV])["tag"] == models["B"]
    monkeypatch.delenv(PIN_ENV)


# ----------------------------------------------------------------------------------------------- canary
def test_canary_split_is_within_two_points_and_sticky(serving_package, models):
    dep = Deployment(load(serving_package, models["A"]), on_rollback=None)
    dep.apply({"tag": models["A"], "challenger": {"tag": models["B"], "package_sha256": models["B_sha"],
                                                  "mode": "canary", "percent": 25}})
    assert dep.challenger is not None and dep.challenger.tag == models["B"]
    body = body_of(serving_package)
    n = 10_000
    by_b = sum(answered_by(dep.handle(body)) == models["B"] for _ in range(n))
    assert abs(100 * by_b / n - 25) <= 2, by_b
    # sticky: one caller key, or one request id, always lands on the same model
    for key in ("alice", "bob", "carol"):
        assert len({answered_by(dep.handle(body, caller_key=key)) for _ in range(20)}) == 1
    assert len({answered_by(dep.handle(body, request_id="retry-7")) for _ in range(20)}) == 1
    assert (bucket("alice") < 2500) == (answered_by(dep.handle(body, caller_key="alice")) == models["B"])


# ----------------------------------------------------------------------------------------------- shadow
def test_shadow_logs_both_predictions_with_the_request_id(serving_package, models, tmp_path):
    from workbench.monitoring.log import PredictionLog, read_log

    def observe(p):
        p.log = PredictionLog(p.tag, root=tmp_path)

    a = load(serving_package, models["A"])
    observe(a)
    dep = Deployment(a, prepare=observe, on_rollback=None)
    try:
        dep.apply({"tag": models["A"], "challenger": {"tag": models["B"], "package_sha256": models["B_sha"],
                                                      "mode": "shadow"}})
        rids = [f"shadow-{i}" for i in range(30)]
        for i, rid in enumerate(rids):
            assert answered_by(dep.handle(body_of(serving_package, i), request_id=rid)) == models["A"]
        assert dep.drain()
    finally:
        dep.stop()
    champ = read_log(tmp_path, model_version=models["A"])
    shadow = read_log(tmp_path, model_version=models["B"])
    assert sorted(champ["request_id"].to_list()) == sorted(shadow["request_id"].to_list()) == sorted(rids)
    assert set(champ["role"]) == {"champion"} and set(shadow["role"]) == {"shadow"}
    assert set(champ["answered_by"]) == set(shadow["answered_by"]) == {models["A"]}
    # scored in a batch, a probability may differ from the one-row run in float32 rounding (3e-8 seen)
    assert shadow["latency_ms"].min() >= 0 and champ["probability"].to_list() == pytest.approx(
        shadow.sort(by=pl_order(champ))["probability"].to_list(), abs=FLOAT32_BATCH)


def pl_order(champ):
    """The champion's request order, to line the shadow's rows up with it."""
    import polars as pl

    order = {r: i for i, r in enumerate(champ["request_id"].to_list())}
    return pl.col("request_id").replace_strict(order, return_dtype=pl.Int64)


def _log_lines(root, tag) -> list[dict]:
    from workbench.monitoring.log import list_segments

    return [json.loads(line) for seg in list_segments(root, tag) for line in seg.read_text().splitlines()]


def _same(batched: list[dict], alone: list[dict], drop: tuple = ("ts", "latency_ms")) -> bool:
    """Log lines or answers equal but for ``drop`` and the probabilities' float32 rounding (onnxruntime sums a
    batch's trees in another order than one row's)."""
    def split(x: dict) -> tuple[dict, list]:
        rest = {k: v for k, v in x.items() if k not in (*drop, "probability", "predictions")}
        preds = x.get("predictions")
        probs = x.get("probability") or [p["probability"] for p in preds or []]
        if preds:
            rest["predictions"] = [{k: v for k, v in p.items() if k != "probability"} for p in preds]
        return rest, probs

    a, b = [split(x) for x in batched], [split(x) for x in alone]
    assert [x[0] for x in a] == [x[0] for x in b]
    assert [p for x in a for p in x[1]] == pytest.approx([p for x in b for p in x[1]], abs=FLOAT32_BATCH)
    return True


def test_shadow_requests_are_scored_in_batches_one_log_line_each_as_handle_writes_it(serving_package, models,
                                                                                      tmp_path):
    """40 answered requests on an event loop: nothing scored until 32 are queued, those 32 in one session run, the
    last 8 by the delayed flush in a second; the challenger's log has each request's line, as ``handle`` writes
    it one at a time."""
    import asyncio

    from workbench.monitoring.log import PredictionLog

    runs: list[int] = []

    def observe(p):
        p.log = PredictionLog(p.tag, root=tmp_path / "batched")
        if p.tag == models["B"]:
            run = p._run
            p._run = lambda feeds: (runs.append(len(next(iter(feeds.values())))), run(feeds))[1]

    a = load(serving_package, models["A"])
    observe(a)
    dep = Deployment(a, prepare=observe, on_rollback=None, shadow_batch=32, shadow_delay_s=0.02)
    rids = [f"batch-{i}" for i in range(40)]
    scored_before: list[int] = []

    async def serve():
        for i, rid in enumerate(rids):
            assert answered_by(dep.handle(body_of(serving_package, i), request_id=rid)) == models["A"]
            scored_before.append(dep.counts["shadow_scored"])
            dep.after_reply()
        for _ in range(500):  # the last 8: the flush due 20 ms after the first of them
            if dep.counts["shadow_scored"] == len(rids):
                break
            await asyncio.sleep(0.01)

    try:
        dep.apply({"tag": models["A"], "challenger": {"tag": models["B"], "package_sha256": models["B_sha"],
                                                      "mode": "shadow"}})
        asyncio.run(serve())
    finally:
        dep.stop()
    assert scored_before[:32] == [0] * 32 and scored_before[32:] == [32] * 8
    assert runs == [32, 8] and dep.counts["shadow_scored"] == 40 and dep.counts["challenger_errors"] == 0
    window = dep._state.window.summary(60.0)  # one outcome per request, none failed
    assert (window.n, window.errors, dep.counts["shadow_dropped"]) == (40, 0, 0)
    batched = _log_lines(tmp_path / "batched", models["B"])
    assert [x["request_id"] for x in batched] == rids
    assert all(x["role"] == ["shadow"] and x["answered_by"] == [models["A"]] and x["latency_ms"][0] >= 0
               for x in batched)
    # the same requests through handle, one at a time: the same lines (but their time)
    alone = load(serving_package, models["B"])
    alone.log = PredictionLog(alone.tag, root=tmp_path / "alone")
    for i, rid in enumerate(rids):
        alone.handle(body_of(serving_package, i), request_id=rid,
                     log_fields={"role": "shadow", "answered_by": models["A"]})
    alone.log.close()
    assert _same(batched, _log_lines(tmp_path / "alone", models["B"]))


def test_handle_many_answers_each_body_as_handle_does_and_a_bad_one_alone(serving_package, models, tmp_path):
    from workbench.monitoring.log import PredictionLog

    records = serving_package.records
    bad = {**records[3]}
    bad.pop(next(iter(bad)))  # a field missing: 422 naming it
    bodies = [body_of(serving_package, i) for i in range(6)] + [json.dumps(bad).encode()]
    bodies += [json.dumps([records[7], records[8]]).encode(), b"not json", body_of(serving_package, 9)]
    rids = [f"many-{i}" for i in range(len(bodies))]
    fields = {"role": "shadow", "answered_by": models["A"]}
    many, one = load(serving_package, models["B"]), load(serving_package, models["B"])
    many.log = PredictionLog(many.tag, root=tmp_path / "many")
    one.log = PredictionLog(one.tag, root=tmp_path / "one")
    scored: list[tuple] = []
    many.on_scored = lambda n, flags: scored.append((n, flags))
    replies = many.handle_many(bodies, rids, log_fields=fields)
    alone = [one.handle(b, request_id=r, log_fields=fields) for b, r in zip(bodies, rids, strict=True)]
    assert [r.status for r in replies] == [200] * 6 + [422, 200, 400, 200]
    assert [(r.status, r.request_id) for r in replies] == [(r.status, r.request_id) for r in alone]
    assert [r.body for r in replies if r.status != 200] == [r.body for r in alone if r.status != 200]
    assert _same([json.loads(r.body) for r in replies], [json.loads(r.body) for r in alone], drop=())
    assert "errors" in json.loads(replies[6].body) and replies[6].request_id == "many-6"
    many.log.close()
    one.log.close()
    lines = _log_lines(tmp_path / "many", models["B"])
    assert [x["request_id"] for x in lines] == [r for r, rep in zip(rids, replies, strict=True) if rep.status == 200]
    assert lines[6]["n"] == 2 and [n for n, _ in scored] == [1] * 6 + [2, 1]
    assert _same(lines, _log_lines(tmp_path / "one", models["B"]))


def test_a_full_shadow_queue_drops_and_counts_never_slowing_the_champion(serving_package, models):
    metrics = Recorder()
    dep = Deployment(load(serving_package, models["A"]), metrics=metrics, on_rollback=None,
                     loader=behaving(**{models["B"]: 0.05}), shadow_queue=2).start(watch=False)
    try:
        dep.apply({"tag": models["A"], "challenger": {"tag": models["B"], "mode": "shadow"}})
        t0 = time.perf_counter()
        for i in range(20):
            assert answered_by(dep.handle(body_of(serving_package, i))) == models["A"]
        assert time.perf_counter() - t0 < 0.5  # 20 x 50 ms of shadow work did not land on the answers
    finally:
        dep.stop()
    assert dep.counts["shadow_dropped"] >= 10 and ("shadow_dropped", models["B"]) in metrics.calls


# ----------------------------------------------------------------------------------------------- rollback
def test_judge_rules():
    rules = Rules(window_s=60, min_requests=20, error_ratio=2, latency_ratio=2)
    ok = Summary(100, 0, 1.0)
    assert judge(ok, Summary(19, 19, 100.0), rules) is None  # too few requests to judge
    assert judge(ok, Summary(100, 1, 1.5), rules) is None  # 1% errors: within 2 x the floor (1 / 20 = 5%)
    assert judge(ok, Summary(100, 11, 1.0), rules)[0] == "errors"
    assert judge(Summary(100, 10, 1.0), Summary(100, 19, 1.0), rules) is None  # 19% < 2 x 10%
    assert judge(Summary(100, 10, 1.0), Summary(100, 21, 1.0), rules)[0] == "errors"
    assert judge(Summary(100, 0, 0.05), Summary(100, 0, 0.5), rules) is None  # 10x, but within the 5 ms floor
    assert judge(Summary(100, 0, 2.0), Summary(100, 0, 30.0), rules)[0] == "latency"


def test_rules_come_from_the_challengers_monitoring_json(serving_package, models):
    import bentoml

    assert Rules.for_package(bentoml.models.get(models["B"]).path) == Rules(window_s=30.0, min_requests=20)
    assert Rules.for_package(serving_package.path) == Rules()  # no deployment section: the brief's defaults


def _stage(tag: str, to: str, **extra) -> None:
    from workbench.registry import ledger

    for action in ("certified", "staged", to):
        ledger.record(action, tag, reason="test", by="test", **(extra if action == to else {}))


def test_a_broken_canary_is_rolled_back_automatically_and_costs_no_failed_request(serving_package, models):
    from workbench.registry import ledger
    from workbench.serving.pointer import production_pointer

    _stage(models["B"], "canary", percent=50)
    write_pointer(models["A"], challenger={"tag": models["B"], "package_sha256": models["B_sha"], "mode": "canary",
                                           "percent": 50})
    metrics = Recorder()
    dep = Deployment(load(serving_package, models["A"]), metrics=metrics, loader=behaving(**{models["B"]: "raise"}),
                     poll_s=0.05).start()
    try:
        assert _wait(lambda: dep.challenger is not None, 5)
        t0 = time.monotonic()
        for i in range(200):  # every request answered (the champion answers for the failing canary)
            assert answered_by(dep.handle(body_of(serving_package, i))) == models["A"]
            if dep.challenger is None:
                break
        assert _wait(lambda: dep.challenger is None, 5)
        assert time.monotonic() - t0 < RULES["window_s"]
    finally:
        dep.stop()
    assert dep.counts["rollbacks"] == 1 and dep.counts["challenger_errors"] >= RULES["min_requests"]
    assert any(c[0] == "rolled_back" and c[1:] == (models["B"], "errors") for c in metrics.calls)
    ptr = production_pointer()
    assert ptr["tag"] == models["A"] and "challenger" not in ptr
    last = ledger.read_ledger()[-1]
    assert (last["action"], last["tag"], last["from_stage"], last["to_stage"]) == ("staged", models["B"], "canary",
                                                                                   "staging")
    assert last["automatic"] is True and last["trigger"] == "errors" and "error rate" in last["reason"]
    assert ledger.stage_of(models["B"]) == "staging"
    assert "error rate" in dep.last_rollback


def test_a_slow_shadow_is_rolled_back_and_a_healthy_one_is_not(serving_package, models):
    from workbench.serving.pointer import production_pointer

    shadow = {"tag": models["B"], "package_sha256": models["B_sha"], "mode": "shadow"}
    for how, expected in ((None, None), (0.02, "latency")):
        write_pointer(models["A"], challenger=shadow)  # no ledger lines: the pointer is cleared all the same
        loader = behaving(**({models["B"]: how} if how else {}))
        dep = Deployment(load(serving_package, models["A"]), loader=loader).start(watch=False)
        try:
            dep.check_pointer()
            assert dep.challenger is not None
            # healthy: 200 requests, so one scheduling stall on a busy machine is not the window's p99
            for i in range(25 if how else 200):
                assert answered_by(dep.handle(body_of(serving_package, i))) == models["A"]
            assert dep.drain()
            reason = dep.judge()
        finally:
            dep.stop()
        if expected is None:
            assert reason is None and dep.challenger is not None and "challenger" in production_pointer()
        else:
            assert reason and "p99 latency" in reason and dep.challenger is None
            assert "challenger" not in production_pointer()
            dep.check_pointer()  # the cleared pointer keeps it out
            assert dep.challenger is None and dep.counts["rollbacks"] == 1


# ----------------------------------------------------------------------------------------------- the metric
@pytest.mark.parametrize(("task", "primary", "champion", "worse", "within"), [
    ("binary_classification", "pr_auc", 0.80, 0.75, 0.77),      # higher is better: 0.75 < 0.80 x 0.95
    ("binary_classification", "log_loss", 0.40, 0.43, 0.41),    # a loss: 0.43 > 0.40 x 1.05
    ("multiclass_classification", "macro_f1", 0.60, 0.56, 0.58),
    ("multiclass_classification", "log_loss", 0.90, 0.96, 0.93),
    ("regression", "mae", 2.00, 2.20, 2.05),
    ("regression", "r2", -0.50, -0.60, -0.52),                  # relative to |champion|
])
def test_judge_metric_is_relative_and_follows_the_metrics_direction(task, primary, champion, worse, within):
    rules = Rules(metric_drop=0.05, min_labels=200)
    champ = LabelledSummary(500, champion)
    assert judge_metric(champ, LabelledSummary(500, worse), task=task, primary=primary, rules=rules)[0] == "metric"
    assert judge_metric(champ, LabelledSummary(500, within), task=task, primary=primary, rules=rules) is None
    # better than the champion (the other way round) never trips
    better = champion + (champion - worse)
    assert judge_metric(champ, LabelledSummary(500, better), task=task, primary=primary, rules=rules) is None
    # too few labels for either model: not judged
    assert judge_metric(LabelledSummary(199, champion), LabelledSummary(500, worse), task=task, primary=primary,
                        rules=rules) is None
    assert judge_metric(champ, LabelledSummary(199, worse), task=task, primary=primary, rules=rules) is None
    # an undefined metric (one class in the labels) is no evidence
    assert judge_metric(champ, LabelledSummary(500, float("nan")), task=task, primary=primary, rules=rules) is None
    reason = judge_metric(champ, LabelledSummary(500, worse), task=task, primary=primary, rules=rules)[1]
    assert primary in reason and "500 labelled rows" in reason and "5%" in reason


def test_a_challenger_rolled_back_elsewhere_shows_on_metrics_with_its_trigger(serving_package, models):
    """A rollback another worker or `workbench feedback` wrote reaches a worker as a pointer without the
    challenger: it drops it and sets the gauge from the ledger (trigger, count)."""
    from workbench.registry import ledger

    _stage(models["B"], "shadow")
    spec = ChallengerSpec(models["B"], models["B_sha"], "shadow")
    write_pointer(models["A"], challenger={"tag": models["B"], "package_sha256": models["B_sha"], "mode": "shadow"})
    metrics = Recorder()
    dep = Deployment(load(serving_package, models["A"]), metrics=metrics, on_rollback=None)
    dep.check_pointer()
    assert dep.challenger is not None
    line = roll_back_challenger(spec, "primary metric dropped (test)", trigger="metric", by="test")
    assert line["automatic"] is True and line["trigger"] == "metric" and line["to_stage"] == "staging"
    assert roll_back_challenger(spec, "again", trigger="metric") is None  # the pointer no longer names it
    dep.check_pointer()
    assert dep.challenger is None and dep.counts["rollbacks_seen"] == 1 and dep.counts["rollbacks"] == 0
    assert ("challenger_rolled_back", models["B"], "metric", 1) in metrics.calls
    # taken out by a person (not automatic): dropped, nothing counted
    ledger.record("shadow", models["B"], reason="test", by="test")
    write_pointer(models["A"], challenger={"tag": models["B"], "package_sha256": models["B_sha"], "mode": "shadow"})
    dep.check_pointer()
    ledger.record("retired", models["B"], reason="test", by="test")
    write_pointer(models["A"])
    dep.check_pointer()
    assert dep.challenger is None and dep.counts["rollbacks_seen"] == 1


@pytest.fixture()
def labelled_canary(serving_package, models, tmp_path, monkeypatch):
    """A 50% canary of D (min_labels 20) beside A, in process, with both models logging to ``tmp_path/log``; the
    label store in ``tmp_path/labels``. Yields (deployment, metrics recorder, log dir, D's tag)."""
    from workbench.monitoring.log import PredictionLog

    d, d_sha = _clone(serving_package, deployment={**RULES, "min_labels": 20, "metric_drop": 0.05})
    monkeypatch.setenv("WORKBENCH_LABELS_DIR", str(tmp_path / "labels"))
    _stage(d, "canary", percent=50)
    write_pointer(models["A"], challenger={"tag": d, "package_sha256": d_sha, "mode": "canary", "percent": 50})
    logs = tmp_path / "log"

    def observe(p):
        p.log = PredictionLog(p.tag, root=logs)

    a = load(serving_package, models["A"])
    observe(a)
    metrics = Recorder()
    dep = Deployment(a, prepare=observe, metrics=metrics, on_rollback=None)
    dep.check_pointer()
    assert dep.challenger is not None and dep.challenger.tag == d
    for i in range(160):
        assert dep.handle(body_of(serving_package, i), request_id=f"lab-{i}").status == 200
    for p in (dep.champion, dep.challenger):
        p.log.close()
    yield dep, metrics, logs, d
    dep.stop()


def _labels_for(logs, tags: dict[str, bool], path: Path) -> Path:
    """A labels file for every logged row of ``tags``: the label the model answered (True) or the other one."""
    import polars as pl

    from workbench.feedback import read_logged

    frames = []
    for tag, right in tags.items():
        df = read_logged(logs, model_version=tag).select("request_id", "row", "label")
        other = pl.when(pl.col("label") == ">50K").then(pl.lit("<=50K")).otherwise(pl.lit(">50K"))
        frames.append(df.select("request_id", "row", (pl.col("label") if right else other).alias("income")))
    pl.concat(frames).write_csv(path)
    return path


def test_feedback_rolls_a_worse_canary_back_on_its_primary_metric(labelled_canary, serving_package, models,
                                                                  tmp_path, caplog):
    import logging

    from typer.testing import CliRunner

    from workbench.cli import app
    from workbench.feedback import labelled_metrics, stored_labels
    from workbench.registry import ledger
    from workbench.serving.pointer import production_pointer

    dep, metrics, logs, d = labelled_canary
    a = models["A"]
    # the champion's answers were right, the canary's wrong: its primary metric is far below the champion's
    labels = _labels_for(logs, {a: True, d: False}, tmp_path / "labels.csv")
    with caplog.at_level(logging.ERROR, logger="workbench.feedback"):
        res = CliRunner().invoke(app, ["feedback", str(labels), "--log-dir", str(logs), "--out", str(tmp_path / "out")])
    assert res.exit_code == 20, res.output
    assert "rolled back" in res.output and "pr_auc" in res.output
    assert any("automatic rollback of challenger" in r.getMessage() for r in caplog.records)
    ptr = production_pointer()
    assert ptr["tag"] == a and "challenger" not in ptr
    last = ledger.read_ledger()[-1]
    assert (last["action"], last["tag"], last["from_stage"], last["to_stage"]) == ("staged", d, "canary", "staging")
    assert last["automatic"] is True and last["trigger"] == "metric" and "pr_auc" in last["reason"]
    report = json.loads((tmp_path / "out" / "challenger.json").read_text())
    assert report["rolled_back"] and report["rows"]["champion"] >= 20 and report["rows"]["challenger"] >= 20
    assert report["values"]["champion"] > report["values"]["challenger"]
    assert (tmp_path / "out" / "feedback.json").exists()  # the champion's own live report, as without a challenger
    # a running service drops the challenger on its next pointer check, and /metrics says why
    dep.check_pointer()
    assert dep.challenger is None and ("challenger_rolled_back", d, "metric", 1) in metrics.calls
    # the labels were kept: `workbench compare` gets each model's metrics from them
    assert stored_labels().height == report["rows"]["champion"] + report["rows"]["challenger"]
    m = labelled_metrics(a, d, log_dir=logs)
    assert m["labelled_rows"] == report["rows"] and m["champion"]["pr_auc"] == report["values"]["champion"]


def test_feedback_keeps_a_canary_that_is_as_good_and_waits_for_enough_labels(labelled_canary, models, tmp_path):
    import polars as pl
    from typer.testing import CliRunner

    from workbench.cli import app
    from workbench.serving.pointer import production_pointer

    dep, metrics, logs, d = labelled_canary
    a = models["A"]
    labels = _labels_for(logs, {a: True, d: True}, tmp_path / "all.csv")
    few = pl.read_csv(labels)
    few.filter(pl.col("request_id").is_in(few["request_id"].unique().sort().head(12).to_list())).write_csv(
        tmp_path / "few.csv")
    runner = CliRunner()
    res = runner.invoke(app, ["feedback", str(tmp_path / "few.csv"), "--log-dir", str(logs), "--out",
                              str(tmp_path / "o1")])
    assert res.exit_code in (0, 10), res.output
    assert "not judged yet" in res.output and production_pointer()["challenger"]["tag"] == d
    # a labelled request id neither model logged: refused, naming the file and column
    pl.DataFrame({"request_id": ["nobody"], "income": [">50K"]}).write_csv(tmp_path / "bad.csv")
    res = runner.invoke(app, ["feedback", str(tmp_path / "bad.csv"), "--log-dir", str(logs)])
    assert res.exit_code == 2 and "not in the prediction log" in res.output
    # every label now (the first batch is kept and counted once): as good as the champion, kept
    res = runner.invoke(app, ["feedback", str(labels), "--log-dir", str(logs), "--out", str(tmp_path / "o2")])
    assert res.exit_code in (0, 10), res.output
    report = json.loads((tmp_path / "o2" / "challenger.json").read_text())
    assert report["trigger"] is None and not report["rolled_back"] and min(report["rows"].values()) >= 20
    assert report["rows"]["champion"] + report["rows"]["challenger"] == pl.read_csv(labels).height
    assert production_pointer()["challenger"]["tag"] == d
