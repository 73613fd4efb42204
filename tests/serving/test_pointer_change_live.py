"""Pointer changes under load, against a real ``bentoml serve`` (2 workers, ``WORKBENCH_HOT_SWAP=1``).

Issue 14's reliability goal: *a pointer change (release, rollback, automatic rollback) under 32 concurrent
clients: 0 failed requests, 0 requests answered by a model that failed verification, every answered request in
the log with the version that answered it.*

A throwaway BentoML home holds three versions of the suite's package: ``A`` and ``B`` (healthy) and ``T``, a
copy of ``B`` whose ``model.onnx`` was altered after registration (verification must refuse it). One server
follows the pointer (``WORKBENCH_POINTER_POLL_S=0.2``) while 32 keep-alive clients (asyncio + aiohttp, a thread
of their own) send one-record requests, each with its own ``X-Request-ID``, and the registry moves the pointer
with its own functions: A -> B (a release's ledger lines and pointer), B -> T (the same for the altered package),
``ledger.rollback`` twice (T -> B, which the server already serves, then B -> A), a 25% canary of B beside A
(``ledger.set_challenger``), and the canary's end through :func:`roll_back_challenger` (the automatic
rollback's registry write). Then the clients stop, ``/metrics`` is read, the server's whole process tree is
stopped and the prediction log is read back, line by line and with the project's reader
(:func:`workbench.monitoring.compact.read_columns`).

Bugs the scenario found stay pinned by tests: log segments mixing one-model and two-model lines (both log
readers), and a release rehearsal that shared the running service's BentoML home and so emptied its ``/metrics``
folder (``bentoml serve`` cleans ``prometheus_multiproc_dir`` at start; the rehearsal now has a home of its own).

The scenario's pieces (:func:`register_models`, :func:`live_server`, :class:`Load`, :func:`run_scenario`) are
also what ``benchmarks/bench_deploy.py`` runs, longer and with more figures.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from .conftest import ROOT, bentoml_home, stop_server

pytestmark = [pytest.mark.serving, pytest.mark.timeout(180)]

BENTO_DIR = ROOT / "bento"
START_TIMEOUT = 90.0
BRIEF = "adult"
MODEL_NAME = "workbench-adult"  # workbench.registry.store.model_name_for("adult"): what promote names it
RUN_ID = "live-deploy-test"


# ----------------------------------------------------------------------------------------------- the registry
@dataclass
class Models:
    """The throwaway home's three versions and what the scenario sends."""

    home: Path
    a: str
    b: str
    t: str                     # B's files, model.onnx altered after registration
    package_sha: dict          # tag -> the package.json sha256 the store recorded at registration
    onnx_sha: str
    records: list[dict]

    @property
    def bodies(self) -> list[bytes]:
        return [json.dumps(r).encode() for r in self.records]


def register_models(src: Path, home: Path, records: list[dict]) -> Models:
    """Register A, B and T (copies of the package in ``src``) in ``home``'s store, A released to production.

    Ledger: A ``certified`` then ``released`` (the first model of its brief), B and T ``certified`` then
    ``staged``. Must run inside :func:`bentoml_home` for ``home``.
    """
    import bentoml

    from workbench.registry import ledger
    from workbench.registry.store import save_model_package

    files = {p.relative_to(src).as_posix(): p.read_bytes() for p in src.rglob("*")
             if p.is_file() and p.name not in ("package.json", "model.yaml")}
    onnx_sha = json.loads(files["serving.json"])["onnx_sha256"]
    tags, shas = [], {}
    for _ in "abt":
        tag = save_model_package(files, name=MODEL_NAME, labels={"stage": "certified"},
                                 metadata={"run_id": RUN_ID, "onnx_sha256": onnx_sha, "brief": BRIEF})
        tags.append(tag)
        shas[tag] = bentoml.models.get(tag).info.metadata["package_sha256"]
    a, b, t = tags
    model = Path(bentoml.models.get(t).path) / "model.onnx"  # T: altered after registration, one byte
    data = bytearray(model.read_bytes())
    data[-1] ^= 0x01
    model.write_bytes(bytes(data))
    for tag in tags:
        ledger.record("certified", tag, reason="live test: registered", by="test")
    ledger.record("released", a, reason="first model: no champion to compare", by="test", sha256=onnx_sha,
                  package_sha256=shas[a], run_id=RUN_ID, brief=BRIEF)
    ledger.set_production(a, sha256=onnx_sha, run_id=RUN_ID, brief=BRIEF, package_sha256=shas[a])
    for tag in (b, t):
        ledger.record("staged", tag, reason="live test: staged", by="test")
    return Models(home=home, a=a, b=b, t=t, package_sha=shas, onnx_sha=onnx_sha, records=records)


