"""The promotion ledger: an append-only record of who certified, staged, released, refused, rolled back or
retired what, when, and why.

``$BENTOML_HOME/workbench/ledger.jsonl`` gets one JSON line per event, flushed and fsynced; lines are never
rewritten. The production pointer (:mod:`workbench.serving.pointer`) is replaced atomically after the ledger line
is written, so the ledger always explains the pointer.

Stages
------
A registered model is in one stage (:data:`STAGES`): ``certified`` (passed its gates, being registered),
``staging``, ``shadow``, ``canary`` (with a percentage), ``production`` or ``retired``. Every change of stage is
one *transition line* (:func:`record`): ``action`` (:data:`TRANSITIONS`: ``certified``, ``staged``, ``shadow``,
``canary``, ``released``, ``rollback``, ``retired``), ``tag``, ``from_stage``, ``to_stage``, ``reason`` and
``by`` (who: the ``--by`` given, default the OS user), besides the ``at``/``user``/``host`` every line has.
Only the transitions in :data:`ALLOWED` are recorded; anything else is refused before a line is written.
:func:`stages` replays the ledger to every tag's current stage.

Old ledgers (before stages) hold ``promote`` lines without a stage: each counts as a release to production (what
it did then), so the tag the production pointer names is ``production``, an earlier one superseded by a later
promotion ``retired``, and a rolled-back one ``staging``. Old and new lines mix freely in one ledger, and
:func:`rollback` walks both (a ``promote`` or ``released`` line pushes onto the production history, a
``rollback`` pops).

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
import logging
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
           "certified_history", "set_challenger", "clear_challenger", "replay", "check_consistent", "STAGES", "TRANSITIONS", "ALLOWED", "record",
           "stages", "stage_of", "who"]

log = logging.getLogger(__name__)

STAGES = ("certified", "staging", "shadow", "canary", "production", "retired")
"""Where a registered model can be (see the module docstring)."""

TRANSITIONS = {"certified": "certified", "staged": "staging", "shadow": "shadow", "canary": "canary",
               "released": "production", "rollback": "staging", "retired": "retired"}
"""Transition line ``action`` -> the stage it moves the line's tag to (a ``rollback`` line's ``tag`` is the model
that returns to production; the model it replaces, ``from_tag``, goes back to ``staging``)."""

ALLOWED: dict[str | None, tuple[str, ...]] = {
    None: ("certified",),
    "certified": ("staging", "production"),   # production only for the first model of a brief (promote.py)
    "staging": ("shadow", "canary", "production", "retired"),
    "shadow": ("canary", "production", "staging", "retired"),
    "canary": ("canary", "production", "staging", "retired"),
    "production": ("retired", "staging"),     # replaced by a release / rolled back
    "retired": ("production", "staging"),     # a rollback returns it / re-staged by hand
}
"""Stage -> the stages a transition may move it to."""

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


def who(by: str | None = None) -> str:
    """Who a ledger line names: ``by`` when given (``--by``), else the OS user."""
    return (by or "").strip() or getpass.getuser()


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
    ``package.json`` (the service verifies the package whole against it); None for packages made before it.
    A fresh pointer names no challenger: a release or rollback ends any shadow or canary."""
    pointer = {"tag": tag, "sha256": sha256, "run_id": run_id, "brief": brief,
               "since": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    if package_sha256:
        pointer["package_sha256"] = package_sha256
    with transition():
        atomic_write_text(pointer_path(), json.dumps(pointer, indent=2) + "\n")
        with contextlib.suppress(OSError):  # readable by a service running as another user (umask 022 style)
            os.chmod(pointer_path(), 0o644)
    return pointer


def set_challenger(tag: str, *, mode: str, package_sha256: str | None, reason: str, by: str | None = None,
                   percent: int | None = None) -> dict:
    """Put ``tag`` beside the production model as a ``shadow`` (scores every request off the answer's path) or a
    ``canary`` answering ``percent`` % of requests: a ledger line, then the pointer's ``challenger`` key, under
    the ledger lock. The production model stays as it is; a release or rollback (:func:`set_production`) writes a
    fresh pointer and so clears any challenger.

    Raises
    ------
    WorkbenchError
        Not a shadow/canary mode, a canary without a percent in 1..100, no production model, or the tag's stage
        cannot move there (:data:`ALLOWED`).
    """
    if mode not in ("shadow", "canary"):
        raise WorkbenchError(f"unknown challenger mode {mode!r}", hint="use shadow or canary")
    if mode == "canary" and not (isinstance(percent, int) and 1 <= percent <= 100):
        raise WorkbenchError(f"a canary needs a percent in 1..100, got {percent!r}", hint="pass --percent 5")
    with transition():
        ptr = production_pointer()
        if not ptr or not ptr.get("tag"):
            raise WorkbenchError("no production model: a challenger needs a champion",
                                 hint="release a model to production first")
        if ptr["tag"] == tag:
            raise WorkbenchError(f"{tag} is the production model: it cannot be its own challenger")
        line = record(mode, tag, reason=reason, by=by, **({"percent": percent} if mode == "canary" else {}))
        ptr["challenger"] = {"tag": tag, "package_sha256": package_sha256, "mode": mode,
                             "percent": percent if mode == "canary" else None}
        atomic_write_text(pointer_path(), json.dumps(ptr, indent=2) + "\n")
        with contextlib.suppress(OSError):
            os.chmod(pointer_path(), 0o644)
    return line


def clear_challenger(tag: str, *, reason: str, by: str | None = None, automatic: bool = False,
                     clear_if_refused: bool = False, **details: Any) -> dict | None:
    """Take the challenger ``tag`` out of the pointer and back to ``staging`` (a ledger line with ``details``),
    under the ledger lock. Nothing happens (None) when the pointer no longer names it. ``clear_if_refused``: when
    the ledger refuses the line (it does not know the tag in shadow/canary), log it and clear the pointer anyway
    (an automatic rollback: a failing model must stop being served); the result is then None."""
    with transition():
        ptr = production_pointer() or {}
        if (ptr.get("challenger") or {}).get("tag") != tag:
            return None
        try:
            line = record("staged", tag, reason=reason, by=by, automatic=automatic, **details)
        except WorkbenchError as exc:
            if not clear_if_refused:
                raise
            log.error("the ledger refused the rollback line of %s (%s); clearing the pointer anyway", tag, exc)
            line = None
        atomic_write_text(pointer_path(), json.dumps({k: v for k, v in ptr.items() if k != "challenger"},
                                                     indent=2) + "\n")
        with contextlib.suppress(OSError):
            os.chmod(pointer_path(), 0o644)
    return line


def certified_history() -> list[dict]:
    """Production changes in order (old ``promote`` lines, releases and rollbacks), each with the tag that
    became production."""
    return [e for e in read_ledger() if e.get("action") in ("promote", "released", "rollback")]


def stages(events: list[dict] | None = None) -> dict[str, dict]:
    """Every tag's current stage, replayed from the ledger: ``{tag: {"stage", "since", "brief", "percent"?,
    "reason", "by"}}`` (``percent`` for ``canary``). Old ``promote`` lines count as releases to production; the
    tag the production pointer names is ``production`` whatever the lines say (the pointer is what is served),
    and any other tag the replay left in production is then ``retired``."""
    events = read_ledger() if events is None else events
    out: dict[str, dict] = {}
    production: str | None = None

    def put(tag: str | None, stage: str, e: dict, **extra: Any) -> None:
        if not tag:
            return
        prev = out.get(tag, {})
        out[tag] = {"stage": stage, "since": e.get("at"), "brief": e.get("brief") or prev.get("brief"),
                    "reason": e.get("reason"), "by": e.get("by") or e.get("user"), **extra}

    for e in events:
        action, tag = e.get("action"), e.get("tag")
        if action == "promote":  # before stages: a promotion moved the pointer at once
            if production and production != tag:
                put(production, "retired", {**e, "reason": f"superseded by {tag}"})
            put(tag, "production", e)
            production = tag
        elif action == "rollback":
            if e.get("from_tag"):
                put(e["from_tag"], "staging", e)
            put(tag, "production", e)
            production = tag
        elif action == "released":
            if production and production != tag and out.get(production, {}).get("stage") == "production":
                put(production, "retired", {**e, "reason": f"replaced by {tag}"})
            put(tag, "production", e)
            production = tag
        elif action in TRANSITIONS:
            extra = {"percent": e.get("percent")} if action == "canary" else {}
            put(tag, TRANSITIONS[action], e, **extra)
            if production == tag and TRANSITIONS[action] != "production":
                production = None
    ptr = (production_pointer() or {}).get("tag")
    if ptr:
        for t, st in out.items():
            if st["stage"] == "production" and t != ptr:
                st["stage"] = "retired"
        if out.get(ptr, {}).get("stage") != "production":
            out.setdefault(ptr, {"since": None, "brief": (production_pointer() or {}).get("brief"),
                                 "reason": "named by the production pointer", "by": None})
            out[ptr]["stage"] = "production"
    return out


def stage_of(tag: str) -> str | None:
    """The stage of ``tag`` (None: the ledger never saw it)."""
    return (stages().get(tag) or {}).get("stage")


def record(action: str, tag: str, *, reason: str, by: str | None = None, from_stage: str | None = ...,  # type: ignore[assignment]
           **details: Any) -> dict:
    """Append one transition line (under the ledger lock), refusing a transition :data:`ALLOWED` does not list.

    ``from_stage`` defaults to the tag's current stage (replayed). Returns the line written.

    Raises
    ------
    WorkbenchError
        ``action`` is not a transition, or the tag's stage cannot move to the action's stage.
    """
    if action not in TRANSITIONS:
        raise WorkbenchError(f"{action!r} is not a stage transition; one of: {', '.join(TRANSITIONS)}")
    to_stage = "production" if action == "released" else TRANSITIONS[action]
    with transition():
        current = stage_of(tag) if from_stage is ... else from_stage
        if to_stage not in ALLOWED.get(current, ()):
            raise WorkbenchError(f"{tag} is in {current or 'no stage'}: it cannot move to {to_stage}",
                                 hint="`workbench models` shows every model's stage and the ledger")
        return append({"action": action, "tag": tag, "from_stage": current, "to_stage": to_stage,
                       "reason": reason, "by": who(by), **details})


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


def rollback(*, reason: str = "", by: str | None = None) -> dict:
    """Make the model that was in production before the current one the production model again; the current
    one goes back to ``staging`` (one ``rollback`` line: ``tag`` returns to production, ``from_tag`` leaves it).

    Raises
    ------
    WorkbenchError
        Nothing is in production, or there is no earlier certified model to return to.
    """
    from .store import get_model

    with transition():
        return _rollback(reason=reason, get_model=get_model, by=by)


def _rollback(*, reason: str, get_model: Any, by: str | None = None) -> dict:
    current = production_pointer()
    if not current:
        raise WorkbenchError("nothing is in production", hint="run `workbench promote latest` first")
    # Production history as a stack: a promotion pushes, a rollback pops. Rolling back returns to the model
    # below the top; rolling back again goes further down, never forward.
    stack: list[dict] = []
    for e in certified_history():
        if e["action"] in ("promote", "released"):
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
                    "from_tag": current["tag"], "reason": reason, "by": who(by),
                    "from_stage": stage_of(previous["tag"]), "to_stage": "production"})
    set_production(previous["tag"], sha256=previous["sha256"], run_id=previous.get("run_id", ""),
                   brief=previous.get("brief", ""), package_sha256=package_sha)
    return entry
