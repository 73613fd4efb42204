"""One service, two models (:mod:`workbench.serving.deploy`): hot swap from the pointer, shadow, canary, automatic
rollback. In-process on real Predictors (and once through the service's ASGI app with ``WORKBENCH_HOT_SWAP=1``);
the pointer and the ledger of the suite's BentoML home are restored after every test."""

from __future__ import annotations

import json
import os
import threading
import time
import uuid
import warnings
from pathlib import Path

import pytest

from workbench.serving.deploy import Deployment, Rules, Summary, bucket, judge
from workbench.serving.predictor import Predictor

from .conftest import load_service_module

RULES = {"window_s": 30.0, "min_requests": 20}  # short, for the challengers' monitoring.json


# ----------------------------------------------------------------------------------------------- fixtures
def _clone(serving_package, *, deployment: dict | None = None, tamper: bool = False) -> tuple[str, str]:
    """A new version of the suite's package (same files; ``monitoring.json`` with a ``deployment`` section);
    ``tamper``: serving.json altered after registration. Returns (tag, package_sha256)."""
    import bentoml

    from workbench.registry.store import save_model_package

    src = serving_package.path
    files: dict = {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*")
                   if p.is_file() and p.name not in ("package.json", "model.yaml")}
    if deployment is not None:
        files["monitoring.json"] = {**json.loads(files["monitoring.json"]), "deployment": deployment}
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
    (``"raise"`` or a number of seconds to sleep per call)."""
    def loader(ref):
        p = Predictor.load(ref.path, tag=ref.tag, certified=ref.certified, package_certified=ref.package_certified)
        how, run = by_tag.get(ref.tag), p._run
        if how == "raise":
            def broken(feeds):
                raise RuntimeError("deliberately broken challenger")
            p._run = broken
        elif how is not None:
            p._run = lambda feeds: (time.sleep(how), run(feeds))[1]
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
    """bento/service.py imported with WORKBENCH_HOT_SWAP=1, its ASGI app under TestClient."""
    from prometheus_client import REGISTRY

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from starlette.testclient import TestClient

    write_pointer(models["A"])
    monkeypatch.setenv("WORKBENCH_HOT_SWAP", "1")
    monkeypatch.setenv("WORKBENCH_POINTER_POLL_S", "0.05")
    monkeypatch.setenv("WORKBENCH_PREDICTION_LOG", "off")
    module = load_service_module("workbench_bento_service_hot_swap")
    assert module.FOLLOW_POINTER
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


def test_without_hot_swap_the_server_keeps_its_model(monkeypatch, serving_package, models):
    monkeypatch.delenv("WORKBENCH_HOT_SWAP", raising=False)
    write_pointer(models["A"])
    module = load_service_module("workbench_bento_service_pinned")
    assert module.HOT_SWAP is False and module.FOLLOW_POINTER is False


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
    assert shadow["latency_ms"].min() >= 0 and champ["probability"].to_list() == pytest.approx(
        shadow.sort(by=pl_order(champ))["probability"].to_list())


def pl_order(champ):
    """The champion's request order, to line the shadow's rows up with it."""
    import polars as pl

    order = {r: i for i, r in enumerate(champ["request_id"].to_list())}
    return pl.col("request_id").replace_strict(order, return_dtype=pl.Int64)


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
    assert last["automatic"] is True and "error rate" in last["reason"]
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
            for i in range(25):
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
