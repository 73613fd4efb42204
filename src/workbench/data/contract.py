"""The data contract: what every column is, as inferred from the training data during Discovery.

Per column: dtype, kind (numeric / categorical / datetime), role (target / feature / excluded, with the reason),
whether it is sensitive, nullable, the allowed categories and the numeric range. The contract is saved with the
run; later it becomes the serving input schema and the reference for drift. :meth:`DataContract.check` validates
another frame (the test split, a batch of live rows) against it.
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

__all__ = ["ColumnSpec", "DataContract", "ContractCheck", "infer_contract"]

Kind = Literal["numeric", "categorical", "datetime", "other"]
Role = Literal["target", "feature", "excluded"]


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
    target: str
    positive_label: str
    rows: int
    columns: list[ColumnSpec]
    max_categories: int

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
        return {c.name: c.reason or "" for c in self.columns if c.role == "excluded"}

    # ----------------------------------------------------------------- persistence
    def to_dict(self) -> dict:
        return self.model_dump(mode="json")

    def summary(self) -> dict:
        return {"features": len(self.features), "numeric": len(self.numeric_features),
                "categorical": len(self.categorical_features), "excluded": self.excluded}

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
            allowed = (", ".join(c.categories[:8]) + (" ..." if len(c.categories) > 8 else "")) if c.categories \
                else (f"[{c.min:g}, {c.max:g}]" if c.min is not None and c.max is not None else "")
            rows.append({"column": c.name, "dtype": c.dtype, "kind": c.kind,
                         "role": c.role + (" (sensitive)" if c.sensitive else ""),
                         "null %": round(100 * c.null_fraction, 2), "distinct": c.n_unique,
                         "allowed": allowed, "note": c.reason or ""})
        return (f"<p>{self.rows} rows; target <b>{esc(self.target)}</b> (positive = {esc(self.positive_label)}); "
                f"{len(self.features)} features.</p>" + html_table(rows))

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
            nulls = s.null_count()
            if nulls and not spec.nullable:
                issues.append({"column": spec.name, "issue": "missing values where training had none",
                               "rows": nulls, "fraction": nulls / max(df.height, 1)})
            if spec.kind == "categorical" and spec.categories is not None:
                unseen = s.cast(pl.String).drop_nulls().filter(~s.cast(pl.String).drop_nulls().is_in(spec.categories))
                if unseen.len():
                    examples = unseen.unique().sort().head(5).to_list()
                    issues.append({"column": spec.name, "issue": f"unseen categories (e.g. {examples})",
                                   "rows": unseen.len(), "fraction": unseen.len() / max(df.height, 1)})
            elif spec.kind == "numeric" and spec.min is not None and spec.max is not None:
                if not s.dtype.is_numeric():
                    issues.append({"column": spec.name, "issue": f"type {s.dtype} where the contract has a number",
                                   "rows": df.height, "fraction": 1.0})
                    continue
                out = s.drop_nulls().filter((s.drop_nulls() < spec.min) | (s.drop_nulls() > spec.max)).len()
                if out:
                    issues.append({"column": spec.name, "issue": f"outside training range [{spec.min:g}, {spec.max:g}]",
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
        status = "<span class='wb-ok'>conforms</span>" if self.ok else f"<span class='wb-warn'>{len(self.issues)} issues</span>"
        return f"<p>{esc(self.name)}: {self.rows} rows, {status}</p>" + (html_table(self.issues) if self.issues else "")


def _kind(dtype: pl.DataType) -> Kind:
    if dtype.is_numeric():
        return "numeric"
    if dtype == pl.String:
        return "categorical"
    if dtype.is_temporal():
        return "datetime"
    return "other"


def infer_contract(df: pl.DataFrame, brief: Brief, *, max_categories: int = 100) -> DataContract:
    """Infer the contract from the training frame and the brief.

    Columns the brief does not name explicitly are excluded, with the reason recorded, when they are all
    missing, constant, identifier-like (a distinct value on every row), high-cardinality text (more than
    ``max_categories`` distinct values), or dates. A column the brief includes explicitly is always a feature.
    """
    if df.height == 0:
        raise DataError("cannot infer a data contract from an empty frame")
    explicit = set(brief.features.include)
    feature_cols = set(brief.feature_columns(df.columns))
    sensitive = set(brief.sensitive_features)
    stats = df.select(
        [pl.col(c).null_count().alias(f"{c}__nulls") for c in df.columns]
        + [pl.col(c).n_unique().alias(f"{c}__nuniq") for c in df.columns]
    ).row(0, named=True)
    specs: list[ColumnSpec] = []
    for name, dtype in df.schema.items():
        kind = _kind(dtype)
        nulls = stats[f"{name}__nulls"]
        non_null = df.height - nulls
        n_unique = stats[f"{name}__nuniq"] - (1 if nulls else 0)
        role: Role = "feature"
        reason = None
        categories = None
        lo = hi = None
        if name == brief.target.column:
            role = "target"
        elif name not in feature_cols:
            role, reason = "excluded", "excluded by the brief"
        elif name not in explicit:
            if non_null == 0:
                role, reason = "excluded", "all values missing"
            elif n_unique <= 1:
                role, reason = "excluded", "constant (one distinct value)"
            elif kind == "datetime":
                role, reason = "excluded", "date/time column (derive features from it explicitly)"
            elif kind == "other":
                role, reason = "excluded", f"unsupported type {dtype}"
            elif n_unique == non_null and non_null > 50 and (kind == "categorical" or dtype.is_integer()):
                role, reason = "excluded", "identifier-like (a distinct value on every row)"
            elif kind == "categorical" and n_unique > max_categories:
                role, reason = "excluded", f"high-cardinality text ({n_unique} distinct values > {max_categories})"
        if kind == "categorical" and non_null:
            vc = df.get_column(name).drop_nulls().value_counts(sort=True)
            cats = vc.sort(["count", name], descending=[True, False]).get_column(name).head(max_categories)
            categories = sorted(cats.to_list())
        if kind == "numeric" and non_null:
            s = df.get_column(name)
            lo, hi = float(s.min()), float(s.max())
        specs.append(ColumnSpec(
            name=name, dtype=str(dtype), kind=kind, role=role, sensitive=name in sensitive,
            nullable=nulls > 0, null_fraction=round(nulls / df.height, 6), n_unique=n_unique,
            categories=categories, min=lo, max=hi, reason=reason,
        ))
    contract = DataContract(brief=brief.name, target=brief.target.column,
                            positive_label=str(brief.target.positive_label), rows=df.height, columns=specs,
                            max_categories=max_categories)
    if not contract.features:
        raise DataError("no usable feature columns remain", hint="check features.include/exclude in the brief; "
                        f"excluded: {contract.excluded}")
    return contract
