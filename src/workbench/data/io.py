"""Reading tabular data (CSV or Parquet) into polars, with the clean-up every messy file needs.

:func:`read_table` reads one file: the separator is checked on a sample first (quote-aware field counts per
candidate separator, so a semicolon file whose text holds commas is recognised, and the error names the
candidates), duplicate headers are refused with both positions (or, when allowed, renamed and recorded), column
names become snake_case, text is stripped, the brief's missing-value tokens become null, CSV columns whose
every value is a number become numeric and those whose every value is an ISO date or datetime become dates.
:func:`load_dataset` reads the brief's train (and test) files, checks them against the brief, adds the brief's
derived date features, splits (stratified at random, or by time on ``data.split_column``) and returns a
:class:`Dataset` that records the sha256 of every source, every rename and every decision in its notes.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import polars as pl

from .._names import normalize_column_name, suggest
from ..brief import Brief
from ..errors import DataError
from ..tasks import get_task
from .dates import derive_columns, is_date_dtype, parse_dates
from .derive import derived_specs

__all__ = ["Dataset", "Source", "read_table", "load_dataset", "sha256_file", "sniff_separator", "target_vector"]

log = logging.getLogger(__name__)

_SEPARATORS = {",": "comma", ";": "semicolon", "\t": "tab", "|": "pipe"}
DEFAULT_NA = ["", "?", "NA", "N/A", "n/a", "NaN", "nan", "null", "NULL", "None"]


def sha256_file(path: str | Path, *, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


@dataclass(frozen=True)
class Source:
    """Provenance of one loaded file."""

    path: str
    sha256: str
    rows: int
    columns: int
    renamed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"path": self.path, "sha256": self.sha256, "rows": self.rows, "columns": self.columns,
                "renamed": self.renamed}


@dataclass
class Dataset:
    """Train and test frames plus where they came from.

    ``split`` is ``"file"`` when the brief names a test file, ``"random"`` when the train file was split at random
    and ``"time"`` when its latest rows (by ``data.split_column``) became the test split (``time_split`` says
    where the cut is). ``derived`` holds the derived date features' specs (:func:`~workbench.data.derive.derived_specs`)
    and ``date_columns`` the columns read as dates.
    ``dropped_target`` counts, per file (``"train"``, ``"test"``), the rows dropped because their target is
    missing where the task never imputes it (regression); the audit reports it.
    """

    train: pl.DataFrame
    test: pl.DataFrame
    sources: dict[str, Source]
    split: str
    notes: list[str] = field(default_factory=list)
    dropped_target: dict[str, int] = field(default_factory=dict)
    derived: list[dict] = field(default_factory=list)
    date_columns: list[str] = field(default_factory=list)
    time_split: dict = field(default_factory=dict)

    @property
    def renamed(self) -> dict[str, dict[str, str]]:
        """Per source file (``"train"``, ``"test"``), the columns renamed on load (original -> new)."""
        return {k: dict(v.renamed) for k, v in self.sources.items() if v.renamed}

    def to_dict(self) -> dict:
        out = {"split": self.split, "rows": {"train": self.train.height, "test": self.test.height},
               "sources": {k: v.to_dict() for k, v in self.sources.items()}, "notes": list(self.notes)}
        if self.dropped_target:
            out["dropped_target_rows"] = dict(self.dropped_target)
        if self.renamed:
            out["renamed"] = self.renamed
        if self.date_columns:
            out["date_columns"] = list(self.date_columns)
        if self.derived:
            out["derived"] = [dict(d) for d in self.derived]
        if self.time_split:
            out["time_split"] = dict(self.time_split)
        return out


def _normalise_columns(df: pl.DataFrame, path: Path) -> tuple[pl.DataFrame, dict[str, str]]:
    mapping: dict[str, str] = {}
    seen: dict[str, str] = {}
    for col in df.columns:
        new = normalize_column_name(col)
        if new in seen:
            raise DataError(
                f"columns '{seen[new]}' and '{col}' both become '{new}' in snake_case",
                file=path, column=col, hint="rename one of them so the names differ after lower-casing",
            )
        seen[new] = col
        if new != col:
            mapping[col] = new
    return (df.rename(mapping) if mapping else df), mapping


def _clean_text(df: pl.DataFrame, na_values: Sequence[str], *, infer_numeric: bool) -> pl.DataFrame:
    """Strip text, map missing tokens to null, and (for CSV) turn all-numeric text columns into numbers."""
    na = list(na_values)
    exprs = []
    for name, dtype in df.schema.items():
        if dtype in (pl.Categorical,) or isinstance(dtype, pl.Enum):
            dtype = pl.String
            col = pl.col(name).cast(pl.String)
        elif dtype == pl.Boolean:
            exprs.append(pl.col(name).cast(pl.String).str.to_lowercase().alias(name))
            continue
        else:
            col = pl.col(name)
        if dtype == pl.String:
            stripped = col.str.strip_chars()
            exprs.append(pl.when(stripped.is_in(na)).then(None).otherwise(stripped).alias(name))
        elif dtype.is_float():
            exprs.append(pl.when(col.is_nan()).then(None).otherwise(col).alias(name))
        else:
            exprs.append(col)
    out = df.select(exprs)
    if infer_numeric:
        casts = []
        for name, dtype in out.schema.items():
            if dtype != pl.String:
                continue
            s = out.get_column(name)
            non_null = s.len() - s.null_count()
            if non_null == 0:
                continue
            as_int = s.cast(pl.Int64, strict=False)
            if as_int.null_count() == s.null_count():
                casts.append(pl.col(name).cast(pl.Int64, strict=False))
                continue
            as_float = s.cast(pl.Float64, strict=False)
            if as_float.null_count() == s.null_count():
                casts.append(pl.col(name).cast(pl.Float64, strict=False))
        if casts:
            out = out.with_columns(casts)
    return out


_SNIFF_BYTES = 1 << 16


def _sample_lines(p: Path, suffix: str) -> list[str]:
    """The first lines of a text file (up to about 64 KB; the last, possibly cut, line dropped)."""
    opener = gzip.open if suffix.endswith(".gz") else open
    with opener(p, "rb") as fh:
        raw = fh.read(_SNIFF_BYTES + 1)
    text = raw[:_SNIFF_BYTES].decode("utf-8", errors="replace").removeprefix("\ufeff")
    lines = text.splitlines()
    if len(raw) > _SNIFF_BYTES and len(lines) > 1:
        lines = lines[:-1]
    return [line for line in lines if line.strip()]


def _field_counts(lines: list[str], sep: str) -> list[int]:
    """Fields per record of the sample with this separator, honouring double-quoted fields."""
    try:
        return [len(r) for r in csv.reader(lines, delimiter=sep, quotechar='"', strict=False) if r]
    except csv.Error:
        return []


def sniff_separator(lines: list[str]) -> dict[str, dict]:
    """Per candidate separator (comma, semicolon, tab, pipe): fields per record in the sample.

    Returns ``{sep: {"min", "max", "consistent"}}``; ``consistent`` means every sampled record has the same
    number of fields and more than one. :class:`csv.Sniffer`'s guess on the sample, when it makes one, is under
    the key ``"sniffer"``.
    """
    out: dict[str, dict] = {}
    for sep in _SEPARATORS:
        counts = _field_counts(lines, sep)
        if counts:
            out[sep] = {"min": min(counts), "max": max(counts),
                        "consistent": min(counts) == max(counts) > 1}
    with contextlib.suppress(csv.Error):
        out["sniffer"] = {"separator": csv.Sniffer().sniff("\n".join(lines[:200]), delimiters="".join(_SEPARATORS)
                                                           ).delimiter}
    return out


def _describe_candidates(cands: dict[str, dict]) -> str:
    parts = []
    for sep, c in cands.items():
        if sep == "sniffer":
            continue
        fields = f"{c['min']} fields" if c["min"] == c["max"] else f"{c['min']} to {c['max']} fields"
        parts.append(f"{_SEPARATORS[sep]} {sep!r}: {fields} per line" + (" (consistent)" if c["consistent"] else ""))
    return "; ".join(parts)


def _check_separator(p: Path, suffix: str, sep: str) -> None:
    """Refuse a file whose sample is consistent with another separator but not with ``sep``, naming both."""
    if suffix.endswith(".zst"):
        return
    lines = _sample_lines(p, suffix)
    if len(lines) < 2:
        return
    cands = sniff_separator(lines)
    mine = cands.get(sep)
    if mine is not None and mine["consistent"]:
        return
    others = [c for c, v in cands.items() if c not in (sep, "sniffer") and v["consistent"]]
    if not others:
        return  # no better reading: polars reports what is wrong
    guess = cands.get("sniffer", {}).get("separator")
    best = guess if guess in others else max(others, key=lambda c: cands[c]["max"])
    word = _SEPARATORS[best]
    what = ("read as a single column" if mine is None or mine["max"] <= 1 else
            f"with {_SEPARATORS.get(sep, repr(sep))}s the lines have {mine['min']} to {mine['max']} fields")
    raise DataError(
        f"{what}, but the file looks {word}-separated "
        f"(not {_SEPARATORS.get(sep, repr(sep))}-separated); candidates on the first {len(lines)} lines: "
        f"{_describe_candidates(cands)}",
        file=p, hint=f"set data.separator: {best!r} in the brief",
    )


_MAX_HEADER_BYTES = 16 << 20
"""A header row longer than this is refused (read with a bounded ``readline``, never the whole file)."""


def _preflight_columns(p: Path, brief: Brief) -> None:
    """Refuse a file that lacks a column the brief names from its header (CSV) or schema (Parquet) alone, before
    the whole file is read: a 2 GB file with a misspelt target is refused in bounded memory."""
    if not p.is_file():
        return  # read_table says so
    suffix = "".join(p.suffixes[-2:]).lower() if p.suffix.lower() in (".gz", ".zst") else p.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            names = list(pl.read_parquet_schema(p))
        elif suffix in (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz"):
            sep = "\t" if suffix.startswith(".tsv") else brief.data.separator
            names = _header(p, suffix, sep)
        else:
            return
    except DataError:
        raise
    except Exception:  # noqa: BLE001 - anything unreadable is read_table's to explain
        return
    columns = [normalize_column_name(n) for n in names]
    if brief.target.column not in columns and len(columns) > 1:
        raise DataError(
            f"the target column '{brief.target.column}' (brief key target.column) is not in the data."
            f"{suggest(brief.target.column, columns)}", file=p, column=brief.target.column,
            hint=f"name one of the file's columns in target.column: {', '.join(columns[:30])}"
                 + (f", ... ({len(columns) - 30} more)" if len(columns) > 30 else ""))


def _header(p: Path, suffix: str, sep: str) -> list[str]:
    """The header row, read whole (the sniffing sample may cut a very wide header mid-name)."""
    opener = gzip.open if suffix.endswith(".gz") else open
    with opener(p, "rb") as fh:
        raw = fh.readline(_MAX_HEADER_BYTES + 1)
    if len(raw) > _MAX_HEADER_BYTES:
        raise DataError(f"the header row is longer than {_MAX_HEADER_BYTES >> 20} MB", file=p,
                        hint="check the file is a CSV with a header row and line breaks")
    line = raw.decode("utf-8", errors="replace").removeprefix("\ufeff").rstrip("\r\n")
    if not line.strip():
        return []
    return next(csv.reader([line], delimiter=sep, quotechar='"'), [])


def _dedupe_header(header: list[str], p: Path, allow: bool) -> tuple[list[str] | None, dict[str, str]]:
    """New names for duplicate headers (``name_2``, ``name_3``...) when allowed, else a DataError naming both
    positions. Returns (the new header or None when there are no duplicates, original-at-position -> new)."""
    first: dict[str, int] = {}
    dupes: list[tuple[int, str]] = []
    for i, name in enumerate(header):
        key = name.strip()
        if key in first:
            dupes.append((i, key))
        else:
            first[key] = i
    if not dupes:
        return None, {}
    if not allow:
        i, name = dupes[0]
        more = f" (and {len(dupes) - 1} more duplicate headers)" if len(dupes) > 1 else ""
        raise DataError(
            f"columns {first[name] + 1} and {i + 1} are both named {name!r}{more}",
            file=p, column=name,
            hint="rename one of them in the file, or set data.allow_duplicate_headers: true in the brief to "
                 f"rename the later one to {name}_2 (recorded in the manifest)",
        )
    taken = {h.strip() for h in header}
    new = [h.strip() for h in header]
    mapping: dict[str, str] = {}
    for i, name in dupes:
        k = 2
        while f"{name}_{k}" in taken:
            k += 1
        new[i] = f"{name}_{k}"
        taken.add(new[i])
        mapping[f"{name} (column {i + 1})"] = new[i]
    return new, mapping


def read_table(path: str | Path, *, separator: str = ",", na_values: Sequence[str] = DEFAULT_NA,
               allow_duplicate_headers: bool = False) -> tuple[pl.DataFrame, dict[str, str]]:
    """Read a CSV/TSV or Parquet file into a clean polars frame.

    Returns the frame and the mapping of renamed columns (original name -> new name; a duplicate header is
    keyed ``"<name> (column <position>)"``).

    Raises
    ------
    DataError
        The file is missing, empty, has no rows, is in an unsupported format, looks like it uses another
        separator (the message lists each candidate's field counts), has duplicate headers (unless allowed) or
        has columns that collide in snake_case.
    """
    p = Path(path)
    if not p.exists():
        raise DataError("file not found", file=p,
                        hint="check the path in the brief's data section "
                             "(relative paths are resolved from the brief's folder)")
    if p.is_dir():
        raise DataError("is a folder, not a data file", file=p,
                        hint="point the brief at a .csv or .parquet file")
    if p.stat().st_size == 0:
        raise DataError("file is empty (0 bytes)", file=p,
                        hint="re-export the data; the file has no header and no rows")
    suffix = "".join(p.suffixes[-2:]).lower() if p.suffix.lower() in (".gz", ".zst") else p.suffix.lower()
    dup_renamed: dict[str, str] = {}
    sep = separator
    try:
        if suffix in (".parquet", ".pq"):
            df = pl.read_parquet(p)
            infer = False
        elif suffix in (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz"):
            sep = "\t" if suffix.startswith(".tsv") else separator
            _check_separator(p, suffix, sep)
            new_header, dup_renamed = _dedupe_header(_header(p, suffix, sep), p, allow_duplicate_headers)
            df = pl.read_csv(p, separator=sep, infer_schema=False, truncate_ragged_lines=False,
                             new_columns=new_header)
            infer = True
            if df.width == 1:
                header = df.columns[0]
                for cand, word in _SEPARATORS.items():
                    if cand != sep and cand in header:
                        raise DataError(
                            f"read as a single column '{header[:60]}', but the header contains {word}s: "
                            f"the file looks {word}-separated, "
                            f"not {_SEPARATORS.get(sep, repr(sep))}-separated",
                            file=p, hint=f"set data.separator: {cand!r} in the brief",
                        )
        else:
            raise DataError(f"unsupported file type '{p.suffix}'", file=p,
                            hint="use CSV (.csv, .tsv) or Parquet (.parquet)")
    except DataError:
        raise
    except (pl.exceptions.ComputeError, pl.exceptions.NoDataError, pl.exceptions.ShapeError, OSError,
            pl.exceptions.DuplicateError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        cands = ""
        if suffix.endswith((".csv", ".tsv", ".txt", ".gz")):
            try:
                found = sniff_separator(_sample_lines(p, suffix))
                cands = f"; separators tried on a sample: {_describe_candidates(found)}" if found else ""
            except OSError:
                cands = ""
        raise DataError(f"could not be read: {first}{cands}", file=p,
                        hint="check the format, separator and that every row has the same number of fields"
                        ) from None
    if df.width == 0:
        raise DataError("has no columns", file=p, hint="the file needs a header row")
    if df.height == 0:
        raise DataError("has a header but no rows", file=p, hint="export the data rows too")
    df, renamed = _normalise_columns(df, p)
    df = _clean_text(df, na_values, infer_numeric=infer)
    df, _ = parse_dates(df)  # ISO text in CSV or Parquet; native Date/Datetime columns are dates already
    final = {orig: renamed.get(new, new) for orig, new in dup_renamed.items()}
    final.update({k: v for k, v in renamed.items() if k not in set(dup_renamed.values())})
    return df, final


def target_vector(df: pl.DataFrame, brief: Brief) -> np.ndarray:
    """1 where the target equals the brief's positive label, else 0 (as int8): the binary task's encoding.

    Null targets are 0; drop them first.
    """
    return get_task("binary_classification").encode_target(df.get_column(brief.target.column), brief=brief)


def _check_target(df: pl.DataFrame, brief: Brief, path: Path) -> None:
    """The target column exists and holds values; then the task checks them (classes, numbers, labels)."""
    t = brief.target.column
    if t not in df.columns:
        raise DataError(
            f"the target column '{t}' (brief key target.column) is not in the data.{suggest(t, df.columns)}",
            file=path, column=t,
            hint=f"name one of the file's columns in target.column: {', '.join(df.columns)}",
        )
    col = df.get_column(t)
    if col.null_count() == col.len():
        raise DataError("the target column has no values (all null)", file=path, column=t,
                        hint="check the file or choose another target column")
    get_task(brief.task).check_target(col, brief=brief, path=path)


def _drop_missing_target(df: pl.DataFrame, brief: Brief) -> tuple[pl.DataFrame, int]:
    """Rows whose target is missing, removed (the regression task never imputes a target)."""
    t = brief.target.column
    missing = df.get_column(t).null_count()
    return (df.filter(pl.col(t).is_not_null()) if missing else df), missing


def _check_explicit_columns(df: pl.DataFrame, brief: Brief, path: Path) -> None:
    """A column the brief names explicitly (include / sensitive) must hold some values."""
    for key, col in brief.referenced_columns().items():
        if key.startswith("features.exclude") or key == "target.column":
            continue
        s = df.get_column(col)
        if s.null_count() == s.len():
            raise DataError(
                f"every value is missing, but the brief names it in {key.split('[')[0]}",
                file=path, column=col, hint="remove it from the brief or fix the data",
            )


def _align_test(train: pl.DataFrame, test: pl.DataFrame, path: Path) -> tuple[pl.DataFrame, list[str]]:
    notes = []
    missing = [c for c in train.columns if c not in test.columns]
    if missing:
        raise DataError(
            f"the test file lacks columns the train file has: {', '.join(missing)}",
            file=path, column=missing[0], hint="use a test file with the same columns as the train file",
        )
    extra = [c for c in test.columns if c not in train.columns]
    if extra:
        notes.append(f"test columns not in train were dropped: {', '.join(extra)}")
    casts = []
    for name, dtype in train.schema.items():
        tdt = test.schema[name]
        if tdt == dtype:
            continue
        if train.get_column(name).null_count() == train.height:
            casts.append(pl.col(name).cast(dtype, strict=False))
            continue
        converted = test.get_column(name).cast(dtype, strict=False)
        if converted.null_count() > test.get_column(name).null_count():
            raise DataError(
                f"has type {tdt} in the test file but {dtype} in the train file, "
                "and some values do not convert",
                file=path, column=name, hint="make the column's type the same in both files",
            )
        casts.append(pl.col(name).cast(dtype, strict=False))
    test = test.select(train.columns)
    if casts:
        test = test.with_columns(casts)
    return test, notes


def _random_split(df: pl.DataFrame, strata: np.ndarray, *, test_size: float,
                  seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The same share of every stratum (class, or quantile bin of a numeric target) goes to the test split."""
    rng = np.random.default_rng(seed)
    is_test = np.zeros(df.height, dtype=bool)
    for cls in np.unique(strata):  # binary: 0 then 1, as before the tasks existed (same seeded draws)
        idx = np.flatnonzero(strata == cls)
        n = round(len(idx) * test_size)
        is_test[rng.choice(idx, size=n, replace=False)] = True
    mask = pl.Series("m", is_test)
    return df.filter(~mask), df.filter(mask)


def _add_derived(df: pl.DataFrame, specs: list[dict], path: Path) -> pl.DataFrame:
    """The brief's derived date features added to one file's frame (after checking their sources are dates)."""
    for s in specs:
        sources = s["days_between"] if "days_between" in s else [s["column"]]
        for c in sources:
            dtype = df.schema[c]
            if not is_date_dtype(dtype):
                example = df.get_column(c).drop_nulls().head(3).to_list()
                raise DataError(
                    f"features.derive uses '{c}' as a date, but it is {dtype} (e.g. {example})",
                    file=path, column=c,
                    hint="derive features only from columns of ISO dates (2013-08-14) or datetimes "
                         "(2013-08-14 10:30:00), every value of which parses",
                )
        if s["name"] in df.columns:
            raise DataError(f"the derived feature '{s['name']}' has the name of a column of the file",
                            file=path, column=s["name"], hint="give the derived feature another name")
    return derive_columns(df, specs)


def _time_split(df: pl.DataFrame, column: str, *, test_size: float, path: Path
                ) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """The latest ``test_size`` of the rows by ``column`` as the test split (ties kept in file order; rows
    without a date stay in train)."""
    dtype = df.schema[column]
    if not (is_date_dtype(dtype) or dtype.is_numeric()):
        raise DataError(f"data.split: time orders by '{column}', but it is {dtype}, not a date",
                        file=path, column=column,
                        hint="name a date column (ISO dates such as 2013-08-14) in data.split_column")
    idx = "__wb_row__"
    dated = df.with_row_index(idx).filter(pl.col(column).is_not_null()).sort([column, idx])
    n_test = round(dated.height * test_size)
    if n_test == 0 or n_test >= dated.height:
        raise DataError(f"a time split of {dated.height} dated rows at test_size {test_size:g} leaves a split empty",
                        file=path, column=column, hint="use more rows or another test_size")
    test_idx = dated.get_column(idx).tail(n_test)
    is_test = pl.Series("m", np.isin(np.arange(df.height), test_idx.to_numpy()))
    train, test = df.filter(~is_test), df.filter(is_test)
    def _iso(v: object) -> str:
        return v.isoformat() if hasattr(v, "isoformat") else str(v)
    info = {"column": column, "test_size": test_size,
            "train_from": _iso(train.get_column(column).min()), "train_to": _iso(train.get_column(column).max()),
            "test_from": _iso(test.get_column(column).min()), "test_to": _iso(test.get_column(column).max()),
            "undated_rows_in_train": df.height - dated.height}
    return train, test, info


def load_dataset(brief: Brief, *, sample_rows: int = 0, seed: int = 0) -> Dataset:
    """Load the brief's data and check it against the brief.

    Parameters
    ----------
    brief:
        The validated problem brief.
    sample_rows:
        When positive, keep at most this many rows of each split (a seeded random sample), for quick runs.
    seed:
        Seed of the sample and, when the brief names no test file, of the stratified train/test split.
    """
    task = get_task(brief.task)
    t = brief.target.column
    train_path = brief.train_path
    allow = brief.data.allow_duplicate_headers
    _preflight_columns(train_path, brief)
    train, renamed = read_table(train_path, separator=brief.data.separator, na_values=brief.data.na_values,
                                allow_duplicate_headers=allow)
    _check_target(train, brief, train_path)
    brief.check_columns(train.columns, data_file=train_path)
    _check_explicit_columns(train, brief, train_path)
    sources = {"train": Source(str(train_path), sha256_file(train_path), train.height, train.width, renamed)}
    notes: list[str] = []
    dups = {k: v for k, v in renamed.items() if k.endswith(")") and " (column " in k}
    if dups:
        notes.append("duplicate headers renamed (data.allow_duplicate_headers): "
                     + ", ".join(f"{k} -> {v}" for k, v in dups.items()))
    specs = derived_specs(brief.features.derive)
    dropped: dict[str, int] = {}
    if not task.is_classifier:
        train, dropped["train"] = _drop_missing_target(train, brief)
    train = _add_derived(train, specs, train_path)
    time_info: dict = {}
    if brief.test_path is not None:
        test_path = brief.test_path
        test, t_renamed = read_table(test_path, separator=brief.data.separator,
                                     na_values=brief.data.na_values, allow_duplicate_headers=allow)
        if t not in test.columns:
            raise DataError(f"the target column '{t}' is not in the test file",
                            file=test_path, column=t,
                            hint="the test file needs the target to evaluate on")
        test = _add_derived(test, specs, test_path) if all(
            c in test.columns for s in specs for c in (s.get("days_between") or [s.get("column")])) else test
        test, extra_notes = _align_test(train, test, test_path)
        notes += extra_notes
        if task.is_classifier:
            train_values = set(train.get_column(t).drop_nulls().cast(pl.String).unique().to_list())
            test_values = set(test.get_column(t).drop_nulls().cast(pl.String).unique().to_list())
            if test_values - train_values:
                raise DataError(
                    f"target values {sorted(test_values - train_values)} appear in the test file but not in "
                    f"the train file ({sorted(train_values)})", file=test_path, column=t,
                    hint="use the same label spelling in both files (e.g. '>50K' vs '>50K.')",
                )
        else:
            test, dropped["test"] = _drop_missing_target(test, brief)
        sources["test"] = Source(str(test_path), sha256_file(test_path), test.height, test.width, t_renamed)
        split = "file"
        if brief.data.split == "time":
            notes.append("data.split: time is not used: the brief names a test file")
    elif brief.data.split == "time":
        labelled = train.filter(pl.col(t).is_not_null())
        col = brief.data.split_column
        train, test, time_info = _time_split(labelled, col, test_size=brief.data.test_size, path=train_path)
        notes.append(f"no test file: time split on {col}: the latest {brief.data.test_size:.0%} of rows "
                     f"({time_info['test_from']} to {time_info['test_to']}) are the test split, train "
                     f"{time_info['train_from']} to {time_info['train_to']}"
                     + (f" ({time_info['undated_rows_in_train']} rows without a date kept in train)"
                        if time_info["undated_rows_in_train"] else ""))
        split = "time"
    else:
        labelled = train.filter(pl.col(t).is_not_null())
        strata = task.stratify_labels(task.encode_target(labelled.get_column(t), brief=brief))
        train, test = _random_split(labelled, strata, test_size=brief.data.test_size, seed=seed)
        on = "the target" if task.is_classifier else "quantile bins of the target"
        notes.append(f"no test file: split train {1 - brief.data.test_size:.0%}/{brief.data.test_size:.0%} "
                     f"stratified on {on} with seed {seed}")
        split = "random"
    dropped = {k: v for k, v in dropped.items() if v}
    for where, n in dropped.items():
        notes.append(f"{n} {where} rows without a target value were dropped (a {task.describe()} target is "
                     "never imputed)")
    date_columns = [c for c, d in train.schema.items() if is_date_dtype(d)]
    if date_columns:
        notes.append(f"date columns (never raw features): {', '.join(date_columns)}")
    if specs:
        notes.append("derived date features added: " + ", ".join(
            f"{s['name']} ({s['part']} of {s['column']})" if "part" in s
            else f"{s['name']} ({s['days_between'][1]} - {s['days_between'][0]}, days)" for s in specs))
    if sample_rows and sample_rows > 0:
        if train.height > sample_rows:
            train = train.sample(n=sample_rows, seed=seed, shuffle=True)
        if test.height > sample_rows:
            test = test.sample(n=sample_rows, seed=seed + 1, shuffle=True)
        notes.append(f"sampled at most {sample_rows} rows per split (seed {seed})")
    return Dataset(train=train, test=test, sources=sources, split=split, notes=notes, dropped_target=dropped,
                   derived=specs, date_columns=date_columns, time_split=time_info)
