"""Reading tabular data (CSV or Parquet) into polars, with the clean-up every messy file needs.

:func:`read_table` reads one file: column names become snake_case, text is stripped, the brief's
missing-value tokens become null, and CSV columns whose every value is a number become numeric.
:func:`load_dataset` reads the brief's train (and test) files, checks them against the brief, and returns a
:class:`Dataset` that records the sha256 of every source so a run can be reproduced.
"""

from __future__ import annotations

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

__all__ = ["Dataset", "Source", "read_table", "load_dataset", "sha256_file", "target_vector"]

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

    ``split`` is ``"file"`` when the brief names a test file and ``"random"`` when the train file was split.
    ``dropped_target`` counts, per file (``"train"``, ``"test"``), the rows dropped because their target is
    missing where the task never imputes it (regression); the audit reports it.
    """

    train: pl.DataFrame
    test: pl.DataFrame
    sources: dict[str, Source]
    split: str
    notes: list[str] = field(default_factory=list)
    dropped_target: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        out = {"split": self.split, "rows": {"train": self.train.height, "test": self.test.height},
               "sources": {k: v.to_dict() for k, v in self.sources.items()}, "notes": list(self.notes)}
        if self.dropped_target:
            out["dropped_target_rows"] = dict(self.dropped_target)
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


def read_table(path: str | Path, *, separator: str = ",", na_values: Sequence[str] = DEFAULT_NA,
               ) -> tuple[pl.DataFrame, dict[str, str]]:
    """Read a CSV/TSV or Parquet file into a clean polars frame.

    Returns the frame and the mapping of renamed columns (original name -> snake_case name).

    Raises
    ------
    DataError
        The file is missing, empty, has no rows, is in an unsupported format, looks like it uses another
        separator, or has columns that collide in snake_case.
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
    try:
        if suffix in (".parquet", ".pq"):
            df = pl.read_parquet(p)
            infer = False
        elif suffix in (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz"):
            sep = "\t" if suffix.startswith(".tsv") else separator
            df = pl.read_csv(p, separator=sep, infer_schema=False, truncate_ragged_lines=False)
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
        raise DataError(f"could not be read: {first}", file=p,
                        hint="check the format, separator and that every row has the same number of fields"
                        ) from None
    if df.width == 0:
        raise DataError("has no columns", file=p, hint="the file needs a header row")
    if df.height == 0:
        raise DataError("has a header but no rows", file=p, hint="export the data rows too")
    df, renamed = _normalise_columns(df, p)
    df = _clean_text(df, na_values, infer_numeric=infer)
    return df, renamed


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
    train, renamed = read_table(train_path, separator=brief.data.separator, na_values=brief.data.na_values)
    _check_target(train, brief, train_path)
    brief.check_columns(train.columns, data_file=train_path)
    _check_explicit_columns(train, brief, train_path)
    sources = {"train": Source(str(train_path), sha256_file(train_path), train.height, train.width, renamed)}
    notes: list[str] = []
    dropped: dict[str, int] = {}
    if not task.is_classifier:
        train, dropped["train"] = _drop_missing_target(train, brief)
    if brief.test_path is not None:
        test_path = brief.test_path
        test, t_renamed = read_table(test_path, separator=brief.data.separator,
                                     na_values=brief.data.na_values)
        if t not in test.columns:
            raise DataError(f"the target column '{t}' is not in the test file",
                            file=test_path, column=t,
                            hint="the test file needs the target to evaluate on")
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
    if sample_rows and sample_rows > 0:
        if train.height > sample_rows:
            train = train.sample(n=sample_rows, seed=seed, shuffle=True)
        if test.height > sample_rows:
            test = test.sample(n=sample_rows, seed=seed + 1, shuffle=True)
        notes.append(f"sampled at most {sample_rows} rows per split (seed {seed})")
    return Dataset(train=train, test=test, sources=sources, split=split, notes=notes, dropped_target=dropped)
