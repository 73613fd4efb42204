"""Release rehearsal: the staged model behind a real ``bentoml serve`` on 127.0.0.1, and the HTTP traffic a
release sends it (the integration test's replay and the bounded load test).

The server
----------
:func:`serve_staged` starts ``bentoml serve service:Predict --host 127.0.0.1 --port <free port>`` in the project's
``bento/`` folder (:func:`workbench.config.settings` ``.root / "bento"``) with ``WORKBENCH_MODEL_TAG=<tag>`` (the
service verifies and serves exactly that package), ``WORKBENCH_HOT_SWAP=0`` (it never follows the production
pointer) and ``WORKBENCH_LOG_DIR`` in a temporary folder, so rehearsal traffic never enters the production
prediction log. ``WORKBENCH_WORKERS`` is left as the environment (and so the service) decides: the rehearsal is
served as production would be. The server runs in a process session of its own (the terminal's Ctrl-C reaches
only this process, which then stops it); readiness is ``/readyz`` == 200 within ``ready_timeout_s``, the process
checked alive on every poll. ``/readyz`` saying "the model is not being served" (the package failed verification
in the server) fails at once: it will not recover. A failure raises :class:`RehearsalError` with ``/readyz``'s
last reason and the tail of the server's output. On leaving the block -- normally, on an exception, on Ctrl-C or
SIGTERM (turned into KeyboardInterrupt while the block runs) -- the whole process tree (BentoML's arbiter and its
workers, which run in sessions of their own) is stopped (:func:`stop_process_tree`; a second Ctrl-C meanwhile is
ignored) and the temporary folder removed.

The client
----------
A minimal asyncio HTTP/1.1 keep-alive client (:class:`_Connection`: one request at a time per connection,
``Content-Length`` or chunked answers). Measured here against this service (2 cores, 2 workers, 32 clients,
single-record bodies, rounds of 4-5 s interleaved, client CPU from ``getrusage``): this client took a median of
about 50 us of its process's CPU per request, aiohttp 3.14 about 125 us (186 us on a busier machine) and httpx
0.28 about 2,500 us (4,200 us). On two cores the client's CPU is taken from the server under test: in the
quietest round the server answered about 10,700 req/s with this client, 6,700 with aiohttp and 410 with httpx.
The load test is meant to measure the server, not the client, so it uses the cheapest client.

The load test
-------------
:func:`load_test`: ``clients`` concurrent keep-alive connections, each sending single-record ``POST /predict``
bodies (cycling through the given ones) back to back, until ``seconds`` have passed or ``max_requests`` were
sent; latency is per request, from the first byte written to the last byte read. The report
(:class:`LoadTestReport`) has req/s, p50/p90/p99/max, non-2xx answers and transport errors (refused, reset or
timed-out connections), and its gate: error share <= ``max_error_rate`` and p99 <= ``p99_ms``.
"""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._report import Report, esc, html_table
from ..errors import WorkbenchError

__all__ = ["READY_TIMEOUT_S", "LoadTestReport", "RehearsalError", "Server", "free_port", "load_test", "post_all",
           "serve_staged", "stop_process_tree"]

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 60.0
"""Longest the rehearsal server may take to answer ``/readyz`` 200."""
REQUEST_TIMEOUT_S = 30.0
"""Longest one integration request may take (the service's own per-request timeout is 30 s)."""
GRACE_S = 10.0
"""How long the load test waits for requests still in flight once its time is up (then they count as timeouts)."""
NOT_SERVED = "the model is not being served"  # /readyz's reason when the package failed verification in the server
_TAIL_BYTES = 4000


class RehearsalError(WorkbenchError):
    """The rehearsal server could not be started or did not become ready: carries ``/readyz``'s last reason
    (``readiness``) and the tail of the server's output (``output_tail``)."""

    def __init__(self, message: str, *, readiness: str = "", output_tail: str = "", hint: str | None = None,
                 server: dict | None = None) -> None:
        self.readiness = readiness
        self.output_tail = output_tail
        self.server = server or {}  # pids of the server's tree and its temporary folder (all gone when raised)
        lines = [ln for ln in output_tail.splitlines() if ln.strip()][-12:]
        shown = "\n".join(lines)[-1200:]
        super().__init__(message + (f"; /readyz said: {readiness}" if readiness else "")
                         + (f"\nserver output (last lines):\n{shown}" if shown else ""), hint=hint)


