"""The promotion ledger: an append-only record of who promoted, refused or rolled back what, and when.

``$BENTOML_HOME/workbench/ledger.jsonl`` gets one JSON line per event, flushed and fsynced; lines are never
rewritten. The production pointer (:mod:`workbench.serving.pointer`) is replaced atomically after the ledger line
is written, so the ledger always explains the pointer.

Every transition (read the state, append the line, move the pointer) holds an exclusive ``fcntl.flock`` on
``ledger.lock`` beside the ledger (:func:`transition`), so concurrent ``promote``/``rollback`` commands serialise
and the ledger always replays to the pointer (:func:`replay`, :func:`check_consistent`).
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import getpass
import json
import os
import platform
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._report import atomic_write_text
from ..errors import WorkbenchError
from ..serving.pointer import bentoml_home, pointer_path, production_pointer

__all__ = ["ledger_path", "lock_path", "transition", "append", "read_ledger", "set_production", "rollback",
           "certified_history", "replay", "check_consistent"]

LOCK_TIMEOUT_S = 120.0


def ledger_path() -> Path:
    return bentoml_home() / "workbench" / "ledger.jsonl"


def lock_path() -> Path:
    return ledger_path().with_name("ledger.lock")


_local = threading.local()  # re-entrant per thread: register() holds the lock while calling append/set_production


@contextlib.contextmanager
def transition(timeout_s: float = LOCK_TIMEOUT_S) -> Iterator[None]:
    """Hold the ledger lock (an exclusive ``flock`` on ``ledger.lock``) for one read-append-move transition.

    Raises
    ------
    WorkbenchError
        Another promote/rollback held the lock for longer than ``timeout_s``.
    """
    if getattr(_local, "depth", 0):
        _local.depth += 1
        try:
            yield
        finally:
            _local.depth -= 1
        return
    path = lock_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise WorkbenchError(f"another promote or rollback holds {path} (waited {timeout_s:g} s)",
                                         hint="wait for it to finish, then try again") from None
                time.sleep(0.05)
        _local.depth = 1
        try:
            yield
        finally:
            _local.depth = 0
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def append(event: dict[str, Any]) -> dict:
    """Append one event (``action`` plus details); who/when/where are added here."""
    entry = {"at": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"), "user": getpass.getuser(),
             "host": platform.node(), **event}
    path = ledger_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    data = (json.dumps(entry, sort_keys=True) + "\n").encode("utf-8")
    with transition():
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            view = memoryview(data)
            while view:  # os.write may write less than asked (a full disk raises on the next call)
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
    return entry


def read_ledger() -> list[dict]:
    path = ledger_path()
    if not path.exists():
        return []
    out = []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            raise WorkbenchError(f"ledger {path} line {i} is not valid JSON",
                                 hint="the ledger is append-only; restore it from backup") from None
    return out


def set_production(tag: str, *, sha256: str, run_id: str, brief: str, package_sha256: str | None = None) -> dict:
    """Replace the production pointer (under the ledger lock). ``package_sha256`` is the sha256 of the package's
    ``package.json`` (the service verifies the package whole against it); None for packages made before it."""
    pointer = {"tag": tag, "sha256": sha256, "run_id": run_id, "brief": brief,
               "since": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    if package_sha256:
        pointer["package_sha256"] = package_sha256
    with transition():
        atomic_write_text(pointer_path(), json.dumps(pointer, indent=2) + "\n")
        with contextlib.suppress(OSError):  # readable by a service running as another user (umask 022 style)
            os.chmod(pointer_path(), 0o644)
    return pointer


def certified_history() -> list[dict]:
    """Production changes in order (promotions and rollbacks), each with the tag that became production."""
    return [e for e in read_ledger() if e.get("action") in ("promote", "rollback")]


def replay() -> str | None:
    """The production tag the ledger says: the tag of its last promotion or rollback (None if none)."""
    history = certified_history()
    return history[-1]["tag"] if history else None


def check_consistent() -> None:
    """Raise :class:`WorkbenchError` unless the ledger replays to the production pointer."""
    ptr = production_pointer()
    expected = replay()
    if (ptr or {}).get("tag") != expected:
        raise WorkbenchError(f"the ledger replays to {expected}, the production pointer says "
                             f"{(ptr or {}).get('tag')}", hint="`workbench models` shows both; promote again")


def rollback(*, reason: str = "") -> dict:
    """Make the model that was in production before the current one the production model again.

    Raises
    ------
    WorkbenchError
        Nothing is in production, or there is no earlier certified model to return to.
    """
    from .store import get_model

    with transition():
        return _rollback(reason=reason, get_model=get_model)


def _rollback(*, reason: str, get_model: Any) -> dict:
    current = production_pointer()
    if not current:
        raise WorkbenchError("nothing is in production", hint="run `workbench promote latest` first")
    # Production history as a stack: a promotion pushes, a rollback pops. Rolling back returns to the model
    # below the top; rolling back again goes further down, never forward.
    stack: list[dict] = []
    for e in certified_history():
        if e["action"] == "promote":
            stack.append(e)
        elif stack:
            stack.pop()
    if len(stack) < 2:
        raise WorkbenchError("no earlier certified model to return to",
                             hint="promote another run first; `workbench models` shows the history")
    previous = stack[-2]
    try:
        model = get_model(previous["tag"])
    except Exception:  # noqa: BLE001 - bentoml raises NotFound
        raise WorkbenchError(f"the previous model {previous['tag']} is no longer in the model store",
                             hint="`bentoml models list` shows what is there") from None
    package_sha = previous.get("package_sha256") or (getattr(getattr(model, "info", None), "metadata", None)
                                                      or {}).get("package_sha256")
    entry = append({"action": "rollback", "tag": previous["tag"], "sha256": previous["sha256"],
                    "package_sha256": package_sha, "run_id": previous.get("run_id"), "brief": previous.get("brief"),
                    "from_tag": current["tag"], "reason": reason})
    set_production(previous["tag"], sha256=previous["sha256"], run_id=previous.get("run_id", ""),
                   brief=previous.get("brief", ""), package_sha256=package_sha)
    return entry