def _release_lines(models: Models, tag: str, reason: str) -> None:
    """What ``workbench release <tag>`` writes once its checks passed, under the ledger lock: ``retired`` for the
    model it replaces, ``released`` for this one, then the production pointer. (``release()`` itself first
    rehearses the model behind a ``bentoml serve`` of its own and load-tests it: seconds per release.)"""
    from workbench.registry import ledger
    from workbench.serving.pointer import production_pointer

    with ledger.transition():
        current = (production_pointer() or {}).get("tag")
        if current and current != tag:
            ledger.record("retired", current, reason=f"replaced in production by {tag}", by="test", brief=BRIEF,
                          replaced_by=tag)
        ledger.record("released", tag, reason=reason, by="test", sha256=models.onnx_sha,
                      package_sha256=models.package_sha[tag], run_id=RUN_ID, brief=BRIEF, replaces=current)
        ledger.set_production(tag, sha256=models.onnx_sha, run_id=RUN_ID, brief=BRIEF,
                              package_sha256=models.package_sha[tag])


def release_to_production(models: Models, tag: str) -> None:
    """A release of ``tag`` to production (the ledger lines and the pointer)."""
    _release_lines(models, tag, "live test: release")


def release_altered(models: Models, tag: str) -> None:
    """A release of a package altered after registration (on disk, after its certificate was recorded): the
    registry names it, the service must refuse it and keep serving."""
    _release_lines(models, tag, "live test: a package altered after registration")


def rollback(models: Models) -> None:
    """``workbench rollback``: production returns to the model before the current one."""
    from workbench.registry import ledger

    ledger.rollback(reason="live test: rollback", by="test")


def start_challenger(models: Models, tag: str, mode: str, percent: int | None = None) -> None:
    """``workbench release <tag> --to canary|shadow`` once its checks passed: a ledger line and the pointer's
    ``challenger`` (:func:`workbench.registry.ledger.set_challenger`)."""
    from workbench.registry import ledger

    ledger.set_challenger(tag, mode=mode, percent=percent, package_sha256=models.package_sha[tag],
                          reason=f"live test: {mode}", by="test")


def end_challenger(models: Models, tag: str, mode: str = "canary", percent: float = 0.0) -> None:
    """The automatic rollback's registry write (:func:`workbench.serving.deploy.roll_back_challenger`): a
    ``staged`` line with ``automatic: true`` and the pointer without its challenger. Nothing is written when the
    service already rolled the challenger back by itself (the same write, from a worker)."""
    from workbench.serving.deploy import ChallengerSpec, roll_back_challenger
    from workbench.serving.pointer import production_pointer

    line = roll_back_challenger(ChallengerSpec(tag, models.package_sha[tag], mode, percent), "live test: ended",
                                trigger="errors", by="test (automatic rollback's write)")
    assert line is not None or "challenger" not in (production_pointer() or {}), line


