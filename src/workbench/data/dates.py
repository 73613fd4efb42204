"""Dates in tabular data, the polars side: recognising date columns, and the derived features as expressions.

:func:`parse_dates` turns text columns whose every value is an ISO date (``2013-08-14``) or datetime
(``2013-08-14 10:30:00``, ``2013-08-14T10:30:00``) into ``Date`` / ``Datetime`` columns when a CSV is read.
:func:`derive_columns` adds the brief's ``features.derive`` columns (numeric, ``Float64``) with exactly the
semantics of :func:`workbench.data.derive.derive_record`, the one-record definition the service uses: parts of a
date (year, month, day, day_of_week with Monday 0, day_of_year, quarter) and the days between two dates
(``end - start``, fractional for datetimes); a missing date gives a missing value. Tests check both agree.
"""

from __future__ import annotations

import polars as pl

from ..errors import DataError
from .derive import PARTS

__all__ = ["DATE_FORMATS", "DATETIME_FORMATS", "as_datetime", "derive_columns", "is_date_dtype", "parse_dates"]

DATE_FORMATS = ("%Y-%m-%d",)
DATETIME_FORMATS = ("%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M:%S",
                    "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M")
_ISO_START = r"^\d{4}-\d{2}-\d{2}"


def is_date_dtype(dtype: pl.DataType) -> bool:
    """Date or Datetime (a Time or Duration is not a calendar date)."""
    return dtype == pl.Date or isinstance(dtype, pl.Datetime)


def _parse_text(col: pl.Expr, dtype: type[pl.DataType], formats: tuple[str, ...]) -> pl.Expr:
    text = col.str.strip_chars().str.replace(r"Z$", "")
    return pl.coalesce([text.str.strptime(dtype, f, strict=False) for f in formats])


def parse_dates(df: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Text columns whose every non-null value is an ISO date (or datetime), cast to Date (or Datetime).

    Returns the frame and the names of the columns converted. A column with one value that does not parse
    stays text (the contract then reports it as it would any text column).
    """
    casts, names = [], []
    for name, dtype in df.schema.items():
        if dtype != pl.String:
            continue
        s = df.get_column(name)
        non_null = s.drop_nulls()
        if non_null.len() == 0 or not non_null.head(50).str.contains(_ISO_START).all():
            continue
        if not non_null.str.contains(_ISO_START).all():
            continue
        frame = non_null.to_frame()
        as_date = frame.select(_parse_text(pl.col(name), pl.Date, DATE_FORMATS)).to_series()
        # "2013-08-14" parses as a date; "2013-08-14 10:30" only as a datetime (a date format ignores no text)
        if as_date.null_count() == 0 and not non_null.str.contains(r"\d[ T]\d").any():
            casts.append(_parse_text(pl.col(name), pl.Date, DATE_FORMATS).alias(name))
            names.append(name)
            continue
        fmts = DATETIME_FORMATS + DATE_FORMATS
        as_dt = frame.select(_parse_text(pl.col(name), pl.Datetime("us"), fmts)).to_series()
        if as_dt.null_count() == 0:
            casts.append(_parse_text(pl.col(name), pl.Datetime("us"), fmts).alias(name))
            names.append(name)
    return (df.with_columns(casts) if casts else df), names


def as_datetime(df: pl.DataFrame, name: str) -> pl.Expr:
    """The column as a naive ``Datetime("us")`` expression (text is parsed; unparseable text is null)."""
    dtype = df.schema[name]
    col = pl.col(name)
    if dtype == pl.Date:
        return col.cast(pl.Datetime("us"))
    if isinstance(dtype, pl.Datetime):
        col = col.dt.replace_time_zone(None) if dtype.time_zone else col
        return col.cast(pl.Datetime("us"))
    if dtype == pl.String:
        return _parse_text(col, pl.Datetime("us"), DATETIME_FORMATS + DATE_FORMATS)
    raise DataError(f"is of type {dtype}, not a date", column=name,
                    hint="derive date features only from columns of ISO dates (2013-08-14) or datetimes")


def _part(x: pl.Expr, part: str) -> pl.Expr:
    if part == "year":
        return x.dt.year()
    if part == "month":
        return x.dt.month()
    if part == "day":
        return x.dt.day()
    if part == "day_of_week":
        return x.dt.weekday() - 1  # polars: Monday 1; derive_record: Monday 0 (datetime.weekday)
    if part == "day_of_year":
        return x.dt.ordinal_day()
    if part == "quarter":
        return x.dt.quarter()
    raise ValueError(f"unknown date part {part!r}; choose one of: {', '.join(PARTS)}")


def derive_columns(df: pl.DataFrame, specs: list[dict]) -> pl.DataFrame:
    """``df`` with one Float64 column per derived spec (see :func:`workbench.data.derive.derived_specs`)."""
    if not specs:
        return df
    exprs = []
    for s in specs:
        if "days_between" in s:
            a, b = s["days_between"]
            delta = as_datetime(df, b) - as_datetime(df, a)
            exprs.append((delta.dt.total_microseconds().cast(pl.Float64) / 86_400e6).alias(s["name"]))
        else:
            exprs.append(_part(as_datetime(df, s["column"]), s["part"]).cast(pl.Float64).alias(s["name"]))
    return df.with_columns(exprs)
