"""Benchmark: the prediction service in-process and over HTTP, against scikit-learn and a bare ASGI floor.

All in one run, on a model package built for the occasion (HGB on an Adult sample, the promoted model's kind,
``tests/serving/conftest.py::build_serving_package``) in a throwaway ``BENTOML_HOME``:

in-process
    median time of :meth:`Predictor.handle <workbench.serving.Predictor.handle>` on one JSON record (the
    service's whole predict path: parse, validate, guard, score, answer, JSON) against
    a bare ``InferenceSession.run`` on the same record's ready-made feeds (the goal's baseline), with the
    prediction log on (as served; the goal) and off. Also shown: the C++ session call the service makes
    (:meth:`OnnxScorer.run_raw <workbench.serving.OnnxScorer.run_raw>`, skipping the Python wrapper's per-call
    checks) and the ratios to it. The measures take turns in chunks of 50 calls (:func:`interleaved`) and each
    ratio is the median of its per-round ratios, with quartiles: the machine's other jobs move absolute times,
    not ratios taken a few milliseconds apart.
    ``--tasks`` (default: multiclass, regression, penguins) measures the same for packages of the other tasks
    (``tests/serving/conftest.py::build_task_package``: synthetic data, 4 inputs, ``--task-model`` hgb or linear;
    and a logistic regression on the bundled penguins data, :func:`penguins_package`), each against
    ``InferenceSession.run`` of the output its answers read; ``--inprocess-only`` stops there.
HTTP, 1 and 32 concurrent clients (``wrk``: requests/s, p50, p99, non-2xx, server CPU per request)
    (a) the real ``bento/service.py`` under ``bentoml serve`` -- default workers, also 1 and 2, and with the
        prediction log off (``WORKBENCH_PREDICTION_LOG=off``) to show its cost;
    (b) the same service scoring with the scikit-learn pipeline (``benchmarks/serving/sklearn_service.py``);
    (c) the floor: a bare ASGI app with the same ONNX session under uvicorn (``benchmarks/serving/asgi_floor.py``).
    (b) and (c) run with the same number of workers as (a)'s default, ``OMP_NUM_THREADS=1`` everywhere.

Optional ``--variants`` serve (a) with changes, to find where the time goes (see ``VARIANTS``): BentoML
settings (access log, tracing exclusions, timeout), measurement-only patches of BentoML internals
(``benchmarks/serving/patches``), uvloop + httptools, a synchronous API (``benchmarks/serving/sync_service.py``),
worker counts. The goals are checked for every (a) configuration; besides req/s (which the machine's other
load moves a lot), server CPU per request is reported: it is the steadier measure of where time goes.

Every server listens on 127.0.0.1, is waited for on ``/readyz`` with a timeout and is always stopped (its
process group, then any process of its tree still alive, by pid). Every load is bounded (``-d`` seconds).
Configurations are measured in interleaved rounds and reported as medians over rounds. The load generator
shares the machine's cores with the servers (and whatever else runs): the load average is recorded with each
measurement. Figures are printed next to the goals; nothing here asserts on time.

    .venv/bin/python benchmarks/bench_serving.py                 # 2 rounds, about 6 minutes
    .venv/bin/python benchmarks/bench_serving.py --rounds 3 \
        --variants otel-excluded,timeout-cancel,otel-excluded+access-log-off+timeout-cancel
    python3 -m pip install --target /tmp/uvloop uvloop httptools  # optional, outside the project
    .venv/bin/python benchmarks/bench_serving.py --uvloop-dir /tmp/uvloop --variants uvloop,floor+uvloop

Needs ``wrk`` (Debian: ``apt-get install -y wrk``; ``--install-wrk`` runs that). ``wrk`` needs at least as many
connections as threads, so one client runs ``-t1 -c1`` and 32 clients ``-t2 -c32``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import os
import pickle
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "benchmarks" / "serving"
BENTO_DIR = ROOT / "bento"
START_TIMEOUT = 120.0
CORES = len(os.sched_getaffinity(0))
DEFAULT_WORKERS = min(4, CORES)  # bento/service.py's default

GOALS = {
    "inprocess_ratio_max": 1.5,          # Predictor.handle <= 1.5 x InferenceSession.run
    "vs_sklearn_min": 10.0,              # (a) req/s at 32 clients >= 10 x (b)
    "vs_floor_min": 0.5,                 # (a) req/s at 32 clients >= 0.5 x (c)
    "p99_ms_32_max": 25.0,               # (a) p99 at 32 clients
    "p99_ms_1_max": 5.0,                 # (a) p99 at 1 client
}

#: Changes to (a) for ``--variants`` (combine with ``+``, e.g. ``access-log-off+otel-excluded+workers=1``):
#: BentoML settings (``$BENTOML_CONFIG_OVERRIDES``: what ``@bentoml.service(...)`` would say), patches of
#: BentoML internals no setting reaches (``benchmarks/serving/patches``; measurement only), plain env vars.
#: Besides these names: ``floor``, ``sklearn`` or ``sync`` (apply the rest to (c), (b), or the service with a
#: synchronous API, ``benchmarks/serving/sync_service.py``, whose pool size ``threads=N`` sets), ``workers=N`` and
#: ``pythonpath=DIR``; ``uvloop`` puts ``--uvloop-dir`` (a folder holding uvloop and httptools, ``python3 -m pip
#: install --target DIR uvloop httptools``) on the path: uvicorn then picks them over asyncio's loop and h11.
VARIANTS: dict[str, dict] = {
    "access-log-off": {"config": {"logging": {"access": {"enabled": False}}}},
    "metrics-off": {"config": {"metrics": {"enabled": False}}},
    "otel-excluded": {"config": {"tracing": {"excluded_urls": ["/predict"]}}},
    "no-otel": {"patch": ["no-otel"]},
    "no-timeout": {"patch": ["no-timeout"]},
    "timeout-cancel": {"patch": ["timeout-cancel"]},
    "timeout-5s": {"config": {"traffic": {"timeout": 5}}},  # fewer pending timers; does not remove the stalls
    "gc-stats": {"patch": ["gc-stats"]},
    "log-fsync": {"env": {"WORKBENCH_LOG_FSYNC": "always"}},
    "log-off": {"env": {"WORKBENCH_PREDICTION_LOG": "off"}},
    "bentoml-route": {"env": {"WORKBENCH_DIRECT_PREDICT": "0"}},  # /predict through BentoML's route machinery
}


UVLOOP_DIR = ""  # --uvloop-dir


def _deep_merge(a: dict, b: dict) -> dict:
    out = dict(a)
    for k, v in b.items():
        out[k] = _deep_merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def variant_spec(name: str, service: str = "workbench") -> ServerSpec:
    """An (a) configuration from a ``+``-joined variant name."""
    config: dict = {}
    patches: list[str] = []
    paths: list[str] = []
    env: dict[str, str] = {}
    workers = None
    kind = "onnx"
    for part in name.split("+"):
        if part in ("floor", "sklearn", "sync"):  # the variant applies to (c), (b) or the sync-API service
            kind = part
            service = {"sklearn": "workbench-sklearn", "sync": "workbench-sync"}.get(part, service)
        elif part.startswith("threads="):  # the sync-API service's thread pool
            env["WORKBENCH_BENCH_THREADS"] = part.split("=", 1)[1]
        elif part.startswith("workers="):
            workers = int(part.split("=", 1)[1])
        elif part.startswith("pythonpath="):
            paths.append(part.split("=", 1)[1])
        elif part == "uvloop":  # uvicorn picks uvloop and httptools when they import (``--uvloop-dir``)
            if not UVLOOP_DIR:
                raise SystemExit("variant 'uvloop' needs --uvloop-dir DIR, a folder holding uvloop and httptools "
                                 "(python3 -m pip install --target DIR uvloop httptools)")
            paths.append(UVLOOP_DIR)
        elif part in VARIANTS:
            v = VARIANTS[part]
            config = _deep_merge(config, v.get("config", {}))
            patches += v.get("patch", [])
            env.update(v.get("env", {}))
        else:
            raise SystemExit(f"unknown variant {part!r}; known: {sorted(VARIANTS)}, workers=N, pythonpath=DIR")
    if config:
        env["BENTOML_CONFIG_OVERRIDES"] = json.dumps({"services": {service: config}})
    if patches:
        env["WORKBENCH_BENCH_PATCH"] = ",".join(patches)
        paths.insert(0, str(BENCH / "patches"))
    if paths:
        env["PYTHONPATH"] = os.pathsep.join([*paths, *filter(None, [os.environ.get("PYTHONPATH")])])
    return ServerSpec(name if kind != "onnx" else f"a+{name}", kind, workers, env, note=f"variant {name}")


LUA = """\
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = {body}
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("BENCH_JSON {{\\"requests\\": %d, \\"duration_us\\": %d, \\"non2xx\\": %d, " ..
    "\\"connect\\": %d, \\"read\\": %d, \\"write\\": %d, \\"timeout\\": %d, \\"p50_us\\": %d, \\"p90_us\\": %d, " ..
    "\\"p99_us\\": %d, \\"max_us\\": %d, \\"mean_us\\": %.1f}}\\n",
    summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
    latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max, latency.mean))
