"""The data contract: what every column is, as inferred from the training data during Discovery.

Per column: dtype, kind (numeric / categorical / datetime), role (target / feature / date / excluded, with the
reason), whether it is sensitive, nullable, the allowed categories and the numeric range; and the task with
its target vocabulary (binary: the positive label; multiclass: the classes in code order). A date column has
role ``date`` (reason "date") and is never a raw feature; the brief's derived date features are numeric features
and ``derive`` keeps their specs (``date_inputs``: the date columns they are computed from), which is what
registration writes into serving.json. The contract is saved with the run; later it becomes the serving input
schema and the reference for drift.
:meth:`DataContract.check` validates another frame (the test split, a batch of live rows) against it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Literal

import polars as pl
from pydantic import BaseModel, ConfigDict

from .._report import Report, atomic_write_text, esc, html_table
from ..brief import Brief
from ..errors import ContractError, DataError
from ..tasks import get_task
from .audit import (
    MIN_ROWS_FOR_SIGNALS,
    blocked_columns,
    leak_excluding_tasks,
    leakage_scores,
    mirror_signals,
    post_time_signals,
    single_feature_signals,
)
from .derive import derived_specs

__all__ = ["ColumnSpec", "DataContract", "ContractCheck", "infer_contract"]

Kind = Literal["numeric", "categorical", "datetime", "other"]
Role = Literal["target", "feature", "excluded", "date"]


class ColumnSpec(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str
    dtype: str
    kind: Kind
    role: Role
    sensitive: bool = False
    nullable: bool
    null_fraction: float
    n_unique: int
    categories: list[str] | None = None
    min: float | None = None
    max: float | None = None
    reason: str | None = None


class DataContract(BaseModel, Report):
    """The inferred schema of a dataset, with the roles the brief assigns."""

    model_config = ConfigDict(extra="forbid")

    brief: str
    task: str = "binary_classification"
    target: str
    #: binary classification only: the target value that counts as positive
    positive_label: str | None = None
    #: multiclass classification only: the classes in code order (code k = classes[k])
    classes: list[str] | None = None
    rows: int
    columns: list[ColumnSpec]
    max_categories: int
    #: the derived date features (``workbench.data.derive.derived_specs``), in order
    derive: list[dict] = []

    title: ClassVar[str] = "Data contract"

    # ----------------------------------------------------------------- views
    def column(self, name: str) -> ColumnSpec:
        for c in self.columns:
            if c.name == name:
                return c
        raise ContractError(f"column '{name}' is not in the data contract", column=name)

    @property
    def features(self) -> list[str]:
        return [c.name for c in self.columns if c.role == "feature"]

    @property
    def numeric_features(self) -> list[str]:
        return [c.name for c in self.columns if c.role == "feature" and c.kind == "numeric"]

    @property
    def categorical_features(self) -> list[str]:
        return [c.name for c in self.columns if c.role == "feature" and c.kind == "categorical"]

    @property
    def sensitive_features(self) -> list[str]:
        return [c.name for c in self.columns if c.sensitive]

    @property
    def excluded(self) -> dict[str, str]:
        """Every column that is not a feature or the target, with the reason (a date column's is "date")."""
        return {c.name: c.reason or "" for c in self.columns if c.role in ("excluded", "date")}

    @property
    def date_columns(self) -> list[str]:
        return [c.name for c in self.columns if c.role == "date"]

    @property
    def date_inputs(self) -> list[str]:
        """The date columns the derived features are computed from (what the service takes as raw text)."""
        out: list[str] = []
        for d in self.derive:
            for c in d.get("days_between") or [d.get("column")]:
                if c and c not in out:
                    out.append(c)
        return out

    # ----------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def summary(self) -> dict:
        out = {"features": len(self.features), "numeric": len(self.numeric_features),
               "categorical": len(self.categorical_features), "excluded": self.excluded}
        if self.derive:
            out["derived"] = [d["name"] for d in self.derive]
        return out

    def save(self, path: str | Path) -> Path:
        return atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> DataContract:
        p = Path(path)
        try:
            return cls.model_validate_json(p.read_text())
        except FileNotFoundError:
            raise DataError("data contract not found", file=p, hint="run the Discovery phase first") from None

    def _html_body(self) -> str:
        rows = []
        for c in self.columns:
            if c.categories:
                allowed = ", ".join(c.categories[:8]) + (" ..." if len(c.categories) > 8 else "")
            else:
                allowed = f"[{c.min:g}, {c.max:g}]" if c.min is not None and c.max is not None else ""
            rows.append({"column": c.name, "dtype": c.dtype, "kind": c.kind,
                         "role": c.role + (" (sensitive)" if c.sensitive else ""),
                         "null %": round(100 * c.null_fraction, 2), "distinct": c.n_unique,
                         "allowed": allowed, "note": c.reason or ""})
        if self.positive_label is not None:
            what = f"positive = {esc(self.positive_label)}"
        elif self.classes:
            what = f"{len(self.classes)} classes: {esc(', '.join(self.classes))}"
        else:
            what = "numeric"
        return (f"<p>{self.rows} rows; {esc(self.task.replace('_', ' '))}, target <b>{esc(self.target)}</b> "
                f"({what}); {len(self.features)} features.</p>" + html_table(rows))

    # ----------------------------------------------------------------- validation
    def check(self, df: pl.DataFrame, *, name: str = "data", require_target: bool = False) -> ContractCheck:
        """Compare a frame with the contract: missing/unknown columns, type changes, unseen categories and
        out-of-range numerics. Missing columns raise; the rest is counted."""
        needed = self.features + ([self.target] if require_target else [])
        missing = [c for c in needed if c not in df.columns]
        if missing:
            raise ContractError(f"{name} lacks contract columns: {', '.join(missing)}", column=missing[0],
                                hint="supply every feature column named in the data contract")
        issues: list[dict] = []
        for spec in self.columns:
            if spec.role != "feature" or spec.name not in df.columns:
                continue
            s = df.get_column(spec.name)
            if isinstance(s.dtype, pl.Decimal):  # compare exactly like the float range the contract stores
                s = s.cast(pl.Float64)
            nulls = s.null_count()
            if nulls and not spec.nullable:
                issues.append({"column": spec.name, "issue": "missing values where training had none",
                               "rows": nulls, "fraction": nulls / max(df.height, 1)})
            if spec.kind == "categorical" and spec.categories is not None:
                text = s.cast(pl.String).drop_nulls()
                unseen = text.filter(~text.is_in(spec.categories))
                if unseen.len():
                    examples = unseen.unique().sort().head(5).to_list()
                    issues.append({"column": spec.name, "issue": f"unseen categories (e.g. {examples})",
                                   "rows": unseen.len(), "fraction": unseen.len() / max(df.height, 1)})
            elif spec.kind == "numeric" and spec.min is not None and spec.max is not None:
                if not s.dtype.is_numeric():
                    issues.append({"column": spec.name,
                                   "issue": f"type {s.dtype} where the contract has a number",
                                   "rows": df.height, "fraction": 1.0})
                    continue
                out = s.drop_nulls().filter((s.drop_nulls() < spec.min) | (s.drop_nulls() > spec.max)).len()
                if out:
                    issues.append({"column": spec.name,
                                   "issue": f"outside training range [{spec.min:g}, {spec.max:g}]",
                                   "rows": out, "fraction": out / max(df.height, 1)})
        unknown = [c for c in df.columns if c not in {s.name for s in self.columns}]
        return ContractCheck(name=name, rows=df.height, issues=issues, unknown_columns=unknown)


class ContractCheck(BaseModel, Report):
    """Result of :meth:`DataContract.check`."""

    name: str
    rows: int
    issues: list[dict]
    unknown_columns: list[str]
    title: ClassVar[str] = "Contract check"

    @property
    def ok(self) -> bool:
        return not self.issues

    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def _html_body(self) -> str:
        if self.ok:
            status = "<span class='wb-ok'>conforms</span>"
        else:
            status = f"<span class='wb-warn'>{len(self.issues)} issues</span>"
        table = html_table(self.issues) if self.issues else ""
        return f"<p>{esc(self.name)}: {self.rows} rows, {status}</p>" + table


def _kind(dtype: pl.DataType) -> Kind:
    if dtype.is_numeric():
        return "numeric"
    if dtype == pl.String:
        return "categorical"
    if dtype == pl.Date or isinstance(dtype, pl.Datetime):
        return "datetime"
    return "other"


# Integer columns spanning fewer values than this hold at most that many distinct values. polars 2.1 counts
# those several times faster with ``arg_unique`` than with ``n_unique`` (measured up to about a million
# distinct values in 10M rows); on columns of many more distinct values ``n_unique`` is the faster.
_NARROW_SPAN = 1 << 20


def _column_stats(df: pl.DataFrame, max_categories: int) -> list[dict]:
    """Per column: null count, distinct non-null values, the allowed categories and the range.

    Two selects, each computing every column in parallel: null counts and numeric ranges, then the distinct
    values. A text column's distinct values come from ``unique`` (their count is its ``n_unique``); when at
    most ``max_categories`` of them are non-null they are the categories, and only the columns with more need
    their values counted, to keep the most frequent (ties broken by value).
    """
    kinds = [_kind(dtype) for dtype in df.schema.values()]
    numeric = [i for i, kind in enumerate(kinds) if kind == "numeric"]
    head = df.select(
        [pl.col(c).null_count().alias(f"nulls{i}") for i, c in enumerate(df.columns)]
        + [pl.col(df.columns[i]).min().alias(f"min{i}") for i in numeric]
        + [pl.col(df.columns[i]).max().alias(f"max{i}") for i in numeric]
    ).row(0, named=True)
    # many distinct values first, text next, narrow integers last: started early, the costliest single count
    # (a high-cardinality number such as a weight or an amount) runs alongside the rest, not alone at the end
    wide: list[pl.Expr] = []
    text: list[pl.Expr] = []
    narrow: list[pl.Expr] = []
    for i, (name, kind) in enumerate(zip(df.columns, kinds, strict=True)):
        col = pl.col(name)
        lo, hi = head.get(f"min{i}"), head.get(f"max{i}")
        if kind == "categorical":
            text.append(col.unique().implode().alias(f"values{i}"))
        elif df.schema[name].is_integer() and lo is not None and hi - lo < _NARROW_SPAN:
            narrow.append(col.arg_unique().len().alias(f"nuniq{i}"))  # a null counts, as in n_unique
        else:
            wide.append(col.n_unique().alias(f"nuniq{i}"))
    row = df.select(wide + text + narrow).row(0, named=True)
    stats: list[dict] = []
    crowded: list[int] = []  # text columns with more non-null distinct values than max_categories
    for i, kind in enumerate(kinds):
        nulls = head[f"nulls{i}"]
        st = {"nulls": nulls, "categories": None, "min": None, "max": None}
        if kind == "categorical":
            values = [v for v in row[f"values{i}"] if v is not None]
            st["distinct"] = len(values)
            if len(values) > max_categories:
                crowded.append(i)
            elif values:
                st["categories"] = sorted(values)
        else:
            st["distinct"] = row[f"nuniq{i}"] - (1 if nulls else 0)
        if kind == "numeric" and nulls < df.height:
            st["min"], st["max"] = float(head[f"min{i}"]), float(head[f"max{i}"])
        stats.append(st)
    if crowded:
        n = "__wb_count__"
        names = [df.columns[i] for i in crowded]
        tops = pl.collect_all([
            df.lazy().select(pl.col(c).drop_nulls()).group_by(c).agg(pl.len().alias(n))
            .sort([n, c], descending=[True, False]).head(max_categories)
            for c in names
        ])
        for i, c, top in zip(crowded, names, tops, strict=True):
            stats[i]["categories"] = sorted(top.get_column(c).to_list())
    return stats


def _exclude_leaks(df: pl.DataFrame, brief: Brief, specs: list[ColumnSpec], explicit: set[str],
                   classes: list[str] | None, derive: list[dict]) -> list[ColumnSpec]:
    """Features (not named in features.include) with a block-level leakage signal -- the single-feature score, a
    monotone copy of the target, or a derived feature from a date recorded after the prediction time -- excluded,
    with the evidence as the reason. An acknowledgement (``leakage.acknowledge``) clears the promotion gate's
    block, it does not bring the column back: only ``features.include`` makes a flagged column a feature."""
    kinds = {c.name: c.kind for c in specs if c.role == "feature" and c.name not in explicit
             and c.kind in ("numeric", "categorical")}
    enough = df.get_column(brief.target.column).drop_nulls().len() >= MIN_ROWS_FOR_SIGNALS
    scores = leakage_scores(df, brief, kinds, classes=classes)[0] if enough else {}
    dates = [c.name for c in specs if c.role == "date"]
    signals = (single_feature_signals(scores, brief) + mirror_signals(df, brief, kinds, values=enough)
               + post_time_signals(df, brief, dates, derive))
    blocked = {c: why for c, why in blocked_columns([{**x, "acknowledged": None} for x in signals]).items()
               if c in kinds}
    out = []
    for c in specs:
        if c.name in blocked:
            c = c.model_copy(update={"role": "excluded", "reason": (
                f"possible leakage ({blocked[c.name]}); list it in features.include to keep it as a feature, "
                "or confirm the exclusion in leakage.acknowledge with a reason")})
        out.append(c)
    return out


def infer_contract(df: pl.DataFrame, brief: Brief, *, max_categories: int = 100) -> DataContract:
    """Infer the contract from the training frame and the brief.

    Date and datetime columns have role ``date`` (reason "date"): never raw features, even when included; the
    brief's ``features.derive`` columns (added by the loader) are numeric features. Other columns the brief does
    not name explicitly are excluded, with the reason recorded, when they are all missing, constant,
    identifier-like (a distinct value on every row) or high-cardinality text (more than ``max_categories``
    distinct values). A remaining column with a block-level leakage signal (the audit's single-feature score at
    the brief's or the task's block level, a monotone copy of the target, a derived feature from a date recorded
    after ``data.prediction_time``) is excluded as possible leakage unless ``leakage.acknowledge`` names it.
    A column the brief includes explicitly is otherwise always a feature.
    """
    if max_categories < 0:
        raise ValueError(f"max_categories must be 0 or more, got {max_categories}")
    if df.height == 0:
        raise DataError("cannot infer a data contract from an empty frame")
    explicit = set(brief.features.include)
    derive = [d for d in derived_specs(brief.features.derive) if d["name"] in df.columns]
    feature_cols = set(brief.feature_columns(df.columns)) | {
        d["name"] for d in derive if d["name"] not in set(brief.features.exclude)}
    sensitive = set(brief.sensitive_features)
    specs: list[ColumnSpec] = []
    for (name, dtype), st in zip(df.schema.items(), _column_stats(df, max_categories), strict=True):
        kind = _kind(dtype)
        nulls = st["nulls"]
        non_null = df.height - nulls
        n_unique = st["distinct"]
        role: Role = "feature"
        reason = None
        if name == brief.target.column:
            role = "target"
        elif name not in feature_cols:
            role, reason = "excluded", "excluded by the brief"
        elif kind == "datetime":
            role, reason = "date", "date"
        elif name not in explicit:
            if non_null == 0:
                role, reason = "excluded", "all values missing"
            elif n_unique <= 1:
                role, reason = "excluded", "constant (one distinct value)"
            elif kind == "other":
                role, reason = "excluded", f"unsupported type {dtype}"
            elif n_unique == non_null and non_null > 50 and (kind == "categorical" or dtype.is_integer()):
                role, reason = "excluded", "identifier-like (a distinct value on every row)"
            elif kind == "categorical" and n_unique > max_categories:
                role, reason = ("excluded",
                                f"high-cardinality text ({n_unique} distinct values > {max_categories})")
        specs.append(ColumnSpec(
            name=name, dtype=str(dtype), kind=kind, role=role, sensitive=name in sensitive,
            nullable=nulls > 0, null_fraction=round(nulls / df.height, 6), n_unique=n_unique,
            categories=st["categories"], min=st["min"], max=st["max"], reason=reason,
        ))
    task = get_task(brief.task)
    classes = task.classes(df.get_column(brief.target.column), brief=brief) if task.is_classifier else None
    if brief.task in leak_excluding_tasks():
        specs = _exclude_leaks(df, brief, specs, explicit, classes, derive)
    pos = brief.target.positive_label
    contract = DataContract(brief=brief.name, task=brief.task, target=brief.target.column,
                            positive_label=None if pos is None else str(pos), classes=classes, rows=df.height,
                            columns=specs, max_categories=max_categories, derive=derive)
    if not contract.features:
        raise DataError("no usable feature columns remain",
                        hint=f"check features.include/exclude in the brief; excluded: {contract.excluded}")
    return contract
