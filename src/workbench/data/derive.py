"""Features derived from dates: one definition, used by the data loader (polars) and the service (one record).

A derived feature is ``{"name", "part", "column"}`` (a part of one date: year, month, day, day_of_week (Monday
0), day_of_year, quarter) or ``{"name", "days_between": [start, end]}`` (``end - start`` in days, fractional for
datetimes). Dates are ISO text (``2013-08-14``, ``2013-08-14 10:30:00``, ``2013-08-14T10:30:00``) or
``datetime.date``/``datetime`` values; a missing or unparseable date gives a missing feature (None).

This module imports only the standard library, so the serving path may use it.
"""

from __future__ import annotations

import datetime as _dt
from typing import Any

__all__ = ["PARTS", "derived_specs", "derive_record", "parse_date", "part_of", "days_between"]

PARTS = ("year", "month", "day", "day_of_week", "day_of_year", "quarter")


def parse_date(value: Any) -> _dt.datetime | None:
    """A datetime from ISO text or a date/datetime; None when missing or not a date."""
    if value is None:
        return None
    if isinstance(value, _dt.datetime):
        return value.replace(tzinfo=None)
    if isinstance(value, _dt.date):
        return _dt.datetime(value.year, value.month, value.day)
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip().replace("T", " ").removesuffix("Z")
    try:
        return _dt.datetime.fromisoformat(text).replace(tzinfo=None)
    except ValueError:
        return None


def part_of(part: str, value: Any) -> float | None:
    d = parse_date(value)
    if d is None:
        return None
    if part == "year":
        return float(d.year)
    if part == "month":
        return float(d.month)
    if part == "day":
        return float(d.day)
    if part == "day_of_week":
        return float(d.weekday())
    if part == "day_of_year":
        return float(d.timetuple().tm_yday)
    if part == "quarter":
        return float((d.month - 1) // 3 + 1)
    raise ValueError(f"unknown date part {part!r}; choose one of: {', '.join(PARTS)}")


def days_between(start: Any, end: Any) -> float | None:
    a, b = parse_date(start), parse_date(end)
    if a is None or b is None:
        return None
    return (b - a).total_seconds() / 86400.0


def derived_specs(derive: list[Any]) -> list[dict]:
    """The brief's ``features.derive`` entries as flat specs ``{"name", "part", "column"}`` or
    ``{"name", "days_between": [start, end]}``, in order."""
    out: list[dict] = []
    for d in derive:
        get = d.get if isinstance(d, dict) else (lambda k, _d=d: getattr(_d, k, None))
        if get("days_between"):
            start, end = get("days_between")
            out.append({"name": get("name") or f"{end}_minus_{start}_days", "days_between": [start, end]})
        else:
            col = get("column")
            out.extend({"name": f"{col}_{p}", "part": p, "column": col} for p in get("parts") or [])
    return out


def derive_record(record: dict, specs: list[dict]) -> dict:
    """The derived values of one record (a mapping holding the source date columns)."""
    out = {}
    for s in specs:
        if "days_between" in s:
            a, b = s["days_between"]
            out[s["name"]] = days_between(record.get(a), record.get(b))
        else:
            out[s["name"]] = part_of(s["part"], record.get(s["column"]))
    return out
