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

from pathlib import Path

import polars as pl
from convert_common import detail, nulls, source_dir, write

COLUMNS = [
    "age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
    "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country",
    "income",
]
INTEGER_COLUMNS = ["age", "fnlwgt", "education_num", "capital_gain", "capital_loss", "hours_per_week"]


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
    for name, target, skip in [("adult.data", "adult_train.parquet", 0), ("adult.test", "adult_test.parquet", 1)]:
        df = convert(src / name, skip_rows=skip)
        write(df, src / name, target)
        detail("labels", dict(df["income"].value_counts().iter_rows()))
        detail("nulls", nulls(df))


if __name__ == "__main__":
    main(source_dir("../shared/datasets/adult"))
