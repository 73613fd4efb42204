"""The prediction log: every scored row, durable and append-only, cheap enough to write on every request.

Format and why
--------------
Each serving process appends to its own segment file, ``<dir>/<model-version>/<start-time>-<pid>.jsonl``: one
JSON line per request, columnar (request id, time, model version, ``inputs`` as one list per column,
the task's outputs and ``flags`` as one entry per row), serialized by pydantic-core in one call. The outputs
(:data:`OUTPUTS`): binary ``probability`` and ``label``; multiclass ``label`` and ``probabilities`` (one list per
row, in the model's class order: drift reads only the labels, feedback the lists); regression ``prediction``. The line
is written with a single ``write(2)`` before the response is sent, so once a client has its answer the record
is in the kernel's page cache: a server killed with SIGKILL loses nothing it had answered. (Only a machine crash
or power loss can lose the last ~30 s the OS had not yet flushed; ``fsync="always"`` closes that window at the
cost of one fsync per request.) Segments roll over at ``max_segment_bytes``; retention removes segments older than
``retention_days``. JSON Lines rather than Parquet because Parquet cannot be appended to row by row, and rather
than SQLite because several worker processes then never contend for one lock; polars reads the segments
columnar at ~1M rows/s (see benchmarks).

Answered => logged
------------------
A line is written completely or the request is not answered 200. ``os.write`` may write less than it was
given (a full disk, a signal): :meth:`PredictionLog.append_outputs` loops on its return value until the whole
line is out. When a write fails (``ENOSPC``, ``EROFS``, ``EIO``...) it raises :class:`LogWriteError`; the part of
the line already written is cut off again (``ftruncate`` to the last complete line) when the file system lets it,
and in any case the writer closes that segment and starts a **new segment** for its next line, so it never appends
after a torn tail. :attr:`PredictionLog.healthy` and :attr:`PredictionLog.last_error` say whether the last attempt
worked; :meth:`PredictionLog.check` probes the folder (creating it, writing and removing a 4 KiB probe file)
without writing a log line: what the service's readiness runs while the log is unwritable, and at start-up (an
unwritable or read-only folder then makes the service start *unavailable* with the reason, never crash).

The service (:mod:`workbench.serving`) answers a request whose line could not be written with **503** and the
reason, counts it in ``workbench_prediction_log_failures_total`` and answers ``/readyz`` 503 ("prediction log
unwritable") until a write or a probe succeeds again. ``WORKBENCH_LOG_ON_FAILURE=serve`` is the opt-in for users
who prefer availability over a complete log: requests are then answered 200 even when their line could not be
written, each such line counted in ``workbench_prediction_log_lost_total`` and logged at ERROR (loud, never
silent); ``/readyz`` stays 200. The default, ``refuse``, keeps "every answered request is in the log".

The service's one-record path does not build the line's objects: :meth:`PredictionLog.line_format` serialises
the line :meth:`PredictionLog.append_outputs` would write (the same :meth:`PredictionLog._line` object) once, with a
hole per value (:func:`json_template`), the service fills the holes with its values' JSON and hands the line to
:meth:`PredictionLog.write_line` -- the same durable write. The bytes are the same (tested).

Readers (:func:`read_log`) skip a torn line anywhere in a segment, not only at its end, and count them:
``stats["torn_lines"]`` when a ``stats`` dict is passed, and a warning naming the segments.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import os
import re
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from pathlib import Path
from typing import Any

from pydantic_core import to_json

__all__ = ["LOG_ON_FAILURE", "OUTPUTS", "LogWriteError", "PredictionLog", "read_log", "log_dir", "list_segments",
           "log_on_failure", "log_task", "hole", "json_template"]

LOG_ON_FAILURE = ("refuse", "serve")
"""``$WORKBENCH_LOG_ON_FAILURE``: ``refuse`` (default: a request whose line could not be written is answered 503)
or ``serve`` (answer anyway; count and log the lost line loudly)."""

_PROBE_BYTES = b"\0" * 4096
_NO_FLAGS = tuple([[] for _ in range(n)] for n in range(64))  # shared, never mutated: one request's empty flags


class LogWriteError(OSError):
    """A prediction log line could not be written completely (the message says why, without paths)."""


def log_on_failure() -> str:
    """``$WORKBENCH_LOG_ON_FAILURE`` (``refuse`` or ``serve``; anything else is refused with ValueError)."""
    value = os.environ.get("WORKBENCH_LOG_ON_FAILURE", "refuse").strip().lower() or "refuse"
    if value not in LOG_ON_FAILURE:
        raise ValueError(f"WORKBENCH_LOG_ON_FAILURE={value!r}; choose one of: {', '.join(LOG_ON_FAILURE)}")
    return value


def _reason(exc: OSError) -> str:
    """An OSError as ``[Errno 28] No space left on device``: no file names (they are internal paths)."""
    if exc.errno is not None:
        return f"[Errno {exc.errno}] {os.strerror(exc.errno)}"
    return type(exc).__name__

OUTPUTS = {"binary_classification": ("probability", "label"),
           "multiclass_classification": ("label", "probabilities"),
           "regression": ("prediction",)}
"""The output columns a log line carries per task (besides request_id, ts, model_version, n, inputs, flags)."""

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
_log = logging.getLogger(__name__)


def log_dir() -> Path:
    """``$WORKBENCH_LOG_DIR`` or ``$BENTOML_HOME/workbench/predictions``."""
    env = os.environ.get("WORKBENCH_LOG_DIR")
    if env:
        return Path(env)
    from ..serving.pointer import bentoml_home

    return bentoml_home() / "workbench" / "predictions"


class PredictionLog:
    """Appends scored rows for one model version from one process (thread-safe).

    Parameters
    ----------
    model_version:
        The model tag; segments live in a folder named after it.
    root:
        Log folder (default :func:`log_dir`).
    max_segment_bytes, retention_days:
        Roll over to a new segment past this size; delete segments older than this many days (0 keeps all).
    fsync:
        ``"never"`` (default: durable against process crashes) or ``"always"`` (also against power loss).
    """

    def __init__(self, model_version: str, *, root: str | Path | None = None, max_segment_bytes: int = 64 << 20,
                 retention_days: float = 30.0, fsync: str = "never") -> None:
        self.model_version = model_version
        self.dir = Path(root or log_dir()) / _SAFE.sub("_", model_version)
        self.max_segment_bytes = max_segment_bytes
        self.retention_days = retention_days
        self.fsync = fsync == "always"
        self._lock = threading.Lock()
        self._acquire, self._release = self._lock.acquire, self._lock.release
        self._fd: int | None = None
        self._size = 0
        self.rows_written = 0
        self._ts: tuple[int, str, bytes] = (-1, "", b"")  # the current second and its prefix (see _now)
        #: Whether the last write (or probe) succeeded; :attr:`last_error` says why not (no paths).
        self.healthy = True
        self.last_error = ""
        self.failures = 0
        self._pid = os.getpid()

    def _open(self) -> None:
        """Start a new segment (never an existing file: ``O_EXCL``)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        for attempt in range(100):
            stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%S%f")
            path = self.dir / f"{stamp}-{os.getpid()}{f'-{attempt}' if attempt else ''}.jsonl"
            try:
                self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_EXCL, 0o644)
                break
            except FileExistsError:
                continue
        else:  # pragma: no cover - 100 segments in the same microsecond
            raise FileExistsError("could not name a new log segment")
        self._size = 0
        self._enforce_retention()

    def _fail(self, exc: OSError) -> LogWriteError:
        self.healthy = False
        self.last_error = _reason(exc)
        self.failures += 1
        return LogWriteError(exc.errno or 0, f"the prediction log is unwritable: {self.last_error}")

    def check(self) -> bool:
        """Probe the log folder without writing a log line: create it, write 4 KiB to a probe file and remove it.
        Sets :attr:`healthy` / :attr:`last_error` and returns :attr:`healthy`."""
        probe = self.dir / f".probe-{os.getpid()}"
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                _write_all(fd, _PROBE_BYTES)
            finally:
                os.close(fd)
                with contextlib.suppress(OSError):
                    os.unlink(probe)
        except OSError as exc:
            self._fail(exc)
            return False
        self.healthy, self.last_error = True, ""
        return True

    def _enforce_retention(self) -> None:
        if self.retention_days <= 0:
            return
        cutoff = time.time() - self.retention_days * 86400
        for p in self.dir.glob("*.jsonl"):
            try:
                if p.stat().st_mtime < cutoff:
                    p.unlink()
            except OSError:
                continue

    def append(self, request_id: str, inputs: Mapping[str, Sequence[Any]], probabilities: Sequence[float],
               labels: Sequence[str], flags: Sequence[Sequence[str]] | Mapping[int, Mapping[str, str]] | None = None,
               *, validated: bool = False) -> int:
        """Log the rows of one request; returns the number of rows written.

        ``inputs`` is columnar (one sequence per input, None for missing). ``flags`` is either one list of
        ``"field:flag"`` strings per row, or the guard's sparse ``{row: {field: flag}}``. ``probabilities`` are
        floats and ``labels`` strings.

        ``validated=True`` says the input values already are plain ``str``/``int``/``float``/``None`` (what the
        request schema hands the service) and the probabilities a list of floats: they are serialized as they
        are, skipping the per-value normalisation (numpy scalars, NaN -> null) that other callers need. It
        halves the cost of a one-record append (the service's hot path).
        """
        return self.append_outputs(request_id, inputs, {"probability": probabilities, "label": labels}, flags,
                                   validated=validated)

    def append_outputs(self, request_id: str, inputs: Mapping[str, Sequence[Any]],
                       outputs: Mapping[str, Sequence[Any]],
                       flags: Sequence[Sequence[str]] | Mapping[int, Mapping[str, str]] | None = None,
                       *, validated: bool = False) -> int:
        """Log the rows of one request with the task's output columns (:data:`OUTPUTS`), one entry per row each:
        binary ``{"probability": [p], "label": [str]}``; multiclass ``{"label": [str], "probabilities": [[p_k]]}``
        (one list per row, in the model's class order); regression ``{"prediction": [y]}``.

        ``inputs``, ``flags`` and ``validated`` as in :meth:`append` (validated: the outputs already are plain
        floats and strings).
        """
        n = len(next(iter(outputs.values())))
        if not flags:
            row_flags: list[list[str]] = _NO_FLAGS[n] if n < len(_NO_FLAGS) else [[] for _ in range(n)]
        elif isinstance(flags, dict | Mapping):  # (a dict, the guard's, is recognised without the ABC machinery)
            row_flags = [[f"{k}:{v}" for k, v in flags[i].items()] if i in flags else [] for i in range(n)]
        else:
            row_flags = [list(f) for f in flags]
        if not validated:
            inputs = {k: [_plain(v) for v in col] for k, col in inputs.items()}
            outputs = {k: _plain_output(k, col) for k, col in outputs.items()}
        return self.write_line(to_json(self._line(request_id, self._now(), n, inputs, outputs, row_flags)) + b"\n", n)

    def _line(self, request_id: Any, ts: Any, n: int, inputs: Mapping[str, Any], outputs: Mapping[str, Any],
              row_flags: Any) -> dict:
        """A log line as the object serialised: the one definition of the line's fields and their order (what
        :meth:`append_outputs` writes and :meth:`line_format` turns into a format)."""
        return {"request_id": request_id, "ts": ts, "model_version": self.model_version, "n": n, "inputs": inputs,
                **outputs, "flags": row_flags}

    def line_format(self, inputs: Sequence[str], outputs: Mapping[str, Any], holes: Sequence[str]) -> tuple[bytes, Any]:
        """The line :meth:`append_outputs` writes for one clean record (no flags), as a bytes ``%`` format with a
        hole per value: what a caller that has the values' JSON already (the service's one-record path) formats
        and hands to :meth:`write_line` instead of building and serialising the line's objects again.

        ``outputs``: the task's output columns (:data:`OUTPUTS`) for one record with a :func:`hole` for each
        value, ``holes`` those holes' names. Returns ``(format, order)`` (see :func:`json_template`): given the
        JSON text of the values in the order ``request_id, ts, <one per input, in inputs order>, <holes in
        holes order>`` (``to_json(request_id)``, :meth:`ts_json`, ...), ``format % order(values)`` is byte for
        byte the line :meth:`append_outputs` writes for them (tested), newline included.
        """
        names = ["request_id", "ts", *(f"input {k}" for k in range(len(inputs)))]
        line = self._line(hole(names[0]), hole(names[1]), 1,
                          {c: [hole(h)] for c, h in zip(inputs, names[2:], strict=True)}, outputs, _NO_FLAGS[1])
        fmt, order = json_template(line, [*names, *holes])
        return fmt + b"\n", order

    def write_line(self, data: bytes, rows: int) -> int:
        """Append one complete line (``data``, newline included, holding ``rows`` rows) durably: one ``write(2)``
        before returning, a new segment past ``max_segment_bytes``; :class:`LogWriteError` when it cannot be
        written whole (module docstring, "Answered => logged"). Returns ``rows``."""
        if data[-1:] != b"\n":  # a line without its end would glue the next one to it
            raise ValueError("a prediction log line must end with a newline")
        size = len(data)
        self._acquire()  # (acquire/release: a third of the cost of `with self._lock` around a write here)
        try:
            fd, end = self._fd, self._size + size
            try:
                if fd is None or end > self.max_segment_bytes:
                    self.close()
                    self._open()
                    fd, end = self._fd, size
                written = os.write(fd, data)  # one write(2) in the common case: the rows land together
                if written != size:  # a short write: go on from where it stopped
                    _write_all(fd, memoryview(data)[written:])
                if self.fsync:
                    os.fsync(fd)
            except OSError as exc:
                self._abandon_segment()
                raise self._fail(exc) from None
            self._size = end
            self.rows_written += rows
            if not self.healthy:
                self.healthy, self.last_error = True, ""
        finally:
            self._release()
        return rows

    def _abandon_segment(self) -> None:
        """After a failed write: cut the torn tail off (when the file system allows) and close the segment, so the
        next line starts a new one and never lands after a partial line."""
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, self._size)
        with contextlib.suppress(OSError):
            os.close(self._fd)
        self._fd = None

    def _now(self) -> str:
        """UTC time as ``datetime.isoformat(timespec="microseconds")`` writes it; the date-time part is formatted
        once per second (a third of the cost of formatting it on every request), the microseconds from the
        integer clock (``time_ns``: no float arithmetic, ~0.2 us)."""
        sec, us = divmod(time.time_ns() // 1000, 1_000_000)
        second = self._ts
        if second[0] != sec:
            second = self._second(sec)
        return f"{second[1]}{us:06d}+00:00"

    def ts_json(self) -> bytes:
        """:meth:`_now` as its JSON text (``b'"2026-12-01T10:00:00.123456+00:00"'``: no character to escape)."""
        sec, us = divmod(time.time_ns() // 1000, 1_000_000)
        second = self._ts
        if second[0] != sec:
            second = self._second(sec)
        return b'"%b%06d+00:00"' % (second[2], us)

    def _second(self, sec: int) -> tuple[int, str, bytes]:
        """``(second, its date-time prefix as text and as bytes)``, kept as one value: a thread reads the second
        and its prefix together, never one second's prefix with another's check."""
        prefix = _dt.datetime.fromtimestamp(sec, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.")
        self._ts = second = (sec, prefix, prefix.encode())
        return second

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            with contextlib.suppress(OSError):
                os.close(fd)


def hole(name: str) -> str:
    """A named hole for :func:`json_template`: a string no request or model carries (NUL-delimited)."""
    return f"\0{name}\0"


def json_template(obj: Any, names: Sequence[str]) -> tuple[bytes, Any]:
    """``obj`` serialised by pydantic-core (as :func:`pydantic_core.to_json` writes it) with every
    :func:`hole` string turned into a ``%b`` of a bytes ``%`` format (and every other ``%`` doubled).

    Returns ``(format, order)``: ``order(values)`` takes the JSON text of each hole's value, as bytes, in
    ``names`` order, and returns them in the order the format wants (the holes' order in the serialised text);
    ``order`` is None when that is ``names`` order already. ``format % order(values)`` (or ``format % values``)
    is then what ``to_json`` writes for ``obj`` with the values in place.

    Raises
    ------
    ValueError
        A name of ``names`` is not a hole of ``obj`` exactly once, or ``obj`` holds a hole not named.
    """
    text = to_json(obj).replace(b"%", b"%%")
    where = {}
    for name in names:
        key = to_json(hole(name))
        if text.count(key) != 1:
            raise ValueError(f"hole {name!r} appears {text.count(key)} times in the template")
        where[name] = text.index(key)
        text = text.replace(key, b"%b")
    if b"\\u0000" in text:
        raise ValueError("the template holds a hole not named")
    # each replacement shortened the text before the later holes alike: positions keep their order
    ranked = sorted(range(len(names)), key=lambda k: where[names[k]])
    if ranked == list(range(len(names))):
        return text, None
    return text, itemgetter(*ranked)  # (two holes at least: a single one is always in order)


def _write_all(fd: int, data: bytes | memoryview) -> None:
    """``os.write`` until every byte is written (it may write fewer than asked); OSError when it cannot."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # pragma: no cover - write(2) returns -1 (an OSError) rather than 0 for files
            raise OSError(28, os.strerror(28))
        view = view[written:]


def _plain(v: Any) -> Any:
    if v is None or type(v) in (str, int, float):
        return None if v != v else v  # NaN -> None
    if isinstance(v, str | bool):
        return v
    f = float(v)
    return None if f != f else f


def _plain_output(name: str, col: Sequence[Any]) -> list:
    if name == "label":
        return [str(v) for v in col]
    if name == "probabilities":
        return [[float(p) for p in row] for row in col]
    return [float(v) for v in col]


def list_segments(root: str | Path | None = None, model_version: str | None = None) -> list[Path]:
    base = Path(root or log_dir())
    if model_version:
        base = base / _SAFE.sub("_", model_version)
        return sorted(base.glob("*.jsonl")) if base.is_dir() else []
    return sorted(base.glob("*/*.jsonl")) if base.is_dir() else []


def log_task(line: bytes | str) -> str:
    """The task a log line was written for, from its output columns (lines carry no task field: binary logs
    written before multiclass and regression existed read as they always did)."""
    import json

    keys = json.loads(line)
    if "probabilities" in keys:
        return "multiclass_classification"
    if "prediction" in keys:
        return "regression"
    return "binary_classification"


def _lean_outputs(task: str) -> dict:
    """What drift needs of a task's outputs: binary the probability, multiclass the label, regression the
    prediction."""
    import polars as pl

    return {"binary_classification": {"probability": pl.List(pl.Float64)},
            "multiclass_classification": {"label": pl.List(pl.String)},
            "regression": {"prediction": pl.List(pl.Float64)}}[task]


def _complete_lines(raw: bytes) -> tuple[bytes, int]:
    """The segment's complete, parseable lines and how many torn ones were dropped (anywhere in the file).

    Only called when the fast columnar parse failed or the tail is torn: each line is checked with ``json.loads``
    (a torn line is not a JSON object; two lines glued by a write after a torn tail are not either)."""
    import json

    torn = 0
    keep: list[bytes] = []
    lines = raw.split(b"\n")
    if lines and lines[-1].strip():  # no newline at the end: the last line was cut
        torn += 1
    for line in lines[:-1]:
        if not line.strip():
            continue
        try:
            ok = isinstance(json.loads(line), dict)
        except ValueError:
            ok = False
        if ok:
            keep.append(line)
        else:
            torn += 1
    return (b"\n".join(keep) + b"\n") if keep else b"", torn


def read_log(root: str | Path | None = None, *, model_version: str | None = None, since: str | None = None,
             columns: Iterable[str] | None = None, input_kinds: Mapping[str, str] | None = None,
             stats: dict | None = None) -> Any:
    """All logged rows as one polars frame: ``request_id, row, ts, model_version``, the task's outputs
    (:data:`OUTPUTS`: binary ``probability, label``; multiclass ``label, probabilities`` -- a list per row;
    regression ``prediction``), ``flags`` and one column per input. A torn line anywhere in a segment (a crash
    mid-write, a full disk) is skipped, never fatal, and counted: ``stats["torn_lines"]`` (and
    ``stats["torn_segments"]``, their file names) when ``stats`` is given, and a warning.

    With ``input_kinds`` (``{input: "numeric"|"categorical"}``, e.g. from the reference profile) only those inputs,
    the time and what drift reads of the predictions (binary ``probability``, multiclass ``label``, regression
    ``prediction``) are parsed: what ``workbench drift`` needs, about twice as fast on large logs.

    Raises
    ------
    DataError
        There is no log, or it holds no rows.
    """
    import polars as pl

    from ..errors import DataError

    segments = list_segments(root, model_version)
    if not segments:
        where = Path(root or log_dir()) / (model_version or "")
        raise DataError("the prediction log is empty: no segments", file=where,
                        hint="serve the model and send requests first (or set --log-dir)")
    frames = []
    torn_total, torn_segments = 0, []

    def parse(raw: bytes) -> Any:
        if input_kinds:
            # a segment is one process serving one model: its first line says which outputs it holds
            schema = {"ts": pl.String, "n": pl.Int64,
                      "inputs": pl.Struct({c: pl.List(pl.Float64 if k == "numeric" else pl.String)
                                           for c, k in input_kinds.items()}),
                      **_lean_outputs(log_task(raw[: raw.find(b"\n")]))}
            return pl.read_ndjson(raw, schema=schema)
        return pl.read_ndjson(raw, infer_schema_length=None)  # fields may first appear late (a challenger)

    for seg in segments:
        raw = seg.read_bytes()
        if not raw.strip():
            continue
        torn = 0
        if not raw.endswith(b"\n"):  # a torn tail: check every line (one may be torn before it, too)
            raw, torn = _complete_lines(raw)
            if not raw:
                torn_total, torn_segments = torn_total + torn, [*torn_segments, seg.name]
                continue
        try:
            frame = parse(raw)
        except Exception:  # polars raises ComputeError on a torn line in the middle: drop such lines, count them
            raw, more = _complete_lines(raw)
            torn += more
            if not raw:
                torn_total, torn_segments = torn_total + torn, [*torn_segments, seg.name]
                continue
            frame = parse(raw)
        if torn:
            torn_total += torn
            torn_segments.append(seg.name)
        frames.append(frame)
    if stats is not None:
        stats["torn_lines"] = torn_total
        stats["torn_segments"] = torn_segments
    if torn_total:
        _log.warning("the prediction log has %d torn line(s), skipped (segments: %s)", torn_total,
                     ", ".join(torn_segments[:10]))
    if not frames:
        raise DataError("the prediction log holds no rows", file=Path(root or log_dir()),
                        hint="serve the model and send requests first")
    df = pl.concat(frames, how="diagonal_relaxed").unnest("inputs")
    lists = [c for c, t in df.schema.items() if isinstance(t, pl.List) and c not in ("request_id",)]
    # a line without a column the others have (role / answered_by / latency_ms before a challenger arrived) holds
    # null there, where the others hold one value per row: n nulls, so every list column explodes alike
    gaps = [pl.when(pl.col(c).is_null()).then(pl.int_ranges(0, pl.col("n")).list.eval(
        pl.lit(None).cast(df.schema[c].inner))).otherwise(pl.col(c)).alias(c)  # type: ignore[union-attr]
        for c in lists if df.get_column(c).null_count()]
    if gaps:
        df = df.with_columns(gaps)
    df = df.with_columns(pl.int_ranges(0, pl.col("n")).alias("row")).explode([*lists, "row"]).drop("n")
    if "request_id" in df.columns:
        df = df.select(["request_id", "row", pl.exclude("request_id", "row")])
    if since:
        df = df.filter(pl.col("ts") >= since)
    if columns is not None:
        keep = ["request_id", "row", "ts", "model_version", "probability", "label", "probabilities", "prediction",
                "flags", *columns]
        df = df.select([c for c in keep if c in df.columns])
    return df
