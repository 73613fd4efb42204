"""Log compaction: JSON-lines segments of the prediction log rewritten as Parquet, and the columnar reader drift uses.

Why
---
The service writes one JSON line per request (:mod:`workbench.monitoring.log`): the cheapest durable append, but
the costliest read when each line holds one record -- every line is parsed as a nested document and every value
is a one-element list. 1M single-record lines took about 50 s and 1.5 GB to read for drift. Parquet holds the
same rows one value per cell, column by column, so a drift check reads only the columns it needs (projection
pushdown) and the ``ts`` filter skips row groups by their statistics (predicate pushdown).

Layout and atomicity
--------------------
A segment ``<log>/<model-version>/<stamp>-<pid>.jsonl`` is compacted to ``<stamp>-<pid>.parquet`` beside it, one
row per logged row (the columns :func:`~workbench.monitoring.log.read_log` returns: ``request_id, row, ts,
model_version``, one column per input, the task's outputs -- binary ``probability, label``; multiclass ``label,
probabilities`` (a list per row); regression ``prediction`` -- and ``flags``). The Parquet is written to a hidden
temporary file, fsynced, read back and compared with the rows parsed from the segment, and only then renamed into
place; the JSON-lines segment is removed after the rename. A crash at any point leaves the segment readable: before
the rename only the JSONL exists (a stray temporary file is ignored and replaced next time); after it, both exist
and readers take the Parquet (the next compaction removes the JSONL). The Parquet keeps the segment's modification
time, so retention by age treats both forms alike. A line that does not parse (a torn write,
anywhere in the segment) is skipped and counted, never fatal.

Which segments
--------------
Only segments no process writes to any more: a writer rolls over by closing a segment and opening a newer one,
so every segment but the newest of each writer pid is closed; the newest is closed when its process is gone (and
no process holds an ``flock`` on it). The compacting process's own open segments count as active unless
``include_active=True`` (for a caller that has closed its :class:`~workbench.monitoring.log.PredictionLog`).
Active segments stay JSONL and :func:`read_columns` reads them with the same parser, so a drift check always
sees every logged row, compacted or not.
"""

from __future__ import annotations

import fcntl
import io
import logging
import os
import re
import time
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import polars as pl

from .log import list_segments, log_dir

__all__ = ["CompactionResult", "compact_log", "log_files", "read_columns", "read_segment", "segment_is_active"]

_log = logging.getLogger(__name__)
_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")  # the writer's folder naming (log.py)
_STEM = re.compile(r"^(?P<stamp>\d{8}T\d+)-(?P<pid>\d+)(?:-(?P<attempt>\d+))?$")  # <stamp>-<pid>[-<attempt>]
_BASE = ("request_id", "row", "ts", "model_version")
_OUTPUTS = ("probability", "label", "probabilities", "prediction")
_ROW_GROUP = 128 * 1024


@dataclass
class CompactionResult:
    """What a compaction did: segments compacted (with rows, torn lines and bytes each), segments left alone."""

    root: str
    model_version: str | None
    compacted: list[dict] = field(default_factory=list)
    active: list[str] = field(default_factory=list)
    empty: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(c["rows"] for c in self.compacted)

    @property
    def torn_lines(self) -> int:
        return sum(c["torn_lines"] for c in self.compacted)

    @property
    def bytes_in(self) -> int:
        return sum(c["bytes_in"] for c in self.compacted)

    @property
    def bytes_out(self) -> int:
        return sum(c["bytes_out"] for c in self.compacted)

    def to_dict(self) -> dict:
        return {**asdict(self), "rows": self.rows, "torn_lines": self.torn_lines, "bytes_in": self.bytes_in,
                "bytes_out": self.bytes_out}

    def summary(self) -> str:
        """One line for the CLI."""
        ratio = f", {self.bytes_in / self.bytes_out:.1f}x smaller" if self.bytes_out else ""
        torn = f"; {self.torn_lines} torn line(s) skipped" if self.torn_lines else ""
        failed = f"; {len(self.failed)} failed (left as JSONL)" if self.failed else ""
        return (f"compacted {len(self.compacted)} segment(s), {self.rows:,} rows, {self.bytes_in / 1e6:.1f} MB -> "
                f"{self.bytes_out / 1e6:.1f} MB{ratio} in {self.seconds:.1f} s; {len(self.active)} active segment(s) "
                f"left as JSONL{torn}{failed}")


# ----------------------------------------------------------------------------------------------- parsing
@dataclass
class _Parsed:
    frame: pl.DataFrame
    lines: int
    torn: int


