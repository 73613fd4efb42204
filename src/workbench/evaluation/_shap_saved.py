"""A run's saved SHAP explanation read back for showing: :class:`SavedShap` (private; the stakeholder app's
reader).

:class:`workbench.evaluation.explain.ShapReport` cannot be rebuilt from ``reports/shap.json`` alone: the per-row
values are in the run's ``reports/shap_contributions.parquet`` (one ``shap__<column>`` per original column beside
the columns' values; multiclass also has ``shap__<class>__<column>``). :class:`SavedShap` holds both and gives
the frames and charts the app shows: global importance (:meth:`~SavedShap.importance_frame`,
:meth:`~SavedShap.chart`) and the drivers within the groups of a sensitive feature
(:meth:`~SavedShap.drivers_frame`, :meth:`~SavedShap.drivers_chart`), drawn by
:mod:`workbench.evaluation._charts`.

Like the other saved-report readers, this module imports polars and nothing heavier: no scikit-learn, SciPy,
Fairlearn or SHAP.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import polars as pl

from ..errors import DataError

__all__ = ["SavedShap", "SHAP_UNITS", "shap_unit"]

BINARY = "binary_classification"
MISSING_GROUP = "(missing)"

SHAP_UNITS = {"regression": "target units", "multiclass_classification": "class score, mean over classes"}
"""The unit of a saved SHAP report's values by task (anything else: log-odds, the binary unit)."""

_DRIVER_SCHEMA = {"group": pl.String, "n": pl.Int64, "feature": pl.String, "mean_abs_shap": pl.Float64,
                  "mean_shap": pl.Float64, "rank": pl.Int64}


def shap_unit(saved: Mapping[str, Any] | None, task: str | None = None) -> str:
    """The unit of a SHAP report's values: log-odds (binary), the target's units (regression), the raw class
    score (multiclass; importance averages |SHAP| over classes). The saved report's ``task`` wins over ``task``."""
    t = (saved or {}).get("task") or task or BINARY
    return SHAP_UNITS.get(t, "log-odds")


def _parts(feature: str) -> list[str]:
    """The columns of a sensitive feature or an ``a & b`` intersection."""
    return [p.strip() for p in feature.split(" & ")]


def _group_labels(contributions: pl.DataFrame, feature: str) -> pl.Expr:
    exprs = [pl.col(p).cast(pl.String).fill_null("").replace("", MISSING_GROUP) for p in _parts(feature)]
    return (exprs[0] if len(exprs) == 1 else pl.concat_str(exprs, separator=" & ")).alias("group")


