"""The promotion ledger: an append-only record of who promoted, refused or rolled back what, and when.

``$BENTOML_HOME/workbench/ledger.jsonl`` gets one JSON line per event, flushed and fsynced; lines are never
rewritten. The production pointer (:mod:`workbench.serving.pointer`) is replaced atomically after the ledger line
is written, so the ledger always explains the pointer.
"""

from __future__ import annotations

import datetime as _dt
import getpass
import json
import os
import platform
from pathlib import Path
from typing import Any

from .._report import atomic_write_text
from ..errors import WorkbenchError
from ..serving.pointer import bentoml_home, pointer_path, production_pointer

__all__ = ["ledger_path", "append", "read_ledger", "set_production", "rollback", "certified_history"]


def ledger_path() -> Path:
    return bentoml_home() / "workbench" / "ledger.jsonl"


def append(event: dict[str, Any]) -> dict:
    """Append one event (``action`` plus details); who/when/where are added here."""
    entry = {"at": _dt.datetime.now(_dt.UTC).isoformat(timespec="milliseconds"), "user": getpass.getuser(),
             "host": platform.node(), **event}
    path = ledger_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(entry, sort_keys=True) + "\n"
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode("utf-8"))
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


def set_production(tag: str, *, sha256: str, run_id: str, brief: str) -> dict:
    pointer = {"tag": tag, "sha256": sha256, "run_id": run_id, "brief": brief,
               "since": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
    atomic_write_text(pointer_path(), json.dumps(pointer, indent=2) + "\n")
    return pointer


def certified_history() -> list[dict]:
    """Production changes in order (promotions and rollbacks), each with the tag that became production."""
    return [e for e in read_ledger() if e.get("action") in ("promote", "rollback")]


def rollback(*, reason: str = "") -> dict:
    """Make the model that was in production before the current one the production model again.

    Raises
    ------
    WorkbenchError
        Nothing is in production, or there is no earlier certified model to return to.
    """
    from .store import get_model

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
        get_model(previous["tag"])
    except Exception:  # noqa: BLE001 - bentoml raises NotFound
        raise WorkbenchError(f"the previous model {previous['tag']} is no longer in the model store",
                             hint="`bentoml models list` shows what is there") from None
    entry = append({"action": "rollback", "tag": previous["tag"], "sha256": previous["sha256"],
                    "run_id": previous.get("run_id"), "brief": previous.get("brief"), "from_tag": current["tag"],
                    "reason": reason})
    set_production(previous["tag"], sha256=previous["sha256"], run_id=previous.get("run_id", ""),
                   brief=previous.get("brief", ""))
    return entry