def _valid_lines(raw: bytes) -> tuple[list[bytes], int]:
    """The lines of ``raw`` that are whole JSON objects with the log's shape, and how many were not."""
    from pydantic_core import from_json

    good: list[bytes] = []
    torn = 0
    for line in raw.split(b"\n"):
        if not line.strip():
            continue
        try:
            obj = from_json(line)
        except ValueError:
            torn += 1
            continue
        if isinstance(obj, dict) and isinstance(obj.get("inputs"), dict) and isinstance(obj.get("n"), int):
            good.append(line)
        else:
            torn += 1
    return good, torn


def _arrow_read(raw: bytes, block_size: int | None = None) -> pl.DataFrame:
    import pyarrow.json as pj

    opts = pj.ReadOptions(use_threads=True, block_size=block_size) if block_size else pj.ReadOptions(use_threads=True)
    return pl.from_arrow(pj.read_json(io.BytesIO(raw), read_options=opts))  # type: ignore[return-value]


def _parse(raw: bytes) -> _Parsed:
    """Parse a segment's bytes: pyarrow's JSON reader on the whole segment (fast path), trusted only when it finds
    one row per line; otherwise (a torn or foreign line, two objects glued on one line, a line longer than a
    block, types that change) keep the valid lines and parse them again, with polars' full-scan inference as the
    last resort. A last line without its newline is torn (the writer had not finished it), as ``read_log`` says."""
    import pyarrow as pa

    torn = 0
    if raw and not raw.endswith(b"\n"):
        cut = raw.rfind(b"\n") + 1
        torn += int(bool(raw[cut:].strip()))
        raw = raw[:cut]
    if not raw.strip():
        return _Parsed(pl.DataFrame(), 0, torn)
    try:
        df = _arrow_read(raw)
        if df.height == raw.count(b"\n"):
            return _Parsed(_flatten(df), df.height, torn)
    except (pa.ArrowInvalid, pl.exceptions.PolarsError):
        pass
    good, bad = _valid_lines(raw)
    torn += bad
    if not good:
        return _Parsed(pl.DataFrame(), 0, torn)
    clean = b"\n".join(good) + b"\n"
    try:
        df = _arrow_read(clean, block_size=max(1 << 20, max(map(len, good)) + 2))
    except (pa.ArrowInvalid, pl.exceptions.PolarsError):
        df = pl.read_ndjson(clean, infer_schema_length=None)
    return _Parsed(_flatten(df), len(good), torn)


def _flatten(df: pl.DataFrame) -> pl.DataFrame:
    """One line per request -> one row per logged row, in the column order of ``read_log``."""
    if df.height == 0:
        return pl.DataFrame()
    inputs = [f.name for f in df.schema["inputs"].fields] if "inputs" in df.columns else []  # type: ignore[union-attr]
    df = df.unnest("inputs") if "inputs" in df.columns else df
    lists = [c for c, t in df.schema.items() if isinstance(t, pl.List) and c not in ("request_id",)]
    # a line written before a challenger arrived has no role / answered_by / latency_ms: its cell is null where
    # the other lines hold one value per row; give it n nulls so every list column explodes to the same length
    holes = [pl.when(pl.col(c).is_null()).then(pl.int_ranges(0, pl.col("n")).list.eval(
        pl.lit(None).cast(df.schema[c].inner))).otherwise(pl.col(c)).alias(c)  # type: ignore[union-attr]
        for c in lists if df.get_column(c).null_count()]
    if holes:
        df = df.with_columns(holes)
    df = df.with_columns(pl.int_ranges(0, pl.col("n")).alias("row")).explode([*lists, "row"]).drop("n")
    casts = []
    for c in inputs:
        t = df.schema[c]
        if t.is_integer() or t == pl.Boolean:
            casts.append(pl.col(c).cast(pl.Float64))  # numbers are floats in every segment (as the service logs)
    if "flags" in df.columns and df.schema["flags"] != pl.List(pl.String):
        casts.append(pl.col("flags").cast(pl.List(pl.String)))
    if "probabilities" in df.columns and df.schema["probabilities"] != pl.List(pl.Float64):
        casts.append(pl.col("probabilities").cast(pl.List(pl.Float64)))
    for c in ("probability", "prediction"):
        if c in df.columns and df.schema[c] != pl.Float64:
            casts.append(pl.col(c).cast(pl.Float64))
    if "label" in df.columns and df.schema["label"] != pl.String:
        casts.append(pl.col("label").cast(pl.String))
    if casts:
        df = df.with_columns(casts)
    first = [c for c in _BASE if c in df.columns]
    outs = [c for c in _OUTPUTS if c in df.columns]
    rest = [c for c in df.columns if c not in first and c not in outs and c != "flags"]
    return df.select([*first, *rest, *outs, *(["flags"] if "flags" in df.columns else [])])


def read_segment(path: str | Path) -> pl.DataFrame:
    """One JSON-lines segment as rows (the columns described in the module docstring); torn lines skipped."""
    return _parse(Path(path).read_bytes()).frame