# ----------------------------------------------------------------------------------------------- the server
@dataclass
class Server:
    url: str
    proc: subprocess.Popen
    log: Path
    known: list = field(default_factory=list)  # psutil processes of its tree seen while it ran

    def remember_tree(self) -> None:
        import psutil

        with contextlib.suppress(psutil.NoSuchProcess):
            seen = {p.pid: p for p in self.known}
            for p in psutil.Process(self.proc.pid).children(recursive=True):
                seen.setdefault(p.pid, p)
            self.known = list(seen.values())

    def alive(self) -> list[int]:
        """Pids of the server's tree still running (zombies count as stopped)."""
        import psutil

        out = []
        for p in [*self.known]:
            with contextlib.suppress(psutil.NoSuchProcess):
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    out.append(p.pid)
        if self.proc.poll() is None:
            out.append(self.proc.pid)
        return out


def _free_port() -> int:
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def live_server(home: Path, log_dir: Path, out: Path, *, workers: int = 2, poll_s: float = 0.2,
                **env: str) -> Iterator[Server]:
    """``bentoml serve`` of ``bento/service.py`` on 127.0.0.1 with hot swap on; yields once ``/readyz`` is 200 and
    every worker answers; always stops the whole process tree (:func:`stop_server`)."""
    import httpx

    port = _free_port()
    full_env = {k: v for k, v in os.environ.items() if k not in ("WORKBENCH_MODEL_TAG", "WORKBENCH_SERVING_PIN")}
    full_env.update(BENTOML_HOME=str(home), WORKBENCH_LOG_DIR=str(log_dir), WORKBENCH_WORKERS=str(workers),
                    WORKBENCH_HOT_SWAP="1", WORKBENCH_POINTER_POLL_S=str(poll_s), BENTOML_DO_NOT_TRACK="true",
                    OMP_NUM_THREADS="1")
    full_env.update(env)
    with out.open("wb") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "--host", "127.0.0.1", "--port",
                                 str(port)], cwd=BENTO_DIR, env=full_env, stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", proc, out)
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            server.remember_tree()
            if proc.poll() is not None:
                raise RuntimeError(f"bentoml serve exited with {proc.returncode}:\n{out.read_text()[-3000:]}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"bentoml serve not ready after {START_TIMEOUT:.0f} s:\n{out.read_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{server.url}/readyz", timeout=1.0).status_code == 200:
                    break
            time.sleep(0.1)
        server.remember_tree()
        yield server
    finally:
        server.remember_tree()
        stop_server(proc, server.known)


def metric(url: str, name: str, **labels: str) -> float:
    """The sum of ``name``'s samples on ``/metrics`` whose labels include ``labels`` (0 when none)."""
    import httpx
    from prometheus_client.parser import text_string_to_metric_families

    text = httpx.get(f"{url}/metrics", timeout=5.0).text
    total = 0.0
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                total += s.value
    return total


# ----------------------------------------------------------------------------------------------- the clients
@dataclass(frozen=True)
class Answer:
    rid: str
    sent: float                # time.monotonic() at send
    got: float                 # ... at the answer (or the error)
    status: int                # 0: a transport error
    version: str | None        # the answer's model_version
    error: str = ""


class Load:
    """``clients`` keep-alive clients in a thread of their own (asyncio, one aiohttp session), each sending one
    body after another with its own ``X-Request-ID`` (``<prefix>-<client>-<n>``) until :meth:`stop`,
    ``max_requests`` in all or ``max_s`` seconds. ``caller_key(client, n)``: an ``X-Caller-Key`` per request."""

    def __init__(self, url: str, bodies: list[bytes], *, clients: int = 32, max_requests: int = 200_000,
                 max_s: float = 60.0, prefix: str = "r", caller_key: Callable[[int, int], str] | None = None,
                 timeout_s: float = 10.0, stagger_s: float = 0.005) -> None:
        self.url, self.bodies, self.clients = f"{url}/predict", bodies, clients
        self.stagger_s = stagger_s  # client c starts c x this late: the workers get a share of the connections
        self.max_requests, self.max_s, self.prefix = max_requests, max_s, prefix
        self.caller_key, self.timeout_s = caller_key, timeout_s
        self.answers: list[Answer] = []  # appended by the clients' thread (list.append is atomic)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._sent = 0

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._run, name="load", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> list[Answer]:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(self.timeout_s + 10)
            assert not self._thread.is_alive(), "the clients did not stop"
        if self._error is not None:
            raise self._error
        return self.answers

    def join(self) -> list[Answer]:
        """Wait for ``max_requests`` / ``max_s`` to end the load."""
        if self._thread is not None:
            self._thread.join(self.max_s + self.timeout_s + 10)
        return self.stop()

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # noqa: BLE001 - re-raised by stop()
            self._error = exc

    async def _main(self) -> None:
        import aiohttp

        deadline = time.monotonic() + self.max_s
        connector = aiohttp.TCPConnector(limit=self.clients, limit_per_host=self.clients)
        timeout = aiohttp.ClientTimeout(total=self.timeout_s)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await asyncio.gather(*(self._client(session, c, deadline) for c in range(self.clients)))

    async def _client(self, session, c: int, deadline: float) -> None:
        n = 0
        clock, bodies, append = time.monotonic, self.bodies, self.answers.append
        await asyncio.sleep(c * self.stagger_s)
        while not self._stop.is_set() and self._sent < self.max_requests and clock() < deadline:
            self._sent += 1
            rid = f"{self.prefix}-{c}-{n}"
            headers = {"Content-Type": "application/json", "X-Request-ID": rid}
            if self.caller_key is not None:
                headers["X-Caller-Key"] = self.caller_key(c, n)
            body = bodies[(c * 7919 + n) % len(bodies)]
            n += 1
            t0 = clock()
            try:
                async with session.post(self.url, data=body, headers=headers) as r:
                    raw = await r.read()
                    status = r.status
                version = json.loads(raw).get("model_version") if status == 200 else None
                append(Answer(rid, t0, clock(), status, version, "" if status == 200 else raw[:300].decode(
                    "utf-8", "replace")))
            except Exception as exc:  # noqa: BLE001 - a transport error is a failed request
                append(Answer(rid, t0, clock(), 0, None, f"{type(exc).__name__}: {exc}"[:300]))

    def wait(self, predicate: Callable[[list[Answer]], bool], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if predicate(self.answers):
                return True
            if self._thread is not None and not self._thread.is_alive():
                break
            time.sleep(0.02)
        return predicate(self.answers)


def first_answer_after(answers: list[Answer], t: float, version: str) -> float | None:
    """Seconds from ``t`` to the first answer by ``version`` received after ``t`` (None: none yet)."""
    got = [a.got for a in answers if a.version == version and a.got >= t]
    return min(got) - t if got else None


def last_n_by(answers: list[Answer], n: int, version: str) -> bool:
    """The ``n`` last answers (by receipt) were all given by ``version``."""
    tail = answers[-n:]
    return len(tail) == n and all(a.version == version for a in tail)


# ----------------------------------------------------------------------------------------------- the scenario
@dataclass
class Step:
    name: str
    at: float                  # monotonic time right after the registry call returned
    new_version: str | None    # the version clients must start seeing (None: no change expected)
    swap_s: float | None = None  # first answer by new_version after ``at``
    done_s: float = 0.0        # how long the step waited/dwelt
    call_s: float = 0.0        # how long the registry call took (release: its integration check too)


@dataclass
class ScenarioResult:
    answers: list[Answer]
    steps: list[Step]
    swap_failures_t: float     # /metrics: workbench_model_swap_failures_total for T
    swaps: dict                # /metrics: workbench_model_swaps_total by (version, role)
    wall_s: float

    @property
    def failed(self) -> list[Answer]:
        return [a for a in self.answers if a.status != 200]

    @property
    def by_version(self) -> Counter:
        return Counter(a.version for a in self.answers if a.status == 200)


def run_scenario(server: Server, models: Models, *, clients: int = 32, dwell_s: float = 0.4,
                 step_timeout_s: float = 10.0, max_requests: int = 200_000, workers: int = 2,
                 prefix: str = "r") -> ScenarioResult:
    """Move the pointer through A -> B -> T -> B -> A -> canary B 25% beside A -> A under ``clients`` clients.

    Each step waits for its effect to be seen (bounded by ``step_timeout_s``), then lets traffic run ``dwell_s``:
    a new champion until it answers; T until ``/metrics`` counts its failed swap in every worker; the canary
    until both models answer; its end until the last 200 answers all come from A. ``prefix`` starts every request
    id (give each run on one server its own).
    """
    t_start = time.monotonic()
    load = Load(server.url, models.bodies, clients=clients, max_requests=max_requests, prefix=prefix,
                max_s=60.0 + 12 * (step_timeout_s + dwell_s)).start()
    steps: list[Step] = []

    def step(name: str, action: Callable[[], None], new_version: str | None,
             seen: Callable[[float], bool] | None = None) -> None:
        t0 = time.monotonic()
        action()
        at = time.monotonic()
        s = Step(name, at, new_version, call_s=at - t0)
        if new_version is not None:
            assert load.wait(lambda ans: first_answer_after(ans, at, new_version) is not None, step_timeout_s), (
                f"{name}: no answer by {new_version} within {step_timeout_s:g} s")
            s.swap_s = first_answer_after(load.answers, at, new_version)
        if seen is not None:
            assert load.wait(lambda ans: seen(at), step_timeout_s), f"{name}: not seen within {step_timeout_s:g} s"
        time.sleep(dwell_s)
        s.done_s = time.monotonic() - at
        steps.append(s)

    try:
        assert load.wait(lambda ans: len(ans) >= 4 * clients, step_timeout_s), "the clients got no answers"
        time.sleep(dwell_s)
        step("release A -> B", lambda: release_to_production(models, models.b), models.b)
        refused = metric(server.url, "workbench_model_swap_failures_total", model_version=models.t)
        step("release T (altered)", lambda: release_altered(models, models.t), None,
             lambda at: metric(server.url, "workbench_model_swap_failures_total", model_version=models.t)
             >= refused + workers)
        step("rollback T -> B (B serves already)", lambda: rollback(models), None)
        step("rollback B -> A", lambda: rollback(models), models.a)
        step("canary B 25% beside A", lambda: start_challenger(models, models.b, "canary", 25), models.b,
             lambda at: first_answer_after(load.answers, at, models.a) is not None)
        step("canary ends (automatic rollback's write)", lambda: end_challenger(models, models.b, percent=25), None,
             lambda at: last_n_by(load.answers, 200, models.a))
    finally:
        answers = load.stop()
    swaps: dict = {}
    for v in (models.a, models.b, models.t):
        for role in ("champion", "challenger"):
            swaps[(v, role)] = metric(server.url, "workbench_model_swaps_total", model_version=v, role=role)
    return ScenarioResult(answers=answers, steps=steps,
                          swap_failures_t=metric(server.url, "workbench_model_swap_failures_total",
                                                 model_version=models.t),
                          swaps=swaps, wall_s=time.monotonic() - t_start)


def logged(log_dir: Path, version: str, *, raw: bool = False) -> list[tuple[str, str | None, str | None]]:
    """``(request_id, role, answered_by)`` of every row ``version`` logged ([] when it has no log).

    ``raw=False`` reads through the project's reader (:func:`workbench.monitoring.compact.read_columns`, what
    ``workbench drift``/``compare``/feedback read); ``raw=True`` parses each JSON line of the segments
    (:func:`workbench.monitoring.log.list_segments`) on its own, a cross-check that does not depend on that reader.
    """
    if raw:
        from workbench.monitoring.log import list_segments

        out = []
        for seg in list_segments(log_dir, version):
            for line in seg.read_bytes().splitlines():
                if line.strip():
                    d = json.loads(line)
                    out += [(d["request_id"], (d.get("role") or [None] * d["n"])[i],
                             (d.get("answered_by") or [None] * d["n"])[i]) for i in range(d["n"])]
        return out
    from workbench.errors import DataError
    from workbench.monitoring.compact import read_columns

    try:
        df = read_columns(log_dir, version, ["request_id", "role", "answered_by"])
    except DataError:
        return []
    cols = [df[c].to_list() if c in df.columns else [None] * df.height for c in ("request_id", "role", "answered_by")]
    return list(zip(*cols, strict=True))


def log_coverage(log_dir: Path, answers: list[Answer], versions: list[str], *, raw: bool = False) -> dict:
    """For each version: how many requests it answered, how many rows it logged as answered by itself (a line
    without ``answered_by``: one model served), how many answered ids are in those rows, and examples of answered
    ids missing from them and of logged ids no client got from this version."""
    out = {}
    for v in versions:
        answered = {a.rid for a in answers if a.status == 200 and a.version == v}
        rows = logged(log_dir, v, raw=raw)
        mine = {rid for rid, _role, by in rows if by in (None, v)}
        out[v] = {"answered": len(answered), "logged": len(mine), "in_log": len(answered & mine),
                  "roles": dict(Counter(role for _rid, role, _by in rows)),
                  "missing": sorted(answered - mine)[:20], "not_answered": sorted(mine - answered)[:20]}
    return out


def segments_by_pid(log_dir: Path) -> dict[str, int]:
    """Lines logged per server process (a segment is ``<start>-<pid>.jsonl``): did both workers answer?"""
    from workbench.monitoring.log import list_segments

    out: Counter = Counter()
    for seg in list_segments(log_dir):
        out[seg.stem.rsplit("-", 1)[-1]] += seg.read_bytes().count(b"\n")
    return dict(out)


# ----------------------------------------------------------------------------------------------- the test
@dataclass
class Live:
    models: Models
    result: ScenarioResult
    log_dir: Path
    server: Server
    alive: list[int]           # pids of the server's tree still running after the stop


@pytest.fixture(scope="module")
def live(serving_package, tmp_path_factory) -> Live:
    base = tmp_path_factory.mktemp("pointer_change_live")
    home, log_dir = base / "bentoml_home", base / "log"
    with bentoml_home(home):
        models = register_models(serving_package.path, home, serving_package.records[:50])
        with live_server(home, log_dir, base / "bentoml-serve.log") as server:
            try:
                result = run_scenario(server, models)
            except AssertionError as exc:
                raise AssertionError(f"{exc}\n--- server log ---\n{server.log.read_text()[-4000:]}") from None
        alive = server.alive()
    return Live(models, result, log_dir, server, alive)


def test_no_request_fails_while_the_pointer_moves(live):
    assert len(live.result.answers) > 1000  # 32 clients for the whole scenario
    failed = live.result.failed
    assert not failed, Counter((a.status, a.error[:80]) for a in failed).most_common(5)


def test_the_altered_model_never_answers_and_its_failed_swap_is_counted(live):
    m, r = live.models, live.result
    assert r.by_version[m.t] == 0
    assert set(r.by_version) <= {m.a, m.b}
    assert r.swap_failures_t >= 2  # refused in each of the 2 workers, on /metrics
    assert r.swaps[(m.t, "champion")] == 0


def test_both_models_answered_and_each_worker_followed_every_change(live):
    m, r = live.models, live.result
    assert r.by_version[m.a] > 0 and r.by_version[m.b] > 0
    seen = {s.name: s for s in r.steps}
    assert len(seen) == 6
    assert seen["release A -> B"].swap_s is not None and seen["rollback B -> A"].swap_s is not None
    # each worker swapped B in once (the rollback T -> B names what it serves: nothing reloaded), A back once,
    # and the canary B in beside A once
    assert r.swaps[(m.b, "champion")] == r.swaps[(m.a, "champion")] == r.swaps[(m.b, "challenger")] == 2
    # which worker accepts a connection is the kernel's choice (both accept on one shared socket): usually both
    # answer, but one worker may take all 32 connections; the swap counts above show both followed the pointer
    assert 1 <= len(segments_by_pid(live.log_dir)) <= 2


def _check_coverage(live: Live, *, raw: bool) -> None:
    m = live.models
    cover = log_coverage(live.log_dir, live.result.answers, [m.a, m.b, m.t], raw=raw)
    for v in (m.a, m.b):
        c = cover[v]
        assert c["answered"] > 0 and c["in_log"] == c["answered"], (v, c)
        assert not c["not_answered"], (v, c)  # and nothing logged that no client got from this version
    assert cover[m.t]["logged"] == 0
    assert cover[m.b]["roles"].get("canary", 0) > 0  # B's canary lines: role canary, answered_by B
    assert cover[m.a]["roles"].get("champion", 0) > 0  # A's lines beside the canary: role champion


def test_every_answered_request_is_in_the_log_lines_under_the_version_that_answered_it(live):
    _check_coverage(live, raw=True)


def test_the_log_reader_reads_every_answered_request_under_the_version_that_answered_it(live):
    _check_coverage(live, raw=False)


@pytest.mark.parametrize("reader", ["read_columns", "read_log"])
def test_a_segment_with_one_model_and_two_model_lines_is_readable(tmp_path, reader):
    """The minimal case: one segment, lines logged with one model served, then one with a canary beside it (what
    a champion's segment holds whenever a challenger starts or ends while it serves)."""
    from workbench.monitoring.compact import read_columns
    from workbench.monitoring.log import PredictionLog, read_log

    log = PredictionLog("m:1", root=tmp_path)
    inputs = {"age": [39.0], "sex": ["Male"]}
    plain = {"probability": [0.2], "label": ["<=50K"]}
    for i in range(120):  # the champion serves alone for a while (more lines than a reader's schema sample)
        log.append_outputs(f"alone-{i}", inputs, plain, validated=True)
    log.append_outputs("beside-a-canary", inputs, {**plain, "role": ["champion"], "answered_by": ["m:1"],
                                                   "latency_ms": [0.1]}, validated=True)
    log.close()
    df = read_columns(tmp_path, "m:1") if reader == "read_columns" else read_log(tmp_path, model_version="m:1")
    assert df["request_id"].to_list() == [*(f"alone-{i}" for i in range(120)), "beside-a-canary"]
    assert df["answered_by"].to_list() == [None] * 120 + ["m:1"]


def test_every_process_of_the_server_stopped(live):
    assert len(live.server.known) >= 2  # the arbiter's tree: at least the 2 workers
    assert live.alive == []




def test_a_release_rehearsal_does_not_share_the_running_services_metrics_folder(serving_package, monkeypatch):
    """Which BentoML home the rehearsal's ``bentoml serve`` gets (its command is caught before it starts)."""
    from workbench.registry import rehearsal

    class Caught(Exception):
        pass

    seen: dict = {}

    def popen(cmd, *args, env=None, **kwargs):
        seen.update(cmd=cmd, env=dict(env or os.environ))
        raise Caught

    monkeypatch.setattr(rehearsal.subprocess, "Popen", popen)
    with pytest.raises(Caught), rehearsal.serve_staged(serving_package.tag):
        pass
    assert "serve" in seen["cmd"]
    theirs = Path(seen["env"].get("BENTOML_HOME") or Path.home() / "bentoml") / "prometheus_multiproc_dir"
    ours = serving_package.home / "prometheus_multiproc_dir"
    assert theirs.resolve() != ours.resolve(), "the rehearsal server would empty the running service's metrics"
