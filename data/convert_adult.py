"""Convert the UCI Adult files, as published, into the Parquet copies bundled under data/.

Run once by a maintainer (``python data/convert_adult.py /path/to/datasets/adult``); the project never
reads the originals at run time. The conversion:

* reads every field as text (the files separate values with ", " and polars has no "skip initial
  space"), strips the whitespace, then casts the numeric columns to Int64;
* maps the missing-value token "?" to null;
* drops the non-data first line of adult.test ("|1x3 Cross validator") and blank trailing lines;
* removes the trailing period of the test labels (">50K." -> ">50K") so both splits share one vocabulary;
* renames columns to snake_case (``education-num`` -> ``education_num``), the names ONNX inputs keep.

It prints the sha256 of every original and converted file for data/README.md.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import polars as pl

COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country",
    "income",
]
INTEGER_COLUMNS = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def convert(src: Path, *, skip_rows: int) -> pl.DataFrame:
    raw = pl.read_csv(
        src, has_header=False, new_columns=COLUMNS, skip_rows=skip_rows, infer_schema=False,
        separator=",", quote_char=None,
    )
    df = raw.select(pl.col(c).str.strip_chars() for c in COLUMNS)
    df = df.filter(pl.any_horizontal(pl.all().is_not_null() & (pl.all() != "")))
    df = df.with_columns(
        [pl.when(pl.col(c) == "?").then(None).otherwise(pl.col(c)).alias(c) for c in COLUMNS]
    )
    df = df.with_columns(
        [pl.col(c).cast(pl.Int64) for c in INTEGER_COLUMNS]
        + [pl.col("income").str.strip_suffix(".")]
    )
    return df


def main(src_dir: str) -> None:
    src = Path(src_dir)
    out = Path(__file__).resolve().parent
    for name, target, skip in [("adult.data", "adult_train.parquet", 0), ("adult.test", "adult_test.parquet", 1)]:
        df = convert(src / name, skip_rows=skip)
        dest = out / target
        tmp = dest.with_suffix(".parquet.tmp")
        df.write_parquet(tmp, compression="zstd", compression_level=10, statistics=True)
        tmp.replace(dest)
        print(f"{name}: sha256 {sha256(src / name)}")
        print(f"  -> {target}: {df.height} rows x {df.width} cols, sha256 {sha256(dest)}")
        print(f"     labels: {dict(df['income'].value_counts().iter_rows())}")
        print(f"     nulls: {dict((c, n) for c, n in zip(df.columns, df.null_count().row(0)) if n)}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "../shared/datasets/adult")