# ----------------------------------------------------------------------------------------------- which segments
def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _locked(path: Path) -> bool:
    """True when another open file description holds an flock on ``path`` (a writer that locks its segment)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        os.close(fd)  # closing releases our lock
    return False


def segment_is_active(path: Path, newest_of_pid: bool, *, include_active: bool = False) -> bool:
    """Whether a process may still append to ``path`` (see the module docstring)."""
    if _locked(path):
        return True
    if not newest_of_pid or include_active:
        return False
    m = _STEM.match(path.stem)
    if not m:
        return True  # not a segment name the writer makes: leave it alone
    pid = int(m.group("pid"))
    return pid == os.getpid() or _pid_alive(pid)


def _segments_by_state(segments: Sequence[Path], include_active: bool) -> tuple[list[Path], list[Path]]:
    def order(p: Path) -> tuple[str, int]:
        m = _STEM.match(p.stem)
        return (m.group("stamp"), int(m.group("attempt") or 0)) if m else (p.stem, 0)

    newest: dict[tuple[Path, str], Path] = {}
    for s in segments:
        m = _STEM.match(s.stem)
        key = (s.parent, m.group("pid") if m else s.stem)
        if key not in newest or order(s) > order(newest[key]):
            newest[key] = s
    newest_set = set(newest.values())
    closed, active = [], []
    for s in segments:
        (active if segment_is_active(s, s in newest_set, include_active=include_active) else closed).append(s)
    return closed, active


# ----------------------------------------------------------------------------------------------- compaction
def _fsync_dir(d: Path) -> None:
    try:
        fd = os.open(d, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_parquet(df: pl.DataFrame, final: Path, meta: dict[str, str]) -> int:
    """Write ``df`` to ``final`` atomically, after reading the temporary file back; returns its size."""
    import pyarrow.parquet as pq

    from ..errors import DataError

    tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
    table = df.to_arrow()
    table = table.replace_schema_metadata({**(table.schema.metadata or {}), **{f"workbench.{k}": v
                                                                             for k, v in meta.items()}})
    try:
        with open(tmp, "wb") as fh:
            pq.write_table(table, fh, compression="zstd", row_group_size=_ROW_GROUP)
            fh.flush()
            os.fsync(fh.fileno())
        back = pl.read_parquet(tmp)
        if not back.equals(df):
            raise DataError("the compacted Parquet does not read back as the segment's rows", file=final,
                            hint="the JSON-lines segment was kept; check the disk, then run the compaction again")
        os.replace(tmp, final)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(final.parent)
    return final.stat().st_size


def compact_segment(path: str | Path) -> dict:
    """Compact one (closed) segment; returns ``{segment, parquet, lines, rows, torn_lines, bytes_in, bytes_out}``
    or ``{..., "rows": 0}`` when it holds no complete line (the segment is then left as it is)."""
    path = Path(path)
    st = path.stat()
    raw = path.read_bytes()
    parsed = _parse(raw)
    out = {"segment": path.name, "parquet": None, "lines": parsed.lines, "rows": parsed.frame.height,
           "torn_lines": parsed.torn, "bytes_in": len(raw), "bytes_out": 0}
    if parsed.frame.height == 0:
        return out
    final = path.with_suffix(".parquet")
    out["bytes_out"] = _write_parquet(parsed.frame, final, {"source": path.name, "lines": str(parsed.lines),
                                                             "torn_lines": str(parsed.torn)})
    out["parquet"] = final.name
    os.utime(final, ns=(st.st_atime_ns, st.st_mtime_ns))  # the segment's age, for retention
    path.unlink()
    _fsync_dir(path.parent)
    if parsed.torn:
        _log.warning("%s: %d torn line(s) skipped during compaction", path, parsed.torn)
    return out


def compact_log(root: str | Path | None = None, model_version: str | None = None, *,
                include_active: bool = False) -> CompactionResult:
    """Compact every closed JSON-lines segment of the prediction log (one model version, or all) to Parquet.

    Parameters
    ----------
    root:
        Log folder (default :func:`~workbench.monitoring.log.log_dir`).
    model_version:
        The model tag whose segments to compact (default: every model version in the folder).
    include_active:
        Also compact the newest segment of live writer processes, including this one. Only for a caller that knows
        no process appends to them any more (a closed :class:`~workbench.monitoring.log.PredictionLog`): a
        writer that still holds a removed segment open would lose what it appends.

    Returns
    -------
    CompactionResult
        Per segment compacted: rows, complete lines, torn lines skipped, bytes before and after; the active
        segments left as JSONL; the segments that failed (left as JSONL, with the reason).
    """
    t0 = time.perf_counter()
    base = Path(root or log_dir())
    res = CompactionResult(root=str(base), model_version=model_version)
    segments = list_segments(base, model_version)
    closed, active = _segments_by_state(segments, include_active)
    res.active = [str(s.relative_to(base)) for s in active]
    for seg in closed:
        try:
            info = compact_segment(seg)
        except FileNotFoundError:
            continue  # another compaction took it
        except Exception as exc:  # noqa: BLE001 - one bad segment must not stop the others; reported
            res.failed.append({"segment": str(seg.relative_to(base)), "error": f"{type(exc).__name__}: {exc}"[:500]})
            continue
        info["segment"] = str(seg.relative_to(base))
        (res.compacted if info["rows"] else res.empty).append(info if info["rows"] else info["segment"])
    res.seconds = round(time.perf_counter() - t0, 3)
    return res


# ----------------------------------------------------------------------------------------------- reading
def _folders(base: Path, model_version: str | None) -> list[Path]:
    if model_version:
        return [base / _SAFE.sub("_", model_version)]
    return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []


def log_files(root: str | Path | None = None, model_version: str | None = None) -> list[Path]:
    """Every file holding logged rows: compacted ``*.parquet`` and JSON-lines ``*.jsonl`` segments (what "is there
    a log for this model?" should look at once segments are compacted; ``list_segments`` lists only the JSONL)."""
    base = Path(root or log_dir())
    out: list[Path] = []
    for folder in _folders(base, model_version):
        if folder.is_dir():
            out += [p for p in folder.iterdir() if p.suffix in (".parquet", ".jsonl") and not p.name.startswith(".")]
    return sorted(out)


def _want(columns: Iterable[str] | None, schema: dict) -> list[str] | None:
    if columns is None:
        return None
    return [c for c in columns if c in schema]


def read_columns(root: str | Path | None, model_version: str | None, columns: Iterable[str] | None = None,
                 since: str | None = None, *, allow_empty: bool = False) -> pl.DataFrame:
    """Logged rows of one model version (or all), compacted or not, as one polars frame.

    Compacted segments are read from Parquet with only ``columns`` (projection pushdown) and ``ts >= since``
    (predicate pushdown on the row groups' statistics); segments not yet compacted are parsed with the
    compaction's own parser (so both give the same rows and types; torn lines skipped). A segment present in
    both forms (a compaction between its rename and the removal of the JSONL) is read once, from Parquet.

    Parameters
    ----------
    columns:
        Column names to return, in this order, among ``request_id, row, ts, model_version``, the inputs, the
        task's outputs and ``flags``; names the log does not hold are left out (``drift_report`` names a missing
        feature). ``None``: every column.
    since:
        Only rows with ``ts`` at or after this ISO time.
    allow_empty:
        Return an empty frame, instead of raising, when the log has segments but no rows (in the window).

    Raises
    ------
    DataError
        There is no log, or it holds no rows (in the window) and ``allow_empty`` is false.
    """
    from ..errors import DataError

    base = Path(root or log_dir())
    cols = None if columns is None else list(dict.fromkeys(columns))
    lazies: list[pl.LazyFrame] = []
    seen = 0
    for folder in _folders(base, model_version):
        if not folder.is_dir():
            continue
        parquets = sorted(p for p in folder.glob("*.parquet") if not p.name.startswith("."))
        compacted = {p.stem for p in parquets}
        seen += len(parquets)
        for p in parquets:
            lf = pl.scan_parquet(p)
            want = _want(cols, dict(lf.collect_schema()))
            if since:
                lf = lf.filter(pl.col("ts") >= since)
            lazies.append(lf if want is None else lf.select(want))
        for seg in sorted(folder.glob("*.jsonl")):
            if seg.stem in compacted:
                continue
            seen += 1
            try:
                df = read_segment(seg)
            except FileNotFoundError:  # compacted since the folder was listed
                if not seg.with_suffix(".parquet").exists():
                    continue
                df = pl.read_parquet(seg.with_suffix(".parquet"))
            if df.height == 0:
                continue
            if since:
                df = df.filter(pl.col("ts") >= since)
            want = _want(cols, dict(df.schema))
            lazies.append((df if want is None else df.select(want)).lazy())
    if not seen:
        where = base / (_SAFE.sub("_", model_version) if model_version else "")
        raise DataError("the prediction log is empty: no segments", file=where,
                        hint="serve the model and send requests first (or set --log-dir)")
    frames = [f for f in pl.collect_all(lazies) if f.width] if lazies else []
    df = (pl.DataFrame() if not frames else frames[0] if len(frames) == 1
          else pl.concat(frames, how="diagonal_relaxed"))
    if df.height == 0 and not allow_empty:
        raise DataError("the prediction log holds no rows" + (f" since {since}" if since else ""), file=base,
                        hint="serve the model and send requests first" + (" (or widen --since)" if since else ""))
    if cols is not None and df.width:
        df = df.select([c for c in cols if c in df.columns])
    return df
