"""What the data converters share (``convert_adult.py``, ``convert_penguins.py``, ``convert_wage.py``): the
Parquet settings that make a conversion reproduce the same bytes, the atomic write, and the provenance lines
(sha256 of the original and of the converted file, its shape and missing values) printed for data/README.md.

Not a converter itself: each ``convert_<name>.py`` imports it from this folder (a script's folder is first on
``sys.path``).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import polars as pl

DATA_DIR = Path(__file__).resolve().parent
"""Where the converted Parquet files are written (this folder)."""

PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 10, "statistics": True}
"""How every bundled file is written; re-running a converter with them reproduces the same sha256."""


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def source_dir(default: str) -> str:
    """The folder of the published originals: the script's first argument, else ``default``."""
    return sys.argv[1] if len(sys.argv) > 1 else default


def write(df: pl.DataFrame, src: Path, target: str) -> Path:
    """Write ``df`` as ``data/<target>`` (to a temporary file, then renamed: never half a file) and print the
    provenance of the conversion: the original's sha256, then the converted file's shape and sha256."""
    dest = DATA_DIR / target
    tmp = dest.with_suffix(".parquet.tmp")
    df.write_parquet(tmp, **PARQUET_OPTIONS)
    tmp.replace(dest)
    print(f"{src.name}: sha256 {sha256(src)}")
    print(f"  -> {target}: {df.height} rows x {df.width} cols, sha256 {sha256(dest)}")
    return dest


def detail(label: str, value: object) -> None:
    """One more line about the converted file, indented under its provenance."""
    print(f"     {label}: {value}")


def nulls(df: pl.DataFrame) -> dict[str, int]:
    """The missing values per column, for the columns that have any."""
    return {c: n for c, n in zip(df.columns, df.null_count().row(0), strict=True) if n}