end
"""


# ------------------------------------------------------------------------------------------------ set-up
def ensure_wrk(install: bool) -> str:
    found = shutil.which("wrk")
    if found:
        return found
    cmd = ["apt-get", "install", "-y", "wrk"]
    if not install:
        raise SystemExit("wrk is not installed: run `apt-get update && apt-get install -y wrk` (Debian/Ubuntu), "
                         "or rerun with --install-wrk")
    print("installing wrk:", " ".join(cmd), flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True, timeout=300)
    subprocess.run(cmd, check=True, timeout=300, env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})
    return shutil.which("wrk") or sys.exit("wrk still not found after apt-get install")


def _serving_conftest():
    """tests/serving/conftest.py as a module (``build_serving_package``, ``bentoml_home``)."""
    name = "_bench_serving_conftest"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / "serving" / "conftest.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses need the module registered
    spec.loader.exec_module(module)
    return module


@dataclass
class Package:
    home: Path
    tag: str
    path: Path
    pipeline_file: Path
    body: bytes
    records: list


def build_package(tmp: Path, model: str) -> Package:
    conftest = _serving_conftest()
    home = tmp / "bentoml_home"
    saved = os.environ.pop("WORKBENCH_MODEL_TAG", None)
    try:
        with conftest.bentoml_home(home):
            pkg = conftest.build_serving_package(home, model=model)
    finally:
        if saved is not None:
            os.environ["WORKBENCH_MODEL_TAG"] = saved
    pipeline_file = tmp / "pipeline.pkl"
    with pipeline_file.open("wb") as f:
        pickle.dump(pkg.pipeline, f)
    return Package(home=home, tag=pkg.tag, path=pkg.path, pipeline_file=pipeline_file,
                   body=json.dumps(pkg.records[0]).encode(), records=pkg.records)


# ------------------------------------------------------------------------------------------------ in-process
CHUNK = 50
"""Calls per measure per round of :func:`interleaved` (a round of four measures lasts a few milliseconds)."""


def interleaved(measures: dict[str, tuple], calls: int, chunk: int = CHUNK) -> tuple[dict[str, float], dict]:
    """Median time per call (us) of each measure, and the per-round medians (``{name: [us per round]}``).

    ``measures``: ``{name: (setup, fn)}``; ``setup()`` (or None) runs before each of ``fn``'s chunks. The
    measures take turns in chunks of ``chunk`` calls, in an order rotated every round, for ``calls // chunk``
    rounds: a burst of load from the machine's other jobs (seconds long, here) then hits every measure alike,
    and the ratio of two measures is taken round by round (:func:`paired_ratio`). The first version measured
    each in a block of ``calls // 5`` calls (about 0.1 s) after the other, five times, and took medians of
    block medians: with other jobs on the 2 cores, a burst covering the blocks of one measure and not of the
    other moved a ratio by 0.3-1.3x either way (a log-off ratio of 0.88x, below the graph call it contains;
    log-on blocks "costing" tens of us) while a steady loop measured ~5 us of log cost.
    """
    names = list(measures)
    for setup, fn in measures.values():  # warm-up: caches, the log segment's first page, the formats
        if setup is not None:
            setup()
        for _ in range(500):
            fn()
    clock = time.perf_counter_ns
    samples: dict[str, list[int]] = {n: [] for n in names}
    rounds: dict[str, list[float]] = {n: [] for n in names}
    for r in range(max(1, calls // chunk)):
        k = r % len(names)
        for name in names[k:] + names[:k]:
            setup, fn = measures[name]
            if setup is not None:
                setup()
            got = []
            for _ in range(chunk):
                t = clock()
                fn()
                got.append(clock() - t)
            samples[name] += got
            rounds[name].append(statistics.median(got) / 1000.0)
    return {n: statistics.median(v) / 1000.0 for n, v in samples.items()}, rounds


def paired_ratio(rounds: dict[str, list[float]], a: str, b: str) -> dict:
    """Median over rounds of ``a / b`` (each round's medians), with its quartiles (the spread the noise left)."""
    ratios = sorted(x / y for x, y in zip(rounds[a], rounds[b], strict=True))
    q = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else [ratios[0]] * 3
    return {"median": statistics.median(ratios), "q1": q[0], "q3": q[2], "rounds": len(ratios)}


def in_process(pkg: Package, tmp: Path, calls: int) -> dict:
    """Predictor.handle on one JSON record vs InferenceSession.run on its prepared feeds (medians, us)."""
    return _in_process(pkg.path, pkg.tag, pkg.body, tmp, calls)


def _task_package(task: str, home: Path, model: str) -> tuple[Path, str, bytes]:
    """A multiclass or regression package on synthetic data (``tests/serving/conftest.py::build_task_package``)."""
    conftest = _serving_conftest()
    with conftest.bentoml_home(home):
        pkg = conftest.build_task_package(task, model=model)
    return pkg.path, pkg.tag, json.dumps(pkg.records[0]).encode()


def penguins_package(home: Path) -> tuple[Path, str, bytes]:
    """A package like the one ``workbench run briefs/penguins.yaml`` + ``workbench promote`` registers with its
    ``logreg`` candidate (one-hot + scaled logistic regression, 3 classes, 6 inputs), made with the same library
    calls minus the notebooks and the gates: the brief's data split, the inferred contract, the candidate,
    :func:`~workbench.export.onnx.export_onnx`, :func:`~workbench.registry.store.serving_config`; its serving
    body is the first clean test record."""
    import bentoml

    from workbench.brief import load_brief
    from workbench.data.contract import infer_contract
    from workbench.data.io import load_dataset
    from workbench.export.onnx import export_onnx
    from workbench.modeling.candidates import make_candidate
    from workbench.modeling.frame import to_model_frame
    from workbench.registry.store import save_model_package, serving_config
    from workbench.tasks import get_task

    conftest = _serving_conftest()
    brief = load_brief(ROOT / "briefs" / "penguins.yaml")
    with conftest.bentoml_home(home):
        ds = load_dataset(brief, seed=0)
        contract = infer_contract(ds.train, brief)
        task = get_task(brief.task)
        classes = task.classes(ds.train[brief.target.column], brief=brief)
        y = task.encode_target(ds.train[brief.target.column], brief=brief, classes=classes)
        pipeline = make_candidate("logreg", contract, seed=0, task=brief.task).fit(
            to_model_frame(ds.train, contract), y)
        export = export_onnx(pipeline, features=contract.features, numeric=contract.numeric_features,
                             task=brief.task)
        name = "workbench-penguins-species"
        serving = serving_config(contract=contract.to_dict(), inputs=export.inputs, onnx_sha256=export.sha256,
                                 threshold=None, run_id="bench", model_name=name, task=brief.task, classes=classes)
        tag = save_model_package({"model.onnx": export.model_bytes, "serving.json": serving}, name=name,
                                 labels={"stage": "certified"},
                                 metadata={"run_id": "bench", "onnx_sha256": export.sha256})
        path = Path(bentoml.models.get(tag).path)
    record = next(r for r in ds.test.select(contract.features).to_dicts() if None not in r.values())
    return path, tag, json.dumps(record).encode()


def in_process_task(task: str, tmp: Path, calls: int, model: str = "hgb") -> dict:
    """:func:`in_process` for another task's package: ``task`` "multiclass_classification" or "regression"
    (synthetic data, 2 numeric and 2 categorical inputs; ``model`` "hgb", the promoted model's kind, or "linear":
    logistic regression / ridge, a ~13 us graph where the path's fixed cost weighs most), or "penguins" (the
    bundled data's logistic regression, :func:`penguins_package`); the baseline is the public
    ``InferenceSession.run`` of the output the task reads (``probabilities`` / ``prediction``)."""
    saved = os.environ.pop("WORKBENCH_MODEL_TAG", None)
    try:
        if task == "penguins":
            path, tag, body = penguins_package(tmp / "bentoml_home_penguins")
            model = "logreg"
        else:
            path, tag, body = _task_package(task, tmp / f"bentoml_home_{task}_{model}", model)
    finally:
        if saved is not None:
            os.environ["WORKBENCH_MODEL_TAG"] = saved
    out = _in_process(path, tag, body, tmp, calls)
    out["model"] = model
    return out


def _in_process(path: Path, tag: str, body: bytes, tmp: Path, calls: int) -> dict:
    import gc

    import numpy as np

    from workbench.monitoring.log import PredictionLog, list_segments
    from workbench.serving import Predictor

    pred = Predictor.load(path, tag=tag)
    reply = pred.handle(body)
    assert reply.status == 200, reply.body
    rows, _ = pred.schema.parse_json(body)
    # the feeds exactly as Predictor._score_columns builds them for this record
    num = list(zip(*map(pred._get_numeric, rows), strict=True))
    cat = list(zip(*map(pred._get_categorical, rows), strict=True))
    feeds = dict(zip(pred._numeric, np.array(num, dtype=np.float32).reshape(len(pred._numeric), 1, 1),
                     strict=True))
    feeds.update(zip(pred._categorical, np.array(cat, dtype=object).reshape(len(pred._categorical), 1, 1),
                     strict=True))
    session = pred.scorer.session
    output = [pred.answers.output]  # the graph output the task's answers read
    log = PredictionLog(tag, root=tmp / "inprocess_log")
    gc.collect()
    gc.freeze()  # as bento/service.py does after loading: the start-up objects are never scanned again

    def log_off() -> None:
        pred.log = None

    def log_on() -> None:
        pred.log = log

    measures = {"session_run_us": (None, lambda: session.run(output, feeds)),
                "run_raw_us": (None, lambda: pred._run(feeds)),
                "handle_us": (log_off, lambda: pred.handle(body)),
                "handle_log_on_us": (log_on, lambda: pred.handle(body))}
    medians, rounds = interleaved(measures, calls)
    pred.log = None
    log.close()
    gc.unfreeze()
    lines = sum(seg.read_bytes().count(b"\n") for seg in list_segments(tmp / "inprocess_log", tag))
    row = rows[0]
    out = {"calls": calls, "chunk": CHUNK, "task": pred.config.task, **medians, "log_lines": lines,
           "log_segments": len(list_segments(tmp / "inprocess_log", tag)),
           # a record with nothing flagged takes the one-record formats (the common request); else the general path
           "clean_record": not pred.guard.check_one(pred._get_numeric(row), pred._get_categorical(row))}
    # the goal's baseline is the public InferenceSession.run; the service calls the C++ session under it
    # (OnnxScorer.run_raw, without the wrapper's per-call checks), so the ratios to that call are shown too.
    # Ratios are paired round by round (interleaved); the medians above are over all calls.
    for key, a, b in [("ratio", "handle_us", "session_run_us"), ("ratio_log_on", "handle_log_on_us", "session_run_us"),
                      ("ratio_vs_cpp_run", "handle_us", "run_raw_us"),
                      ("ratio_log_on_vs_cpp_run", "handle_log_on_us", "run_raw_us")]:
        r = paired_ratio(rounds, a, b)
        out[key] = r["median"]
        out[f"{key}_quartiles"] = [r["q1"], r["q3"]]
    return out


# ------------------------------------------------------------------------------------------------ servers
@dataclass
class ServerSpec:
    key: str            # unique name of the configuration
    kind: str           # "onnx" (a), "sklearn" (b), "floor" (c)
    workers: int | None  # None: the service's default
    env: dict[str, str] = field(default_factory=dict)
    note: str = ""

    @property
    def effective_workers(self) -> int:
        return self.workers or DEFAULT_WORKERS


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _command(spec: ServerSpec, port: int) -> tuple[list[str], Path]:
    py = sys.executable
    if spec.kind == "onnx":
        return [py, "-m", "bentoml", "serve", "--host", "127.0.0.1", "--port", str(port)], BENTO_DIR
    if spec.kind == "sklearn":
        return [py, "-m", "bentoml", "serve", "sklearn_service:PredictSklearn", "--host", "127.0.0.1",
                "--port", str(port)], BENCH
    if spec.kind == "sync":
        return [py, "-m", "bentoml", "serve", "sync_service:PredictSync", "--host", "127.0.0.1",
                "--port", str(port)], BENCH
    if spec.kind == "floor":
        return [py, "serve_floor.py", "--port", str(port), "--workers", str(spec.effective_workers)], BENCH
    raise ValueError(spec.kind)


def _env(spec: ServerSpec, pkg: Package, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("WORKBENCH_MODEL_TAG", "WORKBENCH_WORKERS")}
    env.update(BENTOML_HOME=str(pkg.home), BENTOML_DO_NOT_TRACK="true", OMP_NUM_THREADS="1",
               WORKBENCH_LOG_DIR=str(tmp / "prediction_logs"), WORKBENCH_BENCH_PIPELINE=str(pkg.pipeline_file),
               WORKBENCH_BENCH_MODEL_DIR=str(pkg.path), PYTHONDONTWRITEBYTECODE="1")
    if spec.workers:
        env["WORKBENCH_WORKERS"] = str(spec.workers)
    env.update(spec.env)
    return env


def _tree(pid: int) -> list:
    import psutil

    try:
        p = psutil.Process(pid)
        return [p, *p.children(recursive=True)]
    except psutil.NoSuchProcess:
        return []


def _cpu_seconds(procs: list) -> float:
    import psutil

    total = 0.0
    for p in procs:
        with contextlib.suppress(psutil.NoSuchProcess, psutil.AccessDenied):
            t = p.cpu_times()
            total += t.user + t.system
    return total


@contextlib.contextmanager
def serve(spec: ServerSpec, pkg: Package, tmp: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd, cwd = _command(spec, port)
    log_path = tmp / f"server-{re.sub(r'[^A-Za-z0-9_.+=-]+', '_', spec.key)}-{port}.log"
    with log_path.open("wb") as out:
        proc = subprocess.Popen(cmd, cwd=cwd, env=_env(spec, pkg, tmp), stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    known: list = []
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            known = _tree(proc.pid) or known
            if proc.poll() is not None:
                raise RuntimeError(f"{spec.key}: server exited with {proc.returncode}:\n"
                                   f"{log_path.read_text(errors='replace')[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{spec.key}: not ready after {START_TIMEOUT:.0f} s:\n"
                                   f"{log_path.read_text(errors='replace')[-3000:]}")
            with contextlib.suppress(OSError), urllib.request.urlopen(f"{url}/readyz", timeout=2) as r:
                if r.status == 200:
                    break
            time.sleep(0.25)
        req = urllib.request.Request(f"{url}/predict", data=pkg.body, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as r:
            answer = json.loads(r.read())
        assert answer["predictions"][0]["probability"] >= 0, answer
        yield url, proc
    finally:
        _serving_conftest().stop_server(proc, known)


# ------------------------------------------------------------------------------------------------ load
_WRK_RPS = re.compile(r"Requests/sec:\s+([\d.]+)")


def run_wrk(wrk: str, url: str, lua: Path, clients: int, seconds: float) -> dict:
    threads = min(2, clients)
    cmd = [wrk, f"-t{threads}", f"-c{clients}", f"-d{seconds:g}s", "--latency", "--timeout", "5s", "-s", str(lua),
           f"{url}/predict"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    if proc.returncode != 0:
        raise RuntimeError(f"wrk failed ({proc.returncode}): {proc.stderr}{proc.stdout}")
    line = next((ln for ln in proc.stdout.splitlines() if ln.startswith("BENCH_JSON ")), None)
    if line is None:
        raise RuntimeError(f"wrk printed no summary:\n{proc.stdout}")
    raw = json.loads(line.removeprefix("BENCH_JSON "))
    m = _WRK_RPS.search(proc.stdout)
    rps = float(m.group(1)) if m else raw["requests"] / (raw["duration_us"] / 1e6)
    return {"rps": rps, "p50_ms": raw["p50_us"] / 1000, "p90_ms": raw["p90_us"] / 1000,
            "p99_ms": raw["p99_us"] / 1000, "max_ms": raw["max_us"] / 1000, "requests": raw["requests"],
            "non2xx": raw["non2xx"], "socket_errors": raw["connect"] + raw["read"] + raw["write"] + raw["timeout"],
            "wrk": " ".join(cmd[1:6])}


def measure(spec: ServerSpec, pkg: Package, tmp: Path, wrk: str, lua: Path, clients: list[int], seconds: float,
            warmup: float) -> dict:
    out = {}
    with serve(spec, pkg, tmp) as (url, proc):
        for c in clients:
            run_wrk(wrk, url, lua, c, warmup)  # warm-up: discarded
            procs = _tree(proc.pid)
            load = os.getloadavg()
            cpu0 = _cpu_seconds(procs)
            r = run_wrk(wrk, url, lua, c, seconds)
            cpu = _cpu_seconds(procs) - cpu0
            r["server_cpu_us_per_req"] = 1e6 * cpu / r["requests"] if r["requests"] else None
            r["server_cpu_cores"] = cpu / seconds
            r["loadavg_1m"] = load[0]
            out[str(c)] = r
            print(f"  {spec.key:<30} c={c:<3} {r['rps']:8.0f} req/s  p50 {r['p50_ms']:7.2f} ms  "
                  f"p99 {r['p99_ms']:7.2f} ms  non-2xx {r['non2xx']}  server CPU "
                  f"{r['server_cpu_us_per_req'] or 0:6.0f} us/req  load {load[0]:.2f}", flush=True)
    return out


def specs_for(args: argparse.Namespace) -> list[ServerSpec]:
    variants = [variant_spec(name) for name in args.variants]
    if args.variants_only:
        return variants
    specs = [ServerSpec("a_onnx", "onnx", None, note=f"bento/service.py, default workers ({DEFAULT_WORKERS})")]
    for w in args.workers:
        if w != DEFAULT_WORKERS:
            specs.append(ServerSpec(f"a_onnx_w{w}", "onnx", w, note=f"bento/service.py, WORKBENCH_WORKERS={w}"))
    specs.append(ServerSpec("a_onnx_log_off", "onnx", None, {"WORKBENCH_PREDICTION_LOG": "off"},
                            note="bento/service.py, WORKBENCH_PREDICTION_LOG=off"))
    if not args.skip_sklearn:
        specs.append(ServerSpec("b_sklearn", "sklearn", None, note="benchmarks/serving/sklearn_service.py"))
    specs.append(ServerSpec("c_floor", "floor", None, note="benchmarks/serving/asgi_floor.py under uvicorn"))
    return specs + variants


# ------------------------------------------------------------------------------------------------ report
def _median_runs(runs: list[dict]) -> dict:
    keys = [k for k in runs[0] if isinstance(runs[0][k], int | float) and runs[0][k] is not None]
    med = {k: statistics.median(r[k] for r in runs if r.get(k) is not None) for k in keys}
    med["non2xx"] = sum(r["non2xx"] for r in runs)
    med["socket_errors"] = sum(r["socket_errors"] for r in runs)
    return med


def _ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def _floor_for(spec: ServerSpec, specs: list[ServerSpec]) -> str:
    """The floor to compare an (a) configuration with: the floor variant with the same ``pythonpath=`` (the same
    event loop and HTTP parser) and workers when one was measured, else ``c_floor``."""
    extra = [p for p in spec.key.split("+") if p.startswith(("pythonpath=", "workers=")) or p == "uvloop"]
    if extra:
        for s in specs:
            if s.kind == "floor" and sorted(p for p in s.key.split("+") if p != "floor") == sorted(extra):
                return s.key
    return "c_floor"


def goal_checks(a: dict, b: dict, c: dict, clients: list[int]) -> dict:
    """The HTTP goals for one (a) configuration ``a`` against (b) ``b`` and the floor ``c``."""
    g = GOALS
    hi, lo = str(max(clients)), str(min(clients))

    def get(r: dict, n: str, k: str) -> float | None:
        return r.get(n, {}).get(k)

    checks = {}
    v = _ratio(get(a, hi, "rps"), get(b, hi, "rps"))
    checks[f"vs_sklearn_rps_at_{hi}"] = (v, f">= {g['vs_sklearn_min']:g}", v is not None and v >= g["vs_sklearn_min"])
    v = _ratio(get(a, hi, "rps"), get(c, hi, "rps"))
    checks[f"vs_floor_rps_at_{hi}"] = (v, f">= {g['vs_floor_min']:g}", v is not None and v >= g["vs_floor_min"])
    v = get(a, hi, "p99_ms")
    checks[f"p99_ms_at_{hi}"] = (v, f"<= {g['p99_ms_32_max']:g}", v is not None and v <= g["p99_ms_32_max"])
    if lo != hi:  # the single-client goal needs a measurement at fewer clients (e.g. --clients 32 alone has none)
        v = get(a, lo, "p99_ms")
        checks[f"p99_ms_at_{lo}"] = (v, f"<= {g['p99_ms_1_max']:g}", v is not None and v <= g["p99_ms_1_max"])
    out = {k: {"value": v, "goal": goal, "met": met} for k, (v, goal, met) in checks.items()}
    # less sensitive to the machine's other load than req/s: server CPU per request, as a ratio
    out["sklearn_cpu_per_req_over_a"] = {"value": _ratio(get(b, hi, "server_cpu_us_per_req"),
                                                         get(a, hi, "server_cpu_us_per_req"))}
    out["floor_cpu_per_req_over_a"] = {"value": _ratio(get(c, hi, "server_cpu_us_per_req"),
                                                       get(a, hi, "server_cpu_us_per_req"))}
    return out


def summarize(inproc: dict, specs: list[ServerSpec], results: dict[str, dict], clients: list[int]) -> dict:
    ratio = inproc.get("ratio_log_on")  # the service's path: the prediction log is on in production
    by_config = {}
    for s in specs:
        if s.kind == "onnx" and s.key in results:
            floor = _floor_for(s, specs)
            by_config[s.key] = {"floor": floor, **goal_checks(results[s.key], results.get("b_sklearn", {}),
                                                             results.get(floor, {}), clients)}
    a, off = results.get("a_onnx", {}), results.get("a_onnx_log_off", {})
    return {
        "inprocess": {"value": ratio, "goal": f"<= {GOALS['inprocess_ratio_max']:g}",
                      "met": ratio is not None and ratio <= GOALS["inprocess_ratio_max"],
                      "measured_on": "Predictor.handle with the prediction log on / InferenceSession.run",
                      "log_off": inproc.get("ratio"), "vs_cpp_run": inproc.get("ratio_log_on_vs_cpp_run")},
        "goals": by_config.get("a_onnx", {}),
        "goals_by_configuration": by_config,
        "log_off_over_on_rps": {n: _ratio(off.get(n, {}).get("rps"), a.get(n, {}).get("rps"))
                                for n in map(str, clients)},
        "log_cost_in_process_us": inproc["handle_log_on_us"] - inproc["handle_us"],
    }


def print_report(inproc: dict, specs: list[ServerSpec], results: dict[str, dict], summary: dict,
                 clients: list[int], rounds: int) -> None:
    print()
    print(f"in-process, one record (median of {inproc['calls']} calls per measure, us):")
    rows = [("InferenceSession.run (public API: the goal's baseline)", inproc["session_run_us"], ""),
            ("C++ session run (OnnxScorer.run_raw, the service's call)", inproc["run_raw_us"], ""),
            ("Predictor.handle, prediction log off", inproc["handle_us"],
             f"ratio {inproc['ratio']:.2f} (vs the C++ call {inproc['ratio_vs_cpp_run']:.2f})"),
            ("Predictor.handle, prediction log on (as served)", inproc["handle_log_on_us"],
             f"ratio {inproc['ratio_log_on']:.2f} (vs the C++ call {inproc['ratio_log_on_vs_cpp_run']:.2f}; goal <= "
             f"{GOALS['inprocess_ratio_max']:g}: {'met' if summary['inprocess']['met'] else 'NOT met'})")]
    for label, us, note in rows:
        print(f"  {label:<58} {us:8.1f}   {note}".rstrip())
    for task, r in summary.get("inprocess_tasks", {}).items():
        q1, q3 = r["ratio_log_on_quartiles"]
        print(f"  {task} ({r['model']}): InferenceSession.run {r['session_run_us']:.1f}, handle {r['handle_us']:.1f} "
              f"(ratio {r['ratio']:.2f}), log on {r['handle_log_on_us']:.1f} (ratio {r['ratio_log_on']:.2f}, "
              f"quartiles {q1:.2f}-{q3:.2f}; goal <= {GOALS['inprocess_ratio_max']:g}: "
              f"{'met' if r['ratio_log_on'] <= GOALS['inprocess_ratio_max'] else 'NOT met'})"
              + ("" if r.get("clean_record", True) else " [the record is flagged: general path]"))
    print()
    if not specs:
        return
    print(f"HTTP (wrk, medians over {rounds} round(s); server CPU = CPU seconds of the server's processes / requests)")
    w = max(22, *(len(s.key) for s in specs))
    head = f"  {'configuration':<{w}} {'workers':>7} {'clients':>7} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} " \
           f"{'non-2xx':>7} {'CPU us/req':>10} {'load':>5}"
    print(head)
    print("  " + "-" * (len(head) - 2))
    for s in specs:
        for c in clients:
            r = results.get(s.key, {}).get(str(c))
            if not r:
                continue
            cpu = r.get("server_cpu_us_per_req")
            print(f"  {s.key:<{w}} {s.effective_workers:>7} {c:>7} {r['rps']:>8.0f} {r['p50_ms']:>8.2f} "
                  f"{r['p99_ms']:>8.2f} {r['non2xx'] + r['socket_errors']:>7} "
                  f"{(f'{cpu:.0f}' if cpu else '-'):>10} {r['loadavg_1m']:>5.2f}")
    print()
    hi, lo = max(clients), min(clients)
    print(f"goals per (a) configuration (value, * = met): a/b req/s at {hi} (>= {GOALS['vs_sklearn_min']:g}), "
          f"a/floor req/s at {hi} (>= {GOALS['vs_floor_min']:g}), p99 at {hi} (<= {GOALS['p99_ms_32_max']:g} ms), "
          + (f"p99 at {lo} (<= {GOALS['p99_ms_1_max']:g} ms); " if lo != hi else "")
          + "CPU per request b/a and floor/a")

    def cell(g: dict) -> str:
        v = g.get("value")
        return "-" if v is None else f"{v:.2f}{'*' if g.get('met') else ' '}"

    for key, g in summary["goals_by_configuration"].items():
        print(f"  {key:<{w}} {cell(g[f'vs_sklearn_rps_at_{hi}']):>8} {cell(g[f'vs_floor_rps_at_{hi}']):>8} "
              f"{cell(g[f'p99_ms_at_{hi}']):>9} {cell(g.get(f'p99_ms_at_{lo}', {}) if lo != hi else {}):>9}   "
              f"{cell(g['sklearn_cpu_per_req_over_a']):>7} {cell(g['floor_cpu_per_req_over_a']):>7}   "
              f"(floor: {g['floor']})")
    print(f"  prediction log: +{summary['log_cost_in_process_us']:.1f} us per request in-process; HTTP req/s "
          "off/on " + ", ".join(f"{v:.2f} at {n} client(s)" for n, v in summary["log_off_over_on_rps"].items()
                                if v is not None))


def save_json(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        os.fchmod(fd, 0o644)  # mkstemp makes it 0600
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--duration", type=float, default=8.0, help="seconds per measured wrk run")
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds of discarded load before each measurement")
    ap.add_argument("--clients", default="1,32", help="concurrent connections, comma-separated")
    ap.add_argument("--workers", default="1,2", help="extra WORKBENCH_WORKERS values for (a) besides the default")
    ap.add_argument("--rounds", type=int, default=2, help="interleaved rounds over all configurations (medians)")
    ap.add_argument("--calls", type=int, default=20000, help="in-process calls per measurement")
    ap.add_argument("--model", default="hgb", help="candidate to build the package with")
    ap.add_argument("--variants", default="", help="extra configurations, comma-separated; each joins with + "
                    f"any of: {', '.join(VARIANTS)}, uvloop, floor, sklearn, sync, threads=N, workers=N, "
                    "pythonpath=DIR")
    ap.add_argument("--uvloop-dir", default="", help="folder with uvloop and httptools for the 'uvloop' variant "
                    "(python3 -m pip install --target DIR uvloop httptools; never added to the project)")
    ap.add_argument("--variants-only", action="store_true", help="measure only the --variants configurations")
    ap.add_argument("--only", default="", help="run only these configuration keys (comma-separated)")
    ap.add_argument("--skip-sklearn", action="store_true")
    ap.add_argument("--install-wrk", action="store_true", help="apt-get install wrk if it is missing")
    ap.add_argument("--tasks", default="multiclass_classification,regression,penguins",
                    help="also measure the in-process path for these tasks' packages (comma-separated; '' for "
                         "none): multiclass_classification and regression on synthetic data (--task-model), "
                         "penguins: the bundled data's logistic regression")
    ap.add_argument("--task-model", default="hgb", choices=["hgb", "linear"],
                    help="model of the --tasks packages (hgb: the promoted kind; linear: a tiny graph)")
    ap.add_argument("--inprocess-only", action="store_true", help="only the in-process measurements (no wrk)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "serving.json"))
    args = ap.parse_args()
    args.clients = [int(c) for c in args.clients.split(",") if c]
    args.workers = [int(w) for w in args.workers.split(",") if w]
    args.variants = [v for v in args.variants.split(",") if v]
    global UVLOOP_DIR
    UVLOOP_DIR = args.uvloop_dir

    args.tasks = [t for t in args.tasks.split(",") if t]
    wrk = "" if args.inprocess_only else ensure_wrk(args.install_wrk)
    specs = [] if args.inprocess_only else specs_for(args)
    if args.only:
        keep = set(args.only.split(","))
        specs = [s for s in specs if s.key in keep]
    started = time.strftime("%Y-%m-%dT%H:%M:%S%z")
    load0 = os.getloadavg()
    print(f"{platform.node()}: {CORES} cores, load average {load0[0]:.2f} {load0[1]:.2f} {load0[2]:.2f}; "
          f"wrk shares the cores with the servers", flush=True)
    with tempfile.TemporaryDirectory(prefix="bench_serving_") as tmpdir:
        tmp = Path(tmpdir)
        t = time.perf_counter()
        pkg = build_package(tmp, args.model)
        print(f"built {pkg.tag} ({args.model}) in {time.perf_counter() - t:.1f} s; body {len(pkg.body)} bytes",
              flush=True)
        lua = tmp / "post.lua"
        lua.write_text(LUA.format(body="[==[" + pkg.body.decode() + "]==]"))  # a Lua long string: no escaping
        inproc = in_process(pkg, tmp, args.calls)
        print(f"in-process: InferenceSession.run {inproc['session_run_us']:.1f} us; handle "
              f"{inproc['handle_us']:.1f} us (ratio {inproc['ratio']:.2f}), with the log "
              f"{inproc['handle_log_on_us']:.1f} us (ratio {inproc['ratio_log_on']:.2f})", flush=True)
        inproc_tasks = {}
        for task in args.tasks:
            r = inproc_tasks[task] = in_process_task(task, tmp, args.calls, args.task_model)
            print(f"in-process {task} ({r['model']}): InferenceSession.run {r['session_run_us']:.1f} us; handle "
                  f"{r['handle_us']:.1f} us (ratio {r['ratio']:.2f}), with the log {r['handle_log_on_us']:.1f} us "
                  f"(ratio {r['ratio_log_on']:.2f}; goal <= {GOALS['inprocess_ratio_max']:g})", flush=True)
        runs: dict[str, list[dict]] = {s.key: [] for s in specs}
        failures: dict[str, list[str]] = {}
        for r in range(args.rounds):
            print(f"round {r + 1}/{args.rounds}", flush=True)
            for s in specs:
                try:
                    runs[s.key].append(measure(s, pkg, tmp, wrk, lua, args.clients, args.duration, args.warmup))
                except (RuntimeError, OSError, subprocess.SubprocessError, AssertionError) as exc:
                    print(f"  {s.key}: FAILED, skipped this round: {exc}", flush=True)
                    failures.setdefault(s.key, []).append(str(exc)[-2000:])
    results = {k: {str(c): _median_runs([run[str(c)] for run in v]) for c in args.clients}
               for k, v in runs.items() if v}
    summary = summarize(inproc, specs, results, args.clients)
    summary["inprocess_tasks"] = inproc_tasks
    print_report(inproc, specs, results, summary, args.clients, args.rounds)
    data = {
        "benchmark": "serving", "started": started, "host": platform.node(), "cores": CORES,
        "loadavg_start": load0, "loadavg_end": os.getloadavg(),
        "note": "wrk runs on the same cores as the servers; server CPU is per request, summed over the server's "
                "processes",
        "model": args.model, "tag": pkg.tag, "body_bytes": len(pkg.body),
        "settings": {"duration_s": args.duration, "warmup_s": args.warmup, "clients": args.clients,
                     "rounds": args.rounds, "default_workers": DEFAULT_WORKERS},
        "goals": GOALS, "in_process": inproc, "in_process_tasks": inproc_tasks,
        "configurations": {s.key: {"kind": s.kind, "workers": s.effective_workers, "env": s.env, "note": s.note}
                           for s in specs},
        "results": results, "rounds": runs, "failures": failures, "summary": summary,
    }
    save_json(Path(args.out), data)
    print(f"\nsaved {args.out}")


if __name__ == "__main__":
    main()