# --------------------------------------------------------------------------------------------- the server
def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` now (another process may take it before the server binds: see the retry in
    :func:`serve_staged`)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def stop_process_tree(proc: subprocess.Popen, known: Sequence[Any] = (), *, timeout_s: float = 20.0) -> None:
    """Stop a server started with ``start_new_session=True`` and every process of its tree.

    SIGTERM to its process group and wait (BentoML's arbiter then stops its workers); SIGKILL the group after
    ``timeout_s``; then terminate -- and kill if need be -- by pid every process of the tree still alive (BentoML's
    workers run in sessions of their own, so the group signal alone can miss them, and a killed arbiter orphans
    them). ``known``: psutil processes of the tree seen earlier (after readiness), stopped too.
    """
    import psutil

    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    procs = {p.pid: p for p in [*known, *tree] if p.pid != proc.pid}
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    for p in procs.values():
        with contextlib.suppress(psutil.Error):
            if p.is_running():
                p.terminate()
    _, alive = psutil.wait_procs(list(procs.values()), timeout=10)
    for p in alive:
        with contextlib.suppress(psutil.Error):
            p.kill()
    psutil.wait_procs(alive, timeout=5)


@dataclass
class Server:
    """A running rehearsal server."""

    tag: str
    host: str
    port: int
    pid: int
    workers: int = 0
    pids: list[int] = field(default_factory=list)  # the arbiter and every process of its tree, seen when ready
    ready_s: float = 0.0
    bento_dir: str = ""
    work_dir: str = ""  # the temporary folder (prediction log, server output), removed when the server stops

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def to_dict(self) -> dict:
        return {"tag": self.tag, "url": self.url, "pid": self.pid, "pids": self.pids, "workers": self.workers,
                "ready_s": round(self.ready_s, 3), "bento_dir": self.bento_dir, "work_dir": self.work_dir,
                "log_dir": f"{self.work_dir}/log (temporary, removed afterwards: never the production log)"}


def bento_folder(root: Path | None = None) -> Path:
    """The project's ``bento/`` folder (with ``service.py``).

    Raises
    ------
    WorkbenchError
        There is none under the project root.
    """
    from ..config import settings

    folder = (root or settings().root) / "bento"
    if not (folder / "service.py").is_file():
        raise WorkbenchError(f"no BentoML service at {folder / 'service.py'}: a release rehearses the staged model "
                             "behind `bentoml serve` of the project's bento/ folder",
                             hint="run `workbench release` inside the project checkout, or set WORKBENCH_HOME to it")
    return folder


def _tail(path: Path) -> str:
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - _TAIL_BYTES))
            return fh.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _readyz(host: str, port: int) -> tuple[int | None, str]:
    """``GET /readyz``: (status, text), or (None, why) when nothing answers yet."""
    conn = http.client.HTTPConnection(host, port, timeout=2.0)
    try:
        conn.request("GET", "/readyz")
        r = conn.getresponse()
        return r.status, r.read(2000).decode("utf-8", errors="replace").strip()
    except (OSError, http.client.HTTPException) as exc:
        return None, f"no answer ({type(exc).__name__})"
    finally:
        conn.close()


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs (main thread only), SIGTERM raises KeyboardInterrupt, so the server is stopped."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except (ValueError, OSError):  # not settable here
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _signals_ignored() -> Iterator[None]:
    """While the block runs (main thread only), SIGINT and SIGTERM are ignored: a second Ctrl-C must not cut
    the stopping of the server short (its workers would be orphaned)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    saved = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(ValueError, OSError):
            saved[sig] = signal.signal(sig, signal.SIG_IGN)
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def _rehearsal_home(work: Path) -> Path:
    """A BentoML home of the rehearsal's own whose ``models/`` and ``workbench/`` are the real home's (symlinks).

    ``bentoml serve`` empties ``$BENTOML_HOME/prometheus_multiproc_dir`` when it starts: sharing the real home
    would wipe the running service's ``/metrics`` on every release. The rehearsal server reads the model store
    and the registry's files through the links and writes nothing there (its log goes to ``work/log``).
    """
    from ..serving.pointer import bentoml_home

    real = bentoml_home().resolve()
    home = work / "bentoml_home"
    home.mkdir(parents=True, exist_ok=True)
    for name in ("models", "workbench"):
        (real / name).mkdir(parents=True, exist_ok=True)
        (home / name).symlink_to(real / name, target_is_directory=True)
    return home


@contextlib.contextmanager
def serve_staged(tag: str, *, bento_dir: str | Path | None = None, ready_timeout_s: float = READY_TIMEOUT_S,
                 on_step: Callable[[str], None] | None = None) -> Iterator[Server]:
    """Serve ``tag`` with a real ``bentoml serve`` on 127.0.0.1 while the block runs (see the module docstring).

    Raises
    ------
    WorkbenchError
        No ``bento/service.py``.
    RehearsalError
        The server exited, or was not ready within ``ready_timeout_s``, or ``/readyz`` says the model is not
        being served (the package failed verification).
    """
    import psutil

    folder = Path(bento_dir) if bento_dir is not None else bento_folder()
    if not (folder / "service.py").is_file():
        raise WorkbenchError(f"no BentoML service at {folder / 'service.py'}", hint="pass the project's bento/ folder")
    step = on_step or (lambda _msg: None)
    work = Path(tempfile.mkdtemp(prefix="workbench-rehearsal-"))
    env = {k: v for k, v in os.environ.items() if k not in ("WORKBENCH_SERVING_PIN",)}
    env.update(WORKBENCH_MODEL_TAG=str(tag), WORKBENCH_HOT_SWAP="0", WORKBENCH_LOG_DIR=str(work / "log"),
               BENTOML_DO_NOT_TRACK="true", OMP_NUM_THREADS=env.get("OMP_NUM_THREADS", "1"),
               BENTOML_HOME=str(_rehearsal_home(work)))
    host = "127.0.0.1"
    proc: subprocess.Popen | None = None
    known: list[Any] = []
    try:
        with _sigterm_as_interrupt():
            for attempt in range(3):
                port = free_port(host)
                out_path = work / f"serve-{attempt}.log"
                t0 = time.monotonic()
                with out_path.open("wb") as out:
                    proc = subprocess.Popen(
                        [sys.executable, "-m", "bentoml", "serve", "service:Predict", "--host", host, "--port",
                         str(port)], cwd=folder, env=env, stdin=subprocess.DEVNULL, stdout=out,
                        stderr=subprocess.STDOUT, start_new_session=True)
                step(f"bentoml serve of {tag} starting on {host}:{port} (pid {proc.pid})")
                reason = ""
                deadline = t0 + ready_timeout_s

                def failed(message: str, readiness: str, hint: str, proc: subprocess.Popen = proc,
                           out_path: Path = out_path) -> RehearsalError:
                    with contextlib.suppress(psutil.Error):
                        known.extend(psutil.Process(proc.pid).children(recursive=True))  # stopped in finally
                    return RehearsalError(message, readiness=readiness, output_tail=_tail(out_path), hint=hint,
                                          server={"pids": [proc.pid, *(c.pid for c in known)],
                                                  "work_dir": str(work)})

                while True:
                    if proc.poll() is not None:
                        if "address already in use" in _tail(out_path).lower() and attempt < 2:
                            break  # another process took the port first: try another one
                        raise failed(f"bentoml serve of {tag} exited with code {proc.returncode} before it was "
                                     "ready", reason, "nothing was released; fix what the server output says")
                    status, text = _readyz(host, port)
                    if status == 200:
                        break
                    if status is not None:
                        reason = text
                        if NOT_SERVED in text:
                            raise failed(f"bentoml serve of {tag} does not serve the staged model", text,
                                         "nothing was released; the package must verify as the service loads it "
                                         "(`workbench models`; promote it again)")
                    if time.monotonic() > deadline:
                        raise failed(f"bentoml serve of {tag} was not ready after {ready_timeout_s:g} s",
                                     reason or "no answer", "nothing was released; see the server output")
                    time.sleep(0.1)
                if proc.poll() is None:
                    break
                stop_process_tree(proc)
            ready_s = time.monotonic() - t0
            with contextlib.suppress(psutil.Error):
                known = psutil.Process(proc.pid).children(recursive=True)
            workers = 0
            for c in known:
                with contextlib.suppress(psutil.Error):
                    workers += "--worker-id" in " ".join(c.cmdline())
            server = Server(tag=str(tag), host=host, port=port, pid=proc.pid, workers=workers,
                            pids=[proc.pid, *(c.pid for c in known)], ready_s=ready_s, bento_dir=str(folder),
                            work_dir=str(work))
            step(f"ready in {ready_s:.1f} s: {server.url}, {workers} worker(s)")
            yield server
    finally:
        with _signals_ignored():
            if proc is not None:
                stop_process_tree(proc, known)
            shutil.rmtree(work, ignore_errors=True)


# --------------------------------------------------------------------------------------------- the client
class _ProtocolError(Exception):
    """The server's answer is not HTTP/1.1 as expected."""


class _Connection:
    """One keep-alive HTTP/1.1 connection sending one request at a time."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self._head = (f"POST %s HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
                      "User-Agent: workbench-release\r\nContent-Length: %d\r\n\r\n").encode("ascii")

    async def post(self, path: bytes, body: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        reader, writer = self.reader, self.writer
        writer.write(self._head % (path, len(body)) + body)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.split(b"\r\n")
        try:
            status = int(lines[0].split(b" ", 2)[1])
        except (IndexError, ValueError):
            raise _ProtocolError(f"bad status line {lines[0][:60]!r}") from None
        length, chunked, close = None, False, False
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
            elif name == b"connection":
                close = b"close" in value.lower()
        if chunked:
            parts = []
            while True:
                size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    break
                parts.append(data[:-2])
            payload = b"".join(parts)
        elif length is not None:
            payload = await reader.readexactly(length)
        else:
            payload, close = await reader.read(), True
        if close:
            self.close()
        return status, payload

    def close(self) -> None:
        if self.writer is not None:
            with contextlib.suppress(Exception):
                self.writer.close()
        self.reader = self.writer = None


_TRANSPORT = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, _ProtocolError,
              ValueError)


def _run(coro: Any) -> Any:
    """Run ``coro`` to completion; in a thread of its own when this thread already runs an event loop (Jupyter)."""
    try:
        asyncio.get_running_loop()
        running = True
    except RuntimeError:
        running = False
    if not running:
        return asyncio.run(coro)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def post_all(server: Server, bodies: Sequence[bytes], *, concurrency: int = 4, path: str = "/predict",
             timeout_s: float = REQUEST_TIMEOUT_S) -> list[tuple[int | None, bytes]]:
    """POST every body to ``server`` (``concurrency`` keep-alive connections); the answers in order, each
    ``(status, body)``, or ``(None, b"<transport error>")`` when no answer came."""
    out: list[tuple[int | None, bytes]] = [(None, b"not sent")] * len(bodies)
    bpath = path.encode("ascii")

    async def main() -> None:
        nxt = 0

        async def worker() -> None:
            nonlocal nxt
            conn = _Connection(server.host, server.port)
            try:
                while nxt < len(bodies):
                    i, nxt = nxt, nxt + 1
                    try:
                        out[i] = await asyncio.wait_for(conn.post(bpath, bodies[i]), timeout_s)
                    except _TRANSPORT as exc:
                        conn.close()
                        out[i] = (None, f"{type(exc).__name__}: {exc}"[:300].encode())
            finally:
                conn.close()

        await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(bodies))))))

    _run(main())
    return out


# --------------------------------------------------------------------------------------------- the load test
@dataclass
class LoadTestReport(Report):
    """A bounded load test of a rehearsal server, with its gate (error share and p99 latency)."""

    clients: int
    seconds: float
    max_requests: int
    p99_limit_ms: float
    max_error_rate: float
    requests: int = 0            # attempted: answered + transport errors
    answered: int = 0
    non_2xx: int = 0
    transport_errors: int = 0
    duration_s: float = 0.0
    latency_ms: dict = field(default_factory=dict)
    statuses: dict = field(default_factory=dict)
    errors: dict = field(default_factory=dict)
    stopped_by: str = ""
    bodies: int = 0
    server: dict = field(default_factory=dict)
    title: str = "Release load test"

    @property
    def rps(self) -> float:
        return self.answered / self.duration_s if self.duration_s > 0 else 0.0

    @property
    def error_rate(self) -> float:
        return (self.non_2xx + self.transport_errors) / self.requests if self.requests else 0.0

    def failures(self) -> list[str]:
        """Why the gate refuses (empty: it passes), each with its figures."""
        out = []
        if not self.requests:
            out.append("no request was sent")
        bad = self.non_2xx + self.transport_errors
        if self.requests and self.error_rate > self.max_error_rate:
            out.append(f"error share {self.error_rate:.2%} ({bad} of {self.requests}: {self.non_2xx} non-2xx, "
                       f"{self.transport_errors} transport errors) > {self.max_error_rate:.2%}")
        p99 = self.latency_ms.get("p99")
        if p99 is None and self.requests:
            out.append("no latency measured (no answer came)")
        elif p99 is not None and p99 > self.p99_limit_ms:
            out.append(f"p99 latency {p99:.1f} ms > {self.p99_limit_ms:g} ms")
        return out

    @property
    def passed(self) -> bool:
        return not self.failures()

    def to_dict(self) -> dict:
        return {"clients": self.clients, "seconds": self.seconds, "max_requests": self.max_requests,
                "duration_s": round(self.duration_s, 3), "requests": self.requests, "answered": self.answered,
                "rps": round(self.rps, 1), "latency_ms": self.latency_ms, "non_2xx": self.non_2xx,
                "transport_errors": self.transport_errors, "error_rate": self.error_rate,
                "statuses": self.statuses, "errors": self.errors, "stopped_by": self.stopped_by,
                "bodies": self.bodies, "gate": {"p99_ms": self.p99_limit_ms, "max_error_rate": self.max_error_rate},
                "passed": self.passed, "failures": self.failures(), "server": self.server}

    def summary(self) -> dict:
        return {"requests": self.requests, "rps": round(self.rps, 1), "p99_ms": self.latency_ms.get("p99"),
                "non_2xx": self.non_2xx, "transport_errors": self.transport_errors, "clients": self.clients,
                "duration_s": round(self.duration_s, 3), "passed": self.passed}

    def figures(self) -> str:
        """One line of the figures (the go/no-go table's)."""
        lat = self.latency_ms
        f = (lambda k: "n/a" if lat.get(k) is None else f"{lat[k]:.1f}")  # noqa: E731
        return (f"{self.requests:,} requests in {self.duration_s:.1f} s at {self.clients} clients: {self.rps:,.0f} req/s, "
                f"p50 {f('p50')} ms, p99 {f('p99')} ms (limit {self.p99_limit_ms:g}), max {f('max')} ms, "
                f"{self.non_2xx} non-2xx, {self.transport_errors} transport errors")

    def _html_body(self) -> str:
        css = "wb-ok" if self.passed else "wb-bad"
        rows = [{"figure": k, "value": v} for k, v in {
            "clients": self.clients, "duration (s)": round(self.duration_s, 2), "requests": self.requests,
            "req/s": round(self.rps, 1), **{f"latency {k} (ms)": v for k, v in self.latency_ms.items()},
            "non-2xx": self.non_2xx, "transport errors": self.transport_errors,
            "gate: p99 (ms)": self.p99_limit_ms, "gate: error share": self.max_error_rate}.items()]
        return (f"<p><span class='{css}'>{'pass' if self.passed else 'fail'}</span> "
                f"{esc('; '.join(self.failures()))}</p>" + html_table(rows))


def load_test(server: Server, bodies: Sequence[bytes], *, clients: int, seconds: float, max_requests: int,
              p99_ms: float, max_error_rate: float, path: str = "/predict",
              on_tick: Callable[[str], None] | None = None) -> LoadTestReport:
    """``clients`` keep-alive connections POSTing ``bodies`` (cycled) back to back, for ``seconds`` or
    ``max_requests`` requests, whichever comes first; ``on_tick`` gets a progress line about once a second.

    Raises
    ------
    WorkbenchError
        No bodies to send.
    """
    if not bodies:
        raise WorkbenchError("the load test has no request bodies", hint="the integration test found no records")
    report = LoadTestReport(clients=clients, seconds=seconds, max_requests=max_requests, p99_limit_ms=p99_ms,
                            max_error_rate=max_error_rate, bodies=len(bodies), server=server.to_dict())
    lat = array("d")
    statuses: Counter = Counter()
    errors: Counter = Counter()
    bpath = path.encode("ascii")
    state = {"sent": 0, "non_2xx": 0}
    t0 = time.perf_counter()
    stop_at = t0 + seconds

    async def client() -> None:
        conn = _Connection(server.host, server.port)
        n = len(bodies)
        try:
            while state["sent"] < max_requests and time.perf_counter() < stop_at:
                body = bodies[state["sent"] % n]
                state["sent"] += 1
                try:
                    if conn.writer is None:
                        conn.reader, conn.writer = await asyncio.open_connection(server.host, server.port)
                    t = time.perf_counter()
                    status, _ = await conn.post(bpath, body)
                    lat.append(time.perf_counter() - t)
                except _TRANSPORT as exc:
                    errors[type(exc).__name__] += 1
                    conn.close()
                    await asyncio.sleep(0.01)  # a dead server must not turn this loop into a busy one
                    continue
                statuses[status] += 1
                if not 200 <= status < 300:
                    state["non_2xx"] += 1
        finally:
            conn.close()

    async def ticker() -> None:
        last_n, last_t = 0, t0
        while True:
            await asyncio.sleep(1.0)
            now, n = time.perf_counter(), len(lat)
            if on_tick is not None:
                on_tick(f"load test {min(now - t0, seconds):4.0f}/{seconds:g} s: {n:,} answered "
                        f"({(n - last_n) / (now - last_t):,.0f} req/s), {state['non_2xx']} non-2xx, "
                        f"{sum(errors.values())} transport errors")
            last_n, last_t = n, now

    async def main() -> str:
        tick = asyncio.create_task(ticker())
        tasks = [asyncio.create_task(client()) for _ in range(clients)]
        try:
            _, pending = await asyncio.wait(tasks, timeout=seconds + GRACE_S)
            for t in pending:
                t.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            if pending:
                return "time (requests still in flight after the grace period counted as timeouts)"
            return "max_requests" if state["sent"] >= max_requests else "time"
        finally:
            tick.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await tick

    report.stopped_by = _run(main())
    report.duration_s = time.perf_counter() - t0
    in_flight = state["sent"] - len(lat) - sum(errors.values())
    if in_flight > 0:
        errors["timeout"] += in_flight
    report.answered = len(lat)
    report.transport_errors = sum(errors.values())
    report.requests = report.answered + report.transport_errors
    report.non_2xx = state["non_2xx"]
    report.statuses = {str(k): v for k, v in sorted(statuses.items())}
    report.errors = dict(errors)
    if len(lat):
        ms = np.frombuffer(lat, dtype=np.float64) * 1000.0
        report.latency_ms = {"p50": float(np.quantile(ms, 0.5)), "p90": float(np.quantile(ms, 0.9)),
                             "p99": float(np.quantile(ms, 0.99)), "max": float(ms.max()), "mean": float(ms.mean())}
    else:
        report.latency_ms = {"p50": None, "p90": None, "p99": None, "max": None, "mean": None}
    return report
