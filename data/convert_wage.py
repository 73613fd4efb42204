"""Convert ISLP's Wage.csv, as published, into the Parquet copy bundled under data/.

Run once by a maintainer (``python data/convert_wage.py /path/to/datasets/wage``); the project never reads
the original at run time. The conversion changes the storage format and nothing else:

* every field is parsed with an explicit type: ``year`` and ``age`` Int64, ``logwage`` and ``wage`` Float64
  (the shortest-repr decimals of the file round-trip exactly), the seven text columns String;
* no row or column is dropped, renamed, recoded or cleaned. The traps stay in on purpose, for the product to
  meet: ``logwage`` is log(wage) (a perfect leak the audit must flag), ``region`` has one value (a constant
  column), and the categories keep their ordinal prefixes ("1. < HS Grad" ... "5. Advanced Degree").

One file, no split: the brief's ``data.test_size`` split is done by ``load_dataset``, seeded and stratified on
quantile bins of the target. It prints the sha256 of the original and the converted file for data/README.md;
re-running it reproduces the same bytes.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl
from convert_common import detail, source_dir, write

SCHEMA = {
    "year": pl.Int64, "age": pl.Int64, "maritl": pl.String, "race": pl.String, "education": pl.String,
    "region": pl.String, "jobclass": pl.String, "health": pl.String, "health_ins": pl.String,
    "logwage": pl.Float64, "wage": pl.Float64,
}


def convert(src: Path) -> pl.DataFrame:
    df = pl.read_csv(src, schema=SCHEMA, separator=",", null_values=None)
    if df.null_count().row(0) != (0,) * df.width:
        raise SystemExit(f"{src}: unexpected missing values; the published file has none")
    return df


def main(src_dir: str) -> None:
    src = Path(src_dir) / "Wage.csv"
    df = convert(src)
    write(df, src, "wage.parquet")
    detail("wage", f"mean {df['wage'].mean():.3f}, std {df['wage'].std():.3f}, min {df['wage'].min():.3f}, "
                   f"max {df['wage'].max():.3f}")


if __name__ == "__main__":
    main(source_dir("../shared/datasets/wage"))
