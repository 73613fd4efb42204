"""Shared base for report objects (private): ``to_dict()``, JSON save, ``_repr_html_()``.

Reports are the objects notebooks display, the JSON files a run folder keeps and what gates read: one object,
three views (evidently's Snapshot idea).
"""

from __future__ import annotations

import copy
import dataclasses
import html
import json
import math
import os
import stat
import tempfile
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["Report", "atomic_write_text", "atomic_write_bytes", "html_table", "jsonable", "esc", "fields_from_dict", "read_json",
           "CHART_WIDTH", "BLUE", "GREY", "ORANGE", "RED", "GREEN", "UP", "DOWN", "DARK", "GROUP_COLOURS", "chart_id"]


def esc(value: Any) -> str:
    return html.escape(str(value))


def jsonable(obj: Any) -> Any:
    """Turn numpy/polars scalars, paths and non-finite floats into JSON-safe values (NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "item") and not isinstance(obj, str | bytes):  # numpy scalar
        try:
            obj = obj.item()
        except (TypeError, ValueError):
            return str(obj)
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if obj is None or isinstance(obj, str | int | bool):
        return obj
    if hasattr(obj, "to_dict"):
        return jsonable(obj.to_dict())
    return str(obj)


_UMASK_LOCK = threading.Lock()


def _umask() -> int:
    """The process umask, read without changing it where the OS allows (Linux: ``/proc/self/status``); elsewhere
    set-and-restore under a lock (``os.umask`` is the only portable way to read it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    with _UMASK_LOCK:
        mask = os.umask(0o022)
        os.umask(mask)
    return mask


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write to a temporary file in the same folder, fsync, then rename: readers never see half a file.

    The file gets the mode a plain ``open()`` would give it (``0o666`` less the umask: 0644 under umask 0022),
    not the temporary file's private 0600, so a teammate can read a run and a service running as another user can
    read the production pointer.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):
            os.fchmod(fd, (stat.S_IRUSR | stat.S_IWUSR | stat.S_IRGRP | stat.S_IWGRP | stat.S_IROTH | stat.S_IWOTH)
                      & ~_umask())
        else:  # pragma: no cover - Windows: mkstemp's mode is what the OS allows there
            os.chmod(tmp, 0o666 & ~_umask())
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def read_json(path: str | Path) -> Any:
    """A JSON file's content, or None when it is missing, unreadable or not JSON (for views that show what a run
    folder holds and skip what it does not)."""
    try:
        return json.loads(Path(path).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None


def html_table(rows: list[dict], columns: list[str] | None = None, *, max_rows: int = 200,
               formats: dict[str, str] | None = None) -> str:
    if not rows:
        return "<p><em>(none)</em></p>"
    columns = columns or list(rows[0].keys())
    formats = formats or {}

    def fmt(col: str, v: Any) -> str:
        if v is None:
            return "&mdash;"
        if isinstance(v, float):
            return esc(format(v, formats.get(col, ".4g")))
        return esc(v)

    head = "".join(f"<th>{esc(c)}</th>" for c in columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{fmt(c, r.get(c))}</td>" for c in columns) + "</tr>" for r in rows[:max_rows]
    )
    more = f"<p><em>{len(rows) - max_rows} more rows not shown</em></p>" if len(rows) > max_rows else ""
    return f"<table class='wb'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{more}"


def fields_from_dict(cls: type, d: Mapping[str, Any], *,
                     convert: Mapping[str, Callable[[Any], Any]] | None = None) -> dict[str, Any]:
    """The keyword arguments that rebuild dataclass report ``cls`` from its ``to_dict()`` output ``d``.

    Every init field but ``title`` is read from ``d`` when present, copied (the report never shares a list or
    dict with ``d``) and passed through ``convert[name]`` when given; keys that are not fields (derived figures
    such as ``verdict`` or ``primary_value``) are ignored. A required field ``d`` lacks -- a run cut short, a file
    written before the field existed -- reads as empty: ``[]`` or ``{}`` by its annotation, None otherwise; a
    field with a default keeps its default.

    Raises
    ------
    TypeError
        ``d`` is not a mapping (say, a report file that holds a list).
    """
    if not isinstance(d, Mapping):
        raise TypeError(f"{cls.__name__}.from_dict expects the dict its to_dict() writes, got {type(d).__name__}")
    convert = convert or {}
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init or f.name == "title":
            continue
        if f.name in d:
            value = copy.deepcopy(d[f.name])
            out[f.name] = convert[f.name](value) if f.name in convert and value is not None else value
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            kind = str(f.type).split("[", 1)[0].strip()
            out[f.name] = [] if kind == "list" else {} if kind == "dict" else None
    return out


# ---------------------------------------------------------------------------------------------- charts
# What the report objects' charts share (their matplotlib figures and the stakeholder app's altair charts): the
# width of an interactive chart, the colour convention and the tag that names a chart in its spec.
CHART_WIDTH = 600
"""Width (px) of the app's interactive charts (the medium marimo layout leaves about 700 px)."""

BLUE, GREY, ORANGE, RED, GREEN = "#1f77b4", "#9e9e9e", "#e6550d", "#c5221f", "#137333"
"""Colour convention: orange raises a score and blue lowers it (a direction, never good/bad); red only marks a
failure; grey is a baseline or too little evidence."""
UP, DOWN, DARK = "#e6550d", "#1f77b4", "#444444"
GROUP_COLOURS = ("#5e3c99", "#1b9e77", "#a6761d", "#e7298a", "#66a61e", "#666666", "#7570b3", "#b2abd2")
"""Groups in a chart: colours that are neither the direction pair (orange/blue) nor red."""


def chart_id(chart: Any, name: str) -> Any:
    """Tag an altair chart ``usermeta.wb_chart = "wb-chart-<name>"`` so the app's browser test (and a reader of
    the spec) can tell the charts apart."""
    return chart.properties(usermeta={"wb_chart": f"wb-chart-{name}"})


class Report:
    """Mixin for result objects: subclasses implement ``to_dict()`` and ``_html_body()``."""

    title: str = "report"

    def to_dict(self) -> dict:  # pragma: no cover - abstract
        raise NotImplementedError

    def summary(self) -> dict:
        """The few key figures a run manifest keeps."""
        return {}

    def to_json(self) -> str:
        return json.dumps(jsonable(self.to_dict()), indent=2, sort_keys=False, allow_nan=False)

    def save(self, path: str | Path) -> Path:
        """Save as JSON (atomically). Returns the path."""
        return atomic_write_text(path, self.to_json() + "\n")

    def save_html(self, path: str | Path) -> Path:
        return atomic_write_text(path, f"<!doctype html><meta charset='utf-8'><title>{esc(self.title)}</title>"
                                       f"{STYLE}{self._repr_html_()}")

    def _html_body(self) -> str:  # pragma: no cover - abstract
        raise NotImplementedError

    def _repr_html_(self) -> str:
        return f"<div class='wb-report'><h3>{esc(self.title)}</h3>{self._html_body()}</div>"


STYLE = """<style>
.wb-report{font-family:system-ui,-apple-system,Segoe UI,sans-serif;font-size:13px}
table.wb{border-collapse:collapse;margin:4px 0 12px}
table.wb th,table.wb td{border:1px solid #ddd;padding:3px 8px;text-align:left}
table.wb th{background:#f4f4f4}
.wb-ok{color:#137333;font-weight:600}.wb-warn{color:#b06000;font-weight:600}.wb-bad{color:#c5221f;font-weight:600}
</style>"""