@dataclass(frozen=True, eq=False)
class SavedShap:
    """A saved SHAP report (``shap.json``'s content) with the run's per-row contributions (the Parquet frame, or
    None when the run has none: the group drivers then come from ``shap.json``, unsigned)."""

    saved: Mapping[str, Any] = field(default_factory=dict)
    contributions: pl.DataFrame | None = None

    @classmethod
    def from_saved(cls, saved: Mapping[str, Any] | None, contributions: pl.DataFrame | None = None) -> SavedShap:
        """The reader of ``saved`` (a ``reports/shap.json`` dict; None or {} for a run without one) and its
        contributions frame."""
        return cls(dict(saved or {}), contributions)

    @property
    def task(self) -> str:
        return str(self.saved.get("task") or BINARY)

    @property
    def unit(self) -> str:
        """The unit of the values (:func:`shap_unit`)."""
        return shap_unit(self.saved)

    @property
    def signed(self) -> bool:
        """Whether the per-row contributions carry a direction (multiclass ones are mean |SHAP| over classes)."""
        return self.task != "multiclass_classification"

    # ------------------------------------------------------------------ global importance
    def importance_frame(self) -> pl.DataFrame:
        """Global importance: ``feature``, ``mean_abs_shap`` (in :attr:`unit`), largest first."""
        imp = self.saved.get("importance") or {}
        return pl.DataFrame({"feature": list(imp), "mean_abs_shap": [float(v) for v in imp.values()]},
                            schema={"feature": pl.String, "mean_abs_shap": pl.Float64}
                            ).sort("mean_abs_shap", descending=True, maintain_order=True)

    def chart(self, *, title: str = "Global importance", top: int = 15) -> Any:
        """The importance chart, interactive (:func:`workbench.evaluation._charts.importance_chart`)."""
        from ._charts import importance_chart

        return importance_chart(self.importance_frame(), title=title, top=top, unit=self.unit)

    def plot(self, *, title: str = "Global importance", top: int = 15) -> Any:
        """The importance chart as a static matplotlib Figure."""
        from ._charts import importance_figure

        return importance_figure(self.importance_frame(), title=title, top=top, unit=self.unit)

    # ------------------------------------------------------------------ drivers within groups
    def _has_columns(self, feature: str) -> bool:
        return self.contributions is not None and all(p in self.contributions.columns for p in _parts(feature))

    def driver_features(self, sensitive: list[str]) -> list[str]:
        """The sensitive features (and ``a & b`` intersections) of ``sensitive`` whose drivers can be shown."""
        saved = self.saved.get("group_drivers") or {}
        return [f for f in sensitive if self._has_columns(f) or f in saved]

    def drivers_frame(self, feature: str) -> pl.DataFrame:
        """Per group of ``feature``: mean |SHAP| and mean signed SHAP of every column (long format).

        Columns: ``group``, ``n``, ``feature``, ``mean_abs_shap``, ``mean_shap`` (direction: > 0 pushes towards
        the positive label, or raises the prediction), ``rank`` (1 = the group's strongest driver). Computed from
        the contributions; without them, from ``shap.json`` (mean |SHAP| only, ``mean_shap`` null). Multiclass
        contributions are unsigned, so ``mean_shap`` is null there too.

        Raises
        ------
        DataError
            Neither the contributions nor ``shap.json`` have the feature.
        """
        schema = {k: v for k, v in _DRIVER_SCHEMA.items() if k != "rank"}
        if self._has_columns(feature):
            contributions = self.contributions
            # One shap__<column> per original column (multiclass also has shap__<class>__<column>: not a column).
            cols = [c[len("shap__"):] for c in contributions.columns
                    if c.startswith("shap__") and c[len("shap__"):] in contributions.columns]
            signed = self.signed
            df = contributions.with_columns(_group_labels(contributions, feature))
            agg = df.group_by("group").agg(
                pl.len().alias("n"),
                *[pl.col(f"shap__{c}").abs().mean().alias(f"abs__{c}") for c in cols],
                *[(pl.col(f"shap__{c}").mean() if signed else pl.lit(None, dtype=pl.Float64)).alias(f"sgn__{c}")
                  for c in cols],
            )
            rows = [{"group": r["group"], "n": r["n"], "feature": c, "mean_abs_shap": r[f"abs__{c}"],
                     "mean_shap": r[f"sgn__{c}"]} for r in agg.iter_rows(named=True) for c in cols]
        else:
            groups = (self.saved.get("group_drivers") or {}).get(feature)
            if not groups:
                raise DataError(f"no SHAP drivers for '{feature}'", column=feature,
                                hint="the run's contributions Parquet and shap.json both lack this feature")
            rows = [{"group": g, "n": int(d.get("n", 0)), "feature": c, "mean_abs_shap": float(v), "mean_shap": None}
                    for g, d in groups.items() for c, v in d["mean_abs_shap"].items()]
        out = pl.DataFrame(rows, schema=schema).sort(["group", "mean_abs_shap"], descending=[False, True],
                                                      maintain_order=True)
        return out.with_columns(pl.int_range(1, pl.len() + 1).over("group").cast(pl.Int64).alias("rank"))

    def drivers_chart(self, feature: str, *, top: int = 8) -> Any:
        """The group-driver chart of ``feature``, interactive (:func:`workbench.evaluation._charts.drivers_chart`)."""
        from ._charts import drivers_chart

        return drivers_chart(self.drivers_frame(feature), feature=feature, top=top, unit=self.unit)

    def plot_drivers(self, feature: str, *, top: int = 8) -> Any:
        """The group-driver chart of ``feature`` as a static matplotlib Figure."""
        from ._charts import drivers_figure

        return drivers_figure(self.drivers_frame(feature), feature=feature, top=top, unit=self.unit)
