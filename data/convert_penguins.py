"""Convert palmerpenguins' penguins.csv, as published, into the Parquet copy bundled under data/.

Run once by a maintainer (``python data/convert_penguins.py /path/to/datasets/penguins``); the project never
reads the original at run time. The conversion changes the storage format and nothing else:

* the four measurements are numbers (``bill_length_mm``, ``bill_depth_mm`` Float64; ``flipper_length_mm``,
  ``body_mass_g`` Int64) and ``year`` Int64. A typed Parquet column cannot hold the text "NA", so the two rows
  without measurements hold nulls there (the only place a token becomes null);
* the text columns (``species``, ``island``, ``sex``) are kept verbatim, so ``sex`` still holds the published
  token ``"NA"`` on 11 rows. The product must meet it: the loader's ``data.na_values`` (which include "NA")
  turn it into a missing value, and the audit and fairness slices report it as the group "(missing)";
* no row is dropped and nothing is renamed, recoded or imputed.

One file, no split: the brief's ``data.test_size`` split is done by ``load_dataset``, seeded and stratified by
species. It prints the sha256 of the original and the converted file for data/README.md; re-running it
reproduces the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from convert_common import detail, nulls, source_dir, write

NUMBERS = {"bill_length_mm": pl.Float64, "bill_depth_mm": pl.Float64, "flipper_length_mm": pl.Int64,
           "body_mass_g": pl.Int64, "year": pl.Int64}
COLUMNS = ["species", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex",
           "year"]


def convert(src: Path) -> pl.DataFrame:
    raw = pl.read_csv(src, infer_schema=False, null_values=None)  # every field as text, "NA" kept
    if raw.columns != COLUMNS:
        raise SystemExit(f"{src}: columns {raw.columns}, expected {COLUMNS}")
    casts = []
    for name, dtype in NUMBERS.items():
        col = pl.col(name)
        casts.append(pl.when(col == "NA").then(None).otherwise(col).cast(dtype, strict=True).alias(name))
    return raw.with_columns(casts)


def main(src_dir: str) -> None:
    src = Path(src_dir) / "penguins.csv"
    df = convert(src)
    write(df, src, "penguins.parquet")
    detail("species", dict(df["species"].value_counts().sort("species").iter_rows()))
    detail("nulls", nulls(df))
    detail("sex 'NA' tokens", (df["sex"] == "NA").sum())


if __name__ == "__main__":
    main(source_dir("../shared/datasets/penguins"))
