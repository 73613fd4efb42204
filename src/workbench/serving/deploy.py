"""One service, two models: hot swap from the production pointer, a shadow or canary challenger, automatic rollback.

**On by default** when the model comes from the production pointer: ``bento/service.py`` wraps it in a
:class:`Deployment` unless ``WORKBENCH_HOT_SWAP=0``. A model named by ``$WORKBENCH_MODEL_TAG`` or pinned by a built
Bento is never swapped (one model per server until restart, :mod:`workbench.serving.predictor` "One model per
server"), and neither is any model with ``WORKBENCH_HOT_SWAP=0``: that server keeps the model its first process
resolved (``$WORKBENCH_SERVING_PIN``) and ignores a ``challenger`` in the pointer.

Hot swap
--------
Each worker runs one watcher thread (:meth:`Deployment.start`) that every :data:`POLL_S` seconds stats
``production.json`` (mtime, size, inode: a cheap syscall; the registry replaces the file atomically, so a change
is a new inode). When it changed, the pointer is read; a new champion tag -- or a new ``package_sha256`` for it --
is loaded and verified **beside** the serving one (:meth:`Predictor.load
<workbench.serving.predictor.Predictor.load>`: ``package.json`` against the pointer's and the store's
``package_sha256``, every file's sha256, the ONNX sha256, the self-test), then swapped in by one reference
assignment (``self._state = ...``). A request reads that reference once, when it starts, so requests in flight
finish on the model they started with. A model that fails verification is never swapped in: the reason is logged
at ERROR, counted in ``workbench_model_swap_failures_total{model_version, role, reason}`` and kept in
:attr:`Deployment.last_failure`; the serving model goes on serving, and the pointer is tried again only when it
changes again. This is also how a ``workbench rollback`` reaches a running server. Workers poll independently, so
for at most one poll (plus the new model's load) after a pointer change two workers may answer with different
models -- both verified, both answering; a worker respawned meanwhile resolves the pointer afresh at import, so it
starts on the pointer's model.

Challenger
----------
``production.json`` may carry ``"challenger": {"tag", "package_sha256", "mode": "shadow" | "canary",
"percent": N}``; it is loaded and verified the same way, beside the champion.

* ``shadow``: the champion answers every request. Each answered request is put on a bounded queue
  (:data:`SHADOW_QUEUE`; full: dropped and counted in ``workbench_shadow_dropped_total``) and scored by the
  challenger off the answer's path: **after the answer is sent**, on the same event loop
  (:meth:`Deployment.after_reply`, called by :class:`~workbench.serving.app.PredictRoute` once the response body is
  out, and as a Starlette background task on BentoML's route). Not in a thread: measured in-process, a shadow
  thread competing for the GIL doubled the champion's mean single-client latency (74 -> 246 us) and took its p99
  from 0.2 ms to 12 ms (GIL hand-offs); after the reply, the champion's own path only gains a queue put.
  (``shadow_thread=True`` keeps the thread, for callers without an event loop; it scores one at a time.)
  **In batches**: ``after_reply`` scores nothing until :data:`SHADOW_BATCH` requests are queued, or until
  :data:`SHADOW_DELAY_S` after the first of them (one ``call_later`` on the running loop; outside a loop, at once),
  then scores them with one session run (:meth:`Predictor.handle_many
  <workbench.serving.predictor.Predictor.handle_many>`: one prediction log line per request, the line
  :meth:`~workbench.serving.predictor.Predictor.handle` writes). Scored one by one right after each answer, the
  shadow's second prediction and log line (~90-230 us) landed on the next request of a client that sends it at
  once (1.38-1.41x the champion's single-client p50, benchmarks/README.md); amortised over a batch, most of it
  goes. A body the challenger refuses is answered alone, as before. The challenger's window gets one outcome per
  request, its latency the batch's time divided by its size (so a shadow's latency is its amortised cost per
  request, a little below what it would take answering alone); ``latency_ms`` in its log lines is the same value.
* ``canary`` at N%: a request whose key -- the ``X-Caller-Key`` header when given, else its request id -- hashes
  (BLAKE2b, so sticky: the same key always lands on the same model) into the lowest N% of 10,000 buckets is
  answered by the challenger; ``model_version`` in the answer says which model answered. A challenger that fails
  to score (an exception or a 5xx) is counted as its error and the request is answered by the champion instead,
  so a broken canary costs no failed request.

With a challenger present, every prediction log line gains ``role`` (``champion``, ``canary`` or ``shadow``),
``answered_by`` (the tag whose answer the caller got) and ``latency_ms``, one per row; each model logs to its own
segments (its tag), and a shadow line carries the same request id as the champion's, so ``workbench compare`` and
``workbench feedback`` join them.

Automatic rollback, and why it lives here
-----------------------------------------
The watcher thread also judges the challenger against the champion over a sliding window (:func:`judge`): only
the process that answers sees every outcome -- scoring exceptions, 5xx, its own latency -- at no cost (a deque
append per request), while a separate ``workbench watch`` would have to reconstruct them from the log and could
not see requests that were never logged; and the service can drop a bad challenger at once, before any
registry write. Each worker judges its own traffic; the first that trips takes the challenger out of the
pointer under the ledger lock (:func:`roll_back_challenger`: a ``staged`` ledger line with ``automatic: true``
and its ``trigger``), and the others drop it on their next pointer check.
Rules: the challenger package's ``monitoring.json`` ``deployment`` section (the brief's), else the
:class:`~workbench.brief.DeploymentSpec` defaults (window 300 s, 100 requests each, error and latency ratio 2).

The third trigger, ``metric``, needs labels, which the service never sees: ``workbench feedback`` joins them to
both models' logged rows, and :func:`judge_metric` (pure, beside :func:`judge`) rolls the challenger back when its
primary metric is worse than the champion's by more than ``deployment.metric_drop`` of the champion's value (in
the metric's direction: a loss rising is worse), once each model has ``deployment.min_labels`` labelled rows. It
writes the same ledger line (``trigger: "metric"``) through :func:`roll_back_challenger`; running services drop
the challenger on their next pointer check.

How a rollback shows on ``/metrics``
------------------------------------
``workbench_automatic_rollbacks_total{model_version, trigger}`` counts the rollbacks a worker decided itself. A
rollback decided elsewhere (``metric``, or another worker) reaches a worker only as a pointer without the
challenger, so every worker whose pointer loses a challenger reads the ledger's last line for that tag and, when
it is an automatic rollback, sets the gauge ``workbench_challenger_rollbacks{model_version, trigger}`` to the
number of automatic rollbacks the ledger records for that tag and trigger. A gauge set from the ledger, with
Prometheus' multiprocess mode ``max``, rather than a counter each worker increments: BentoML sums counters over
its workers, so N workers seeing one rollback would count N; the ledger's count, maxed over workers, is the truth
whichever worker (or command) wrote the line, and it is the same on every scrape.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import queue
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..errors import WorkbenchError
from .pointer import pointer_path
from .predictor import ModelRef, Predictor, Reply, Unavailable, model_ref, new_request_id, public_reason

__all__ = ["HOT_SWAP_ENV", "LATENCY_FLOOR_MS", "POLL_S", "SHADOW_BATCH", "SHADOW_DELAY_S", "SHADOW_QUEUE", "ChallengerSpec", "Deployment",
           "LabelledSummary", "Rules", "Summary", "Window", "automatic_rollbacks", "bucket", "challenger_of",
           "hot_swap_enabled", "judge", "judge_metric", "roll_back_challenger"]

log = logging.getLogger(__name__)

HOT_SWAP_ENV = "WORKBENCH_HOT_SWAP"
POLL_S = 1.0
"""Seconds between two looks at the production pointer (``$WORKBENCH_POINTER_POLL_S`` overrides)."""
SHADOW_QUEUE = 1000
"""Requests waiting for the shadow challenger; more are dropped and counted (``$WORKBENCH_SHADOW_QUEUE``)."""
SHADOW_BATCH = 32
"""Shadow requests scored together in one session run (``$WORKBENCH_SHADOW_BATCH``; 1: each after its answer)."""
SHADOW_DELAY_S = 0.02
"""At most this long between the first queued shadow request and its batch's scoring."""
LATENCY_FLOOR_MS = 5.0
"""A challenger's p99 must also exceed the champion's by this much to count as slow: on a ~50 us path, scheduling
jitter alone doubles a p99 (the shadow thread waits for the GIL) and must not roll a model back."""
MAX_WINDOW = 200_000
"""Outcomes kept per model (the window is also bounded in time, :attr:`Rules.window_s`)."""
BUCKETS = 10_000


