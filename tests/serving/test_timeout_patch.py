"""BentoML's TimeoutMiddleware leaves a 30 s timer per request; workbench cancels it (see serving/app.py)."""

from __future__ import annotations

import asyncio

from bentoml._internal.server.http.traffic import TimeoutMiddleware

from workbench.serving.app import cancel_bentoml_timeout_timers


async def _ok(scope, receive, send):
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _slow(scope, receive, send):
    await asyncio.sleep(0.3)
    await _ok(scope, receive, send)


async def _drive(mw, n):
    sent = []

    async def receive():
        return {"type": "http.request", "body": b""}

    async def send(m):
        sent.append(m)

    for _ in range(n):
        await mw({"type": "http", "path": "/predict"}, receive, send)
    live = [h for h in asyncio.get_running_loop()._scheduled if not h.cancelled()]
    return len(live), sent


def test_patch_applies_to_this_bentoml_and_cancels_timers():
    assert cancel_bentoml_timeout_timers() is True  # fails loudly if BentoML's middleware changed
    assert cancel_bentoml_timeout_timers() is True  # idempotent
    live, sent = asyncio.run(_drive(TimeoutMiddleware(_ok, timeout=30), 100))
    assert live == 0
    assert sum(m["type"] == "http.response.start" for m in sent) == 100


def test_a_slow_request_still_gets_504():
    cancel_bentoml_timeout_timers()
    _, sent = asyncio.run(_drive(TimeoutMiddleware(_slow, timeout=0.1), 1))
    assert [m.get("status") for m in sent if m["type"] == "http.response.start"] == [504]
