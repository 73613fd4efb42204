"""Benchmark only: switch off pieces of BentoML's per-request machinery that no setting reaches, to measure them.

``benchmarks/bench_serving.py --variants ...`` puts this folder on ``PYTHONPATH`` (so every server process,
BentoML's workers included, imports it at start-up) and names the patches in ``$WORKBENCH_BENCH_PATCH``
(comma-separated). Never used by the real service.

``no-timeout``
    ``TimeoutMiddleware`` (``traffic.timeout``, which must be > 0: no setting removes it) passes requests
    straight through. Per request it runs the app in a new task and arms a ``loop.call_later`` timer that it
    never cancels: the timer, its future and the copied request context stay alive until it fires (a no-op)
    ``traffic.timeout`` seconds later (the oldest GC generation held up to ~100,000 objects at ~1,000
    requests/s here), and the collector's full passes over them stalled every request in flight: 13 passes
    took 1.08 s in 14 s of load, up to 85 ms each (36 ms in all, 3 ms at most, without the middleware).
``timeout-cancel``
    ``TimeoutMiddleware`` exactly as BentoML 1.4.39 has it, plus ``timer.cancel()`` once the response has
    started: the proposed fix (the extra task per request remains).
``gc-stats``
    Appends one line per garbage collection that pauses >= 2 ms (and every full one) to
    ``$WORKBENCH_BENCH_GC_DIR/gc-<pid>.log``.
``no-otel``
    OpenTelemetry's ASGI middleware passes requests straight through (BentoML always installs it; with
    ``tracing.sample_rate`` 0, the default, it still starts a span, and one more per ``send``, per request).
"""

from __future__ import annotations

import os

_PATCHES = {p for p in os.environ.get("WORKBENCH_BENCH_PATCH", "").split(",") if p}


def _passthrough(cls: type) -> None:
    async def __call__(self, scope, receive, send):  # noqa: N807
        await self.app(scope, receive, send)

    cls.__call__ = __call__


if "gc-stats" in _PATCHES:  # every collection that pauses >= 2 ms, one line each, to $WORKBENCH_BENCH_GC_DIR
    import gc
    import time

    _gc_dir = os.environ.get("WORKBENCH_BENCH_GC_DIR", "/tmp")
    _gc_start = [0.0]

    def _gc_cb(phase: str, info: dict) -> None:
        if phase == "start":
            _gc_start[0] = time.perf_counter()
            return
        ms = (time.perf_counter() - _gc_start[0]) * 1000
        if ms >= 2.0 or info["generation"] == 2:
            with open(f"{_gc_dir}/gc-{os.getpid()}.log", "a") as f:
                f.write(f"{time.time():.3f} gen{info['generation']} {ms:.1f}ms collected={info['collected']} "
                        f"tracked={len(gc.get_objects(generation=info['generation']))} "
                        f"frozen={gc.get_freeze_count()}\n")

    gc.callbacks.append(_gc_cb)

if "no-timeout" in _PATCHES:
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    _passthrough(TimeoutMiddleware)

if "timeout-cancel" in _PATCHES:  # the fix bento/service.py now applies itself; kept for the variant runs
    from workbench.serving.app import cancel_bentoml_timeout_timers

    cancel_bentoml_timeout_timers()

if "no-otel" in _PATCHES:
    from opentelemetry.instrumentation.asgi import OpenTelemetryMiddleware

    _passthrough(OpenTelemetryMiddleware)