def hot_swap_enabled() -> bool:
    """Whether a service serving the production pointer follows it: yes unless ``$WORKBENCH_HOT_SWAP`` is
    0/false/no/off (then one model per server until restart)."""
    return os.environ.get(HOT_SWAP_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def bucket(key: str) -> int:
    """The canary bucket of a request key, 0..9999: BLAKE2b of the key (sticky, uniform)."""
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big") % BUCKETS


# --------------------------------------------------------------------------------------------- the pointer
@dataclass(frozen=True)
class ChallengerSpec:
    """The pointer's ``challenger``: which model, certified by which ``package.json`` sha256, in which mode."""

    tag: str
    package_sha256: str | None
    mode: Literal["shadow", "canary"]
    percent: float = 0.0

    @property
    def key(self) -> tuple[str, str | None]:
        return self.tag, self.package_sha256


def challenger_of(pointer: dict | None) -> ChallengerSpec | None:
    """The challenger the pointer names, or None (none, or malformed: logged)."""
    raw = (pointer or {}).get("challenger")
    if not raw:
        return None
    try:
        mode = raw["mode"]
        percent = float(raw.get("percent") or 0.0)
        if mode not in ("shadow", "canary") or not raw.get("tag") or not 0.0 <= percent <= 100.0:
            raise ValueError(raw)
        return ChallengerSpec(tag=str(raw["tag"]), package_sha256=raw.get("package_sha256") or None, mode=mode,
                              percent=percent)
    except (KeyError, TypeError, ValueError, AttributeError):
        log.error("the production pointer's challenger is malformed, ignored: %.300s", raw)
        return None


# --------------------------------------------------------------------------------------------- the watcher
@dataclass(frozen=True)
class Rules:
    """When a challenger is rolled back (the brief's ``deployment`` section)."""

    window_s: float = 300.0
    min_requests: int = 100
    error_ratio: float = 2.0
    latency_ratio: float = 2.0
    metric_drop: float = 0.05
    min_labels: int = 200

    @classmethod
    def for_package(cls, model_dir: str | Path | None) -> Rules:
        """The ``deployment`` section of the package's ``monitoring.json`` when it has one, else the
        :class:`~workbench.brief.DeploymentSpec` defaults."""
        from ..brief import DeploymentSpec

        raw: dict = {}
        if model_dir is not None:
            with contextlib.suppress(OSError, ValueError, AttributeError):
                raw = dict(json.loads((Path(model_dir) / "monitoring.json").read_text()).get("deployment") or {})
        try:
            spec = DeploymentSpec.model_validate(raw)
        except Exception as exc:  # noqa: BLE001 - a malformed section: defaults, loudly
            log.warning("monitoring.json's deployment section is invalid (%s); using the defaults", exc)
            spec = DeploymentSpec()
        return cls(window_s=spec.window_s, min_requests=spec.min_requests, error_ratio=spec.error_ratio,
                   latency_ratio=spec.latency_ratio, metric_drop=spec.metric_drop, min_labels=spec.min_labels)


@dataclass(frozen=True)
class Summary:
    """One model's outcomes in the window."""

    n: int
    errors: int
    p99_ms: float

    @property
    def error_rate(self) -> float:
        return self.errors / self.n if self.n else 0.0


class Window:
    """A model's recent outcomes ``(time, latency s, error)``: appended on the request path (one deque append),
    summarised by the watcher."""

    def __init__(self, maxlen: int = MAX_WINDOW) -> None:
        self._d: deque[tuple[float, float, bool]] = deque(maxlen=maxlen)

    def add(self, latency_s: float, error: bool) -> None:
        self._d.append((time.monotonic(), latency_s, error))

    def summary(self, window_s: float, now: float | None = None) -> Summary:
        now = time.monotonic() if now is None else now
        d = self._d
        while d and d[0][0] < now - window_s:
            d.popleft()
        items = list(d)
        if not items:
            return Summary(0, 0, 0.0)
        lat = np.fromiter((x[1] for x in items), dtype=np.float64, count=len(items))
        return Summary(len(items), sum(1 for x in items if x[2]), float(np.quantile(lat, 0.99)) * 1000.0)


def judge(champion: Summary, challenger: Summary, rules: Rules) -> tuple[str, str] | None:
    """``(trigger, reason)`` when the challenger must be rolled back, else None (pure).

    Judged only once both models have ``min_requests`` outcomes in the window. ``errors``: the challenger's error
    rate exceeds ``error_ratio`` x the champion's, the champion's floored at ``1 / min_requests`` (a champion
    with no error would otherwise make one challenger error a doubling). ``latency``: the challenger's p99 exceeds
    ``latency_ratio`` x the champion's and the champion's by :data:`LATENCY_FLOOR_MS`.
    """
    if champion.n < rules.min_requests or challenger.n < rules.min_requests:
        return None
    base = max(champion.error_rate, 1.0 / rules.min_requests)
    if challenger.error_rate > rules.error_ratio * base:
        return "errors", (f"error rate {challenger.error_rate:.1%} ({challenger.errors} of {challenger.n}) > "
                          f"{rules.error_ratio:g} x the champion's {champion.error_rate:.1%} "
                          f"({champion.errors} of {champion.n}) over {rules.window_s:g} s")
    if (challenger.p99_ms > rules.latency_ratio * champion.p99_ms
            and challenger.p99_ms - champion.p99_ms > LATENCY_FLOOR_MS):
        return "latency", (f"p99 latency {challenger.p99_ms:.1f} ms > {rules.latency_ratio:g} x the champion's "
                           f"{champion.p99_ms:.1f} ms over {rules.window_s:g} s ({challenger.n} vs {champion.n} "
                           "requests)")
    return None


@dataclass(frozen=True)
class LabelledSummary:
    """One model's primary metric on its labelled rows (``workbench feedback``)."""

    n: int
    value: float


def judge_metric(champion: LabelledSummary, challenger: LabelledSummary, *, task: str, primary: str,
                 rules: Rules) -> tuple[str, str] | None:
    """``("metric", reason)`` when the challenger's primary metric on labelled traffic is worse than the
    champion's by more than ``rules.metric_drop`` of the champion's value, else None (pure).

    The drop is relative and signed by the metric's direction (:meth:`Task.greater_is_better
    <workbench.tasks.Task.greater_is_better>`): for ``pr_auc`` or ``macro_f1`` the challenger falling below
    ``champion x (1 - drop)``, for ``mae`` or ``log_loss`` rising above ``champion x (1 + drop)`` (``|champion|``
    for metrics that can be negative, such as ``r2``). Judged only once both models have ``rules.min_labels``
    labelled rows and both values are finite (a metric undefined on the rows, e.g. ROC AUC with one class, is no
    evidence).
    """
    from ..tasks import get_task

    if champion.n < rules.min_labels or challenger.n < rules.min_labels:
        return None
    if not (np.isfinite(champion.value) and np.isfinite(challenger.value)):
        return None
    higher = get_task(task).greater_is_better(primary)
    worse_by = (champion.value - challenger.value) if higher else (challenger.value - champion.value)
    allowed = rules.metric_drop * abs(champion.value)
    if worse_by <= allowed:
        return None
    word = "below" if higher else "above"
    return "metric", (f"{primary} {challenger.value:.4f} on {challenger.n} labelled rows is {abs(worse_by):.4f} "
                      f"{word} the champion's {champion.value:.4f} ({champion.n} rows): more than "
                      f"{rules.metric_drop:.0%} of it ({allowed:.4f})")


def automatic_rollbacks(tag: str, events: list[dict] | None = None) -> tuple[str | None, dict[str, int]]:
    """What the ledger says of ``tag``'s automatic rollbacks: the trigger of its last line when that line is an
    automatic rollback (else None), and how many automatic rollbacks it records per trigger (lines before
    triggers were recorded count as ``unknown``)."""
    if events is None:
        from ..registry import ledger

        events = ledger.read_ledger()
    counts: Counter[str] = Counter()
    last: dict | None = None
    for e in events:
        if e.get("tag") != tag:
            continue
        last = e
        if e.get("action") == "staged" and e.get("automatic"):
            counts[str(e.get("trigger") or "unknown")] += 1
    trigger = None
    if last is not None and last.get("action") == "staged" and last.get("automatic"):
        trigger = str(last.get("trigger") or "unknown")
    return trigger, dict(counts)


def roll_back_challenger(spec: ChallengerSpec, reason: str, *, trigger: str,
                         by: str = "workbench service (automatic rollback)") -> dict | None:
    """Take ``spec`` out of the production pointer and back to ``staging`` in the ledger, under the ledger lock.

    The ledger has no transition that clears only the challenger (its ``rollback`` action returns a model to
    *production*), so this writes a ``staged`` line (shadow/canary -> staging, which :data:`ledger.ALLOWED
    <workbench.registry.ledger.ALLOWED>` permits) with ``automatic: true`` and ``trigger`` (``errors``,
    ``latency`` or ``metric``), then rewrites the pointer without its ``challenger``. Nothing is written when the
    pointer no longer names this challenger (another worker, or a person, took it out first). A ledger refusal
    (the ledger does not know the tag in shadow/canary) is logged and the pointer is cleared anyway: a failing
    model must stop being served. Returns the ledger line (or None).
    """
    from ..registry import ledger

    return ledger.clear_challenger(spec.tag, reason=f"automatic rollback: {reason}", by=by, automatic=True,
                                   clear_if_refused=True, trigger=trigger)


# --------------------------------------------------------------------------------------------- the service
class _NoMetrics:
    def swapped(self, tag: str, role: str) -> None: ...
    def swap_failed(self, tag: str, role: str, reason: str) -> None: ...
    def shadow_dropped(self, tag: str) -> None: ...
    def rolled_back(self, tag: str, trigger: str) -> None: ...
    def challenger_rolled_back(self, tag: str, trigger: str, count: int) -> None: ...


@dataclass(frozen=True, eq=False)
class _State:
    """What a request reads once, when it starts (replaced whole, never mutated)."""

    champion: Predictor | Unavailable
    champion_key: tuple[str, str | None]
    champion_window: Window
    challenger: Predictor | None = None
    spec: ChallengerSpec | None = None
    window: Window | None = None
    rules: Rules = field(default_factory=Rules)

    @property
    def threshold(self) -> int:
        return round(self.spec.percent * BUCKETS / 100) if self.spec is not None else 0


def _reason_kind(message: str) -> str:
    """A bounded label for ``/metrics`` (the full reason is logged)."""
    m = message.lower()
    for needle, kind in (("not in the bentoml model store", "missing"), ("package.json", "package"),
                         ("self-test", "self_test"), ("sha256", "sha256"), ("serving.json", "config")):
        if needle in m:
            return kind
    return "invalid"


class Deployment:
    """The service's predictor when it serves from the production pointer with hot swap on: a champion, at most
    one challenger, the pointer watcher and the rollback judge (module docstring).

    It stands where a :class:`~workbench.serving.predictor.Predictor` stands (``handle``, ``readiness``,
    ``ready``, ``tag``, ``log``). ``prepare(predictor)`` is called on every model before it is swapped in (the
    service sets its prediction log and counters there); ``loader(ref)`` loads and verifies one (default
    :meth:`Predictor.load`); ``on_rollback(spec, reason, trigger)`` records an automatic rollback (default
    :func:`roll_back_challenger`).
    """

    def __init__(self, champion: Predictor | Unavailable, *, champion_key: tuple[str, str | None] | None = None,
                 prepare: Callable[[Predictor], None] | None = None, metrics: Any = None,
                 loader: Callable[[ModelRef], Predictor] | None = None,
                 on_rollback: Callable[..., Any] | None = roll_back_challenger,
                 poll_s: float | None = None, shadow_queue: int | None = None, shadow_thread: bool = False,
                 shadow_batch: int | None = None, shadow_delay_s: float | None = None) -> None:
        self._state = _State(champion=champion, champion_key=champion_key or (champion.tag, None),
                             champion_window=Window())
        self._prepare = prepare
        self._metrics = metrics or _NoMetrics()
        self._loader = loader or self._load_predictor
        self._on_rollback = on_rollback
        self.poll_s = float(os.environ.get("WORKBENCH_POINTER_POLL_S", POLL_S)) if poll_s is None else poll_s
        size = int(os.environ.get("WORKBENCH_SHADOW_QUEUE", SHADOW_QUEUE)) if shadow_queue is None else shadow_queue
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, size))
        #: Shadow requests scored together (:data:`SHADOW_BATCH`), at most :attr:`shadow_delay_s` after the first.
        self.shadow_batch = max(1, int(os.environ.get("WORKBENCH_SHADOW_BATCH", SHADOW_BATCH))
                                if shadow_batch is None else shadow_batch)
        self.shadow_delay_s = SHADOW_DELAY_S if shadow_delay_s is None else shadow_delay_s
        self._flush_at: asyncio.TimerHandle | None = None  # the flush due on the event loop, if any
        self._pointer_key: Any = ()
        self._pointer_spec: ChallengerSpec | None = None  # the challenger the last pointer applied named
        self._rolled_back: set[tuple[str, str | None]] = set()
        self._retired: list[tuple[float, Any]] = []
        self._shadow_thread = shadow_thread
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        # swaps, swap_failures, shadow_dropped, shadow_scored, rollbacks, challenger_errors, rollbacks_seen
        self.counts: Counter[str] = Counter()
        self.last_failure = ""
        self.last_rollback = ""

    # ------------------------------------------------------------------ what the service asks of a predictor
    @property
    def champion(self) -> Predictor | Unavailable:
        return self._state.champion

    @property
    def challenger(self) -> Predictor | None:
        return self._state.challenger

    @property
    def spec(self) -> ChallengerSpec | None:
        return self._state.spec

    @property
    def tag(self) -> str:
        return self._state.champion.tag

    @property
    def champion_key(self) -> tuple[str, str | None]:
        """``(tag, package_sha256)`` of the serving champion (what ``/docs.json`` is cached by)."""
        return self._state.champion_key

    @property
    def ready(self) -> bool:
        return bool(self._state.champion.ready)

    @property
    def log(self) -> Any:
        return self._state.champion.log

    def readiness(self) -> tuple[bool, str]:
        return self._state.champion.readiness()

    def handle(self, body: bytes, *, request_id: str | None = None, caller_key: str | None = None,
               log_fields: Any = None) -> Reply:
        """Answer one ``/predict`` body with the model the request starts on (module docstring)."""
        s = self._state  # read once: a swap during this request does not change who answers it
        rid = request_id or new_request_id()
        challenger = s.challenger
        if challenger is None:
            return s.champion.handle(body, request_id=rid)
        spec = s.spec
        if spec.mode == "canary" and bucket(caller_key or rid) < s.threshold:
            t0 = time.perf_counter()
            try:
                reply = challenger.handle(body, request_id=rid,
                                          log_fields={"role": "canary", "answered_by": challenger.tag})
                failed = reply.status >= 500
            except Exception as exc:  # noqa: BLE001 - a broken challenger: counted, the champion answers
                reply, failed = None, True
                self.counts["challenger_errors"] += 1
                log.warning("canary %s failed on request %s: %s: %s", challenger.tag, rid, type(exc).__name__,
                            public_reason(str(exc))[:300])
            s.window.add(time.perf_counter() - t0, failed)
            if not failed:
                return reply
        t0 = time.perf_counter()
        try:
            reply = s.champion.handle(body, request_id=rid,
                                      log_fields={"role": "champion", "answered_by": s.champion.tag})
        except Exception:
            s.champion_window.add(time.perf_counter() - t0, True)
            raise
        s.champion_window.add(time.perf_counter() - t0, reply.status >= 500)
        if spec.mode == "shadow" and reply.status < 400:
            try:
                self._queue.put_nowait((s, body, rid))
            except queue.Full:
                self.counts["shadow_dropped"] += 1
                self._metrics.shadow_dropped(challenger.tag)
        return reply

    # ------------------------------------------------------------------ the shadow
    def _shadow_loop(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            try:
                if item is None:
                    return
                self._shadow_one(*item)
            finally:
                self._queue.task_done()

    def _shadow_one(self, s: _State, body: bytes, rid: str) -> None:
        challenger = s.challenger
        if challenger is None or challenger is not self._state.challenger:
            return  # taken out (swapped or rolled back) since the request was answered
        t0 = time.perf_counter()
        try:
            reply = challenger.handle(body, request_id=rid,
                                      log_fields={"role": "shadow", "answered_by": s.champion.tag})
            failed = reply.status >= 500
        except Exception as exc:  # noqa: BLE001 - counted against the challenger
            failed = True
            self.counts["challenger_errors"] += 1
            log.warning("shadow %s failed on request %s: %s: %s", challenger.tag, rid, type(exc).__name__,
                        public_reason(str(exc))[:300])
        s.window.add(time.perf_counter() - t0, failed)
        self.counts["shadow_scored"] += 1

    def _shadow_batch(self, items: list[tuple[_State, bytes, str]]) -> None:
        """Score queued shadow requests with one :meth:`Predictor.handle_many
        <workbench.serving.predictor.Predictor.handle_many>` per challenger (one session run, one log line per
        request); each request's outcome goes into the window with the batch's time divided by its size. A
        challenger without ``handle_many``, a group of one, or a batch that raises is scored one at a time."""
        current = self._state.challenger
        groups: dict[tuple[int, str], list[tuple[_State, bytes, str]]] = {}
        for item in items:
            challenger = item[0].challenger
            if challenger is None or challenger is not current:
                continue  # taken out (swapped or rolled back) since the request was answered
            groups.setdefault((id(challenger), item[0].champion.tag), []).append(item)
        for group in groups.values():
            s = group[0][0]
            many = getattr(s.challenger, "handle_many", None)
            if len(group) == 1 or many is None:
                for item in group:
                    self._shadow_one(*item)
                continue
            t0 = time.perf_counter()
            try:
                replies = many([b for _, b, _ in group], [rid for _, _, rid in group],
                               log_fields={"role": "shadow", "answered_by": s.champion.tag})
            except Exception as exc:  # noqa: BLE001 - nothing logged yet: each alone says which failed
                log.warning("shadow %s failed on a batch of %d (%s: %s); scoring them one at a time",
                            s.challenger.tag, len(group), type(exc).__name__, public_reason(str(exc))[:300])
                for item in group:
                    self._shadow_one(*item)
                continue
            each = (time.perf_counter() - t0) / len(group)
            for (si, _, _), reply in zip(group, replies, strict=True):
                si.window.add(each, reply.status >= 500)
            self.counts["shadow_scored"] += len(group)

    def _flush(self) -> int:
        """Score up to :attr:`shadow_batch` queued shadow requests now, in one batch; when some are left, schedule
        the next flush. Returns how many were taken off the queue."""
        if self._flush_at is not None:
            self._flush_at.cancel()
            self._flush_at = None
        items = []
        while len(items) < self.shadow_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is None:  # stop()'s wake-up for the shadow thread
                self._queue.task_done()
                continue
            items.append(item)
        try:
            if items:
                self._shadow_batch(items)
        finally:
            for _ in items:
                self._queue.task_done()
        if not self._queue.empty():
            self._schedule()
        return len(items)

    def _schedule(self) -> bool:
        """Flush in :attr:`shadow_delay_s` on the running event loop (once); False without a running loop."""
        if self._flush_at is not None:
            return True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return False
        self._flush_at = loop.call_later(self.shadow_delay_s, self._flush_due)
        return True

    def _flush_due(self) -> None:
        self._flush_at = None
        try:
            self._flush()
        except Exception:  # noqa: BLE001 - a timer callback: never the loop's problem
            log.exception("shadow scoring failed")

    def after_reply(self) -> int:
        """Score the queued shadow requests once there is a batch of them (the service calls this once a response
        is sent; module docstring, "Challenger"): with :attr:`shadow_batch` queued, score them now; else, on an
        event loop, make sure a flush is due within :attr:`shadow_delay_s` of the first one queued (a
        ``call_later``); called outside an event loop (Starlette runs a sync background task in a thread), score
        what is queued now. Returns how many were scored."""
        if self._queue.empty():  # the common case (no shadow): nothing to do
            return 0
        if self._queue.qsize() >= self.shadow_batch or not self._schedule():
            return self._flush()
        return 0

    def drain(self, timeout: float = 10.0) -> bool:
        """Score every queued shadow request (or, with the shadow thread, wait for it to); False on timeout."""
        if not self._shadow_thread:
            while self._flush():
                pass
            return True
        deadline = time.monotonic() + timeout
        while self._queue.unfinished_tasks:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.002)
        return True

    # ------------------------------------------------------------------ the watcher
    def start(self, *, watch: bool = True) -> Deployment:
        """Start the watcher (``watch``: pointer + judge every :attr:`poll_s`) and, with ``shadow_thread``, the
        shadow thread (daemons).

        With ``watch``, the pointer is read once here, before the first request: the service resolves its model
        when the module is imported and then loads and verifies it, and the pointer may have moved in between;
        without this look such a worker would answer with the older model until the watcher's first tick."""
        if watch and not self._threads:
            try:
                self.check_pointer()
            except Exception:  # noqa: BLE001 - the watcher tries again on its first tick
                log.exception("the first look at the production pointer failed (the watcher tries again)")
        if not self._threads:
            for target, name in ((*([(self._shadow_loop, "workbench-shadow")] if self._shadow_thread else []),
                                  *([(self._watch_loop, "workbench-pointer-watch")] if watch else []))):
                t = threading.Thread(target=target, name=name, daemon=True)
                t.start()
                self._threads.append(t)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        for t in self._threads:
            t.join(timeout)
        self._threads = []

    def _watch_loop(self) -> None:
        while not self._stop.wait(self.poll_s):
            try:
                self.poll()
            except Exception:  # noqa: BLE001 - the watcher never dies; the next tick tries again
                log.exception("the deployment watcher failed (tries again in %g s)", self.poll_s)

    def poll(self) -> None:
        """One watcher tick: follow the pointer if it changed, judge the challenger, close retired logs."""
        self.check_pointer()
        self.judge()
        self._close_retired()

    def check_pointer(self) -> bool:
        """Apply the pointer if the file changed since the last look (a stat); True when it was read."""
        path = pointer_path()
        try:
            st = os.stat(path)
            key: Any = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            key = None
        if key == self._pointer_key:
            return False
        self._pointer_key = key
        if key is None:
            log.warning("the production pointer %s is gone; serving %s until it is back", path, self.tag)
            return False
        try:
            ptr = json.loads(path.read_text())
            if not isinstance(ptr, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            self._pointer_key = ()  # read again next tick
            self._failed("the production pointer", "pointer", f"the production pointer is unreadable: {exc}")
            return False
        self.apply(ptr)
        return True

    def apply(self, pointer: dict) -> None:
        """Serve what ``pointer`` names: load and verify what is new beside what serves, then swap (one
        assignment). What fails verification is not swapped in; the rest of the pointer still applies."""
        s = self._state
        champion, champion_key = s.champion, s.champion_key
        tag = pointer.get("tag")
        want = (str(tag), pointer.get("package_sha256") or None) if tag else None
        if want is not None:
            same = want[0] == champion_key[0] and champion.ready and (
                want[1] == champion_key[1] or champion_key[1] is None)
            if same:
                champion_key = want  # the serving champion is the pointer's (remember its certificate)
            else:
                new = self._verified(want[0], "champion", sha256=pointer.get("sha256"), package_sha256=want[1])
                if new is not None:
                    champion, champion_key = new, want
        spec = challenger_of(pointer)
        left, self._pointer_spec = self._pointer_spec, spec
        if left is not None and (spec is None or spec.tag != left.tag) and left.tag != (want or ("",))[0]:
            self._challenger_left(left)  # gone from the pointer (not released to production)
        # a challenger rolled back here stays out while the pointer names it; released again later, it comes back
        self._rolled_back &= {spec.key} if spec is not None else set()
        if spec is not None and (spec.key in self._rolled_back or spec.tag == champion_key[0]):
            spec = None
        challenger = s.challenger if s.spec is not None and spec is not None and s.spec.key == spec.key else None
        if spec is not None and challenger is None:
            challenger = self._verified(spec.tag, "challenger", package_sha256=spec.package_sha256)
            if challenger is None:
                spec = None
        self._install(champion, champion_key, challenger, spec)

    def _install(self, champion: Any, champion_key: tuple[str, str | None], challenger: Predictor | None,
                 spec: ChallengerSpec | None) -> None:
        s = self._state
        same_champion = champion is s.champion
        same_challenger = challenger is not None and challenger is s.challenger
        if (same_champion and same_challenger and spec == s.spec) or (same_champion and challenger is None
                                                                       and s.challenger is None):
            if champion_key != s.champion_key:
                self._state = _State(champion, champion_key, s.champion_window)
            return
        new = _State(champion=champion, champion_key=champion_key,
                     champion_window=s.champion_window if same_champion else Window(),
                     challenger=challenger, spec=spec if challenger is not None else None,
                     window=(s.window if same_challenger else Window()) if challenger is not None else None,
                     rules=(s.rules if same_challenger else Rules.for_package(_path_of(challenger)))
                     if challenger is not None else Rules())
        self._state = new  # the swap: requests that start from now on read the new state
        for old in {id(p): p for p in (s.champion, s.challenger) if p is not None}.values():
            if old is not champion and old is not challenger:
                self._retired.append((time.monotonic(), old))
        if not same_champion:
            self.counts["swaps"] += 1
            self._metrics.swapped(champion.tag, "champion")
            log.warning("now serving %s (was %s), swapped without a restart", champion.tag, s.champion.tag)
        if challenger is not None and not same_challenger:
            self.counts["swaps"] += 1
            self._metrics.swapped(challenger.tag, "challenger")
            log.warning("challenger %s now in %s%s beside %s", challenger.tag, spec.mode,
                        f" at {spec.percent:g}%" if spec.mode == "canary" else "", champion.tag)
        elif challenger is not None and spec != s.spec:
            log.warning("challenger %s now in %s%s", challenger.tag, spec.mode,
                        f" at {spec.percent:g}%" if spec.mode == "canary" else "")
        elif challenger is None and s.challenger is not None:
            log.warning("challenger %s no longer served", s.challenger.tag)

    def _challenger_left(self, spec: ChallengerSpec) -> None:
        """The pointer no longer names ``spec``: when the ledger's last line for it is an automatic rollback
        (whoever wrote it: a worker, ``workbench feedback``), put it on ``/metrics`` (module docstring)."""
        try:
            trigger, counts = automatic_rollbacks(spec.tag)
        except Exception as exc:  # noqa: BLE001 - an unreadable ledger must not stop the watcher
            log.warning("challenger %s left the pointer; the ledger could not be read (%s)", spec.tag, exc)
            return
        if trigger is None:
            log.warning("challenger %s left the production pointer (not an automatic rollback)", spec.tag)
            return
        self.counts["rollbacks_seen"] += 1
        self._metrics.challenger_rolled_back(spec.tag, trigger, counts.get(trigger, 1))
        log.warning("challenger %s left the production pointer: automatic rollback (trigger %s)", spec.tag, trigger)

    def _verified(self, tag: str, role: str, *, sha256: str | None = None,
                  package_sha256: str | None = None) -> Predictor | None:
        """Load and verify ``tag`` beside what serves; None (logged, counted) when it cannot be served."""
        try:
            ref = model_ref(tag, source=f"the production pointer ({role})", sha256=sha256,
                            package_sha256=package_sha256)
            predictor = self._loader(ref)
            if self._prepare is not None:
                self._prepare(predictor)
            return predictor
        except Exception as exc:  # noqa: BLE001 - ModelVerificationError mostly; nothing may crash the watcher
            message = public_reason(str(exc), getattr(locals().get("ref"), "path", None))
            self._failed(tag, role, f"{type(exc).__name__}: {message}" if not isinstance(exc, WorkbenchError)
                         else message)
            return None

    @staticmethod
    def _load_predictor(ref: ModelRef) -> Predictor:
        return Predictor.load(ref.path, tag=ref.tag, certified=ref.certified, package_certified=ref.package_certified)

    def _failed(self, tag: str, role: str, reason: str) -> None:
        self.counts["swap_failures"] += 1
        self.last_failure = f"{tag} ({role}): {reason}"
        self._metrics.swap_failed(tag, role, _reason_kind(reason))
        log.error("not swapping in %s as %s: %s; still serving %s", tag, role, reason, self.tag)

    def judge(self) -> str | None:
        """Judge the challenger over the window; roll it back when :func:`judge` says so. Returns the reason."""
        s = self._state
        if s.challenger is None or s.window is None:
            return None
        now = time.monotonic()
        verdict = judge(s.champion_window.summary(s.rules.window_s, now), s.window.summary(s.rules.window_s, now),
                        s.rules)
        if verdict is None:
            return None
        trigger, reason = verdict
        self._roll_back(s, trigger, reason)
        return reason

    def _roll_back(self, s: _State, trigger: str, reason: str) -> None:
        spec = s.spec
        self._rolled_back.add(spec.key)
        if self._state.challenger is s.challenger:
            self._install(s.champion, s.champion_key, None, None)  # this worker stops serving it at once
        self.counts["rollbacks"] += 1
        self.last_rollback = f"{spec.tag} ({spec.mode}): {reason}"
        self._metrics.rolled_back(spec.tag, trigger)
        log.error("automatic rollback of challenger %s (%s%s) to staging: %s", spec.tag, spec.mode,
                  f" at {spec.percent:g}%" if spec.mode == "canary" else "", reason)
        if self._on_rollback is not None:
            try:
                self._on_rollback(spec, reason, trigger=trigger)
            except Exception:  # noqa: BLE001 - not served here any more; other workers trip and try too
                log.exception("could not record the automatic rollback of %s in the registry", spec.tag)

    def _close_retired(self, grace_s: float = 10.0) -> None:
        """Close the prediction logs of models swapped out more than ``grace_s`` ago (requests in flight done)."""
        now = time.monotonic()
        keep = []
        for at, p in self._retired:
            if now - at < grace_s:
                keep.append((at, p))
            elif getattr(p, "log", None) is not None:
                with contextlib.suppress(Exception):
                    p.log.close()
        self._retired = keep


def _path_of(predictor: Any) -> Path | None:
    return getattr(predictor, "model_dir", None)
