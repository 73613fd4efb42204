"""SHAP explanations of a fitted candidate, per original column, overall and within sensitive groups.

The explainer works on the pipeline's *transformed* matrix (SHAP's model-agnostic explainers choke on
string columns): ``TreeExplainer`` (path-dependent) for ``hgb``, ``LinearExplainer`` (interventional,
background mean) for ``logreg``. Values are in log-odds, so they add up to the model margin
(``decision_function``); the report records that additivity check. One-hot contributions are summed back to
the column they encode, so every figure is about a column of the data contract.

Baselines (``majority``, ``rule``) have no SHAP explanation: :func:`explain` raises :class:`ModelError` for
them; their description (``FittedModel.description``) is their explanation.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Literal

import numpy as np
import pandas as pd
import polars as pl

from .._report import Report, esc, html_table, jsonable
from ..errors import ModelError, ParameterError
from ..modeling.candidates import CANDIDATES
from ..modeling.frame import ColumnRoles, check_model_frame, is_text
from ..modeling.train import FittedModel

__all__ = ["ShapReport", "explain", "ADDITIVITY_TOLERANCE"]

log = logging.getLogger(__name__)

ADDITIVITY_TOLERANCE = 1e-6
"""Largest allowed |base value + sum of contributions - model margin| (log-odds)."""

MISSING_GROUP = "(missing)"
CONTRIBUTIONS_SUFFIX = "_contributions.parquet"


@dataclass(eq=False)
class ShapReport(Report):
    """SHAP values of a seeded sample of rows, aggregated to the original columns.

    Attributes
    ----------
    contributions:
        One row per sampled row, one column per original feature: SHAP values in log-odds.
    data:
        The sampled rows' feature values (same index as ``contributions``).
    row_index:
        Positions of the sampled rows in the frame that was explained.
    group_drivers:
        Per sensitive feature, a frame of mean |SHAP| per original column (columns) within each group (rows).
    transformed_contributions:
        SHAP values per transformed column (``transformed_names``; ``transformed_columns`` names the original
        column each one belongs to). Not saved in JSON.
    """

    model_name: str
    explainer: Literal["tree", "linear"]
    seed: int
    base_value: float
    contributions: pd.DataFrame
    data: pd.DataFrame
    row_index: np.ndarray
    margin: np.ndarray
    additivity_max_error: float
    group_drivers: dict[str, pd.DataFrame]
    group_sizes: dict[str, dict[str, int]]
    transformed_names: list[str]
    transformed_columns: list[str]
    transformed_contributions: np.ndarray = field(repr=False)
    seconds: float
    additivity_tolerance: float = ADDITIVITY_TOLERANCE

    title: ClassVar[str] = "SHAP explanation"

    # ------------------------------------------------------------------ views
    @property
    def additivity_ok(self) -> bool:
        return bool(self.additivity_max_error <= self.additivity_tolerance)

    @property
    def importance(self) -> pd.Series:
        """Global importance: mean |SHAP| per original column, largest first."""
        return self.contributions.abs().mean().sort_values(ascending=False, kind="stable")

    def top_drivers(self, feature: str, *, k: int = 5) -> dict[str, list[str]]:
        """The ``k`` columns with the largest mean |SHAP| in each group of sensitive ``feature``."""
        frame = self._drivers(feature)
        return {str(g): list(row.sort_values(ascending=False, kind="stable").index[:k])
                for g, row in frame.iterrows()}

    def _drivers(self, feature: str) -> pd.DataFrame:
        if feature not in self.group_drivers:
            known = ", ".join(self.group_drivers) or "none (explain was called without sensitive=)"
            raise ParameterError(f"no group drivers for '{feature}'", parameter="feature",
                                 hint=f"use one of: {known}")
        return self.group_drivers[feature]

    # ------------------------------------------------------------------ report protocol
    def to_dict(self) -> dict:
        imp = self.importance
        groups = {
            feat: {str(g): {"n": self.group_sizes[feat][str(g)], "mean_abs_shap": row.to_dict(),
                            "top": self.top_drivers(feat)[str(g)]}
                   for g, row in frame.iterrows()}
            for feat, frame in self.group_drivers.items()
        }
        return jsonable({
            "model": self.model_name, "explainer": self.explainer, "seed": self.seed,
            "sample_size": len(self.contributions), "seconds": self.seconds, "base_value": self.base_value,
            "additivity": {"max_abs_error": self.additivity_max_error, "tolerance": self.additivity_tolerance,
                           "passed": self.additivity_ok},
            "importance": imp.to_dict(),
            "group_drivers": groups,
            # The per-row values go to a Parquet file next to the JSON (see save()); JSON keeps the summary.
            "contributions": {"rows": len(self.contributions), "columns": list(self.contributions.columns),
                              "file_suffix": CONTRIBUTIONS_SUFFIX},
            "transformed_features": {"names": self.transformed_names, "columns": self.transformed_columns},
        })

    def contributions_frame(self) -> pl.DataFrame:
        """The sampled rows as one polars frame: ``row_index``, ``margin``, ``base_value``, then each column's
        value and its SHAP value (``shap__<column>``)."""
        cols: dict[str, Any] = {"row_index": self.row_index.astype(np.int64), "margin": self.margin,
                                "base_value": np.full(len(self.margin), self.base_value)}
        for col in self.contributions.columns:
            cols[col] = self.data[col].to_numpy()
            cols[f"shap__{col}"] = self.contributions[col].to_numpy()
        return pl.DataFrame(cols)

    def save(self, path: str | Path) -> Path:
        """Save the report as JSON at ``path`` and the per-row contributions next to it, as
        ``<stem>_contributions.parquet`` (what the app shows). Returns the JSON path."""
        path = Path(path)
        parquet = path.with_name(f"{path.stem}{CONTRIBUTIONS_SUFFIX}")
        parquet.parent.mkdir(parents=True, exist_ok=True)
        tmp = parquet.with_name(f".{parquet.name}.tmp")
        self.contributions_frame().write_parquet(tmp)
        os.replace(tmp, parquet)
        return super().save(path)

    def summary(self) -> dict:
        return {"model": self.model_name, "explainer": self.explainer, "rows": len(self.contributions),
                "additivity_max_error": self.additivity_max_error, "additivity_passed": self.additivity_ok,
                "top_features": list(self.importance.index[:5])}

    def _html_body(self) -> str:
        status = ("<span class='wb-ok'>pass</span>" if self.additivity_ok
                  else "<span class='wb-bad'>FAIL</span>")
        head = (f"<p>{esc(self.explainer)} explainer on {len(self.contributions)} sampled rows of model "
                f"<b>{esc(self.model_name)}</b> (seed {self.seed}, {self.seconds:.2f} s). "
                f"Values in log-odds; base value {self.base_value:.4f}. "
                f"Additivity: max |error| {self.additivity_max_error:.2e} "
                f"(tolerance {self.additivity_tolerance:.0e}) {status}.</p>")
        imp = [{"column": c, "mean |SHAP|": float(v)} for c, v in self.importance.items()]
        body = head + "<h4>Global importance</h4>" + html_table(imp)
        for feat in self.group_drivers:
            rows = [{"group": g, "n": self.group_sizes[feat][g], "top drivers": ", ".join(top)}
                    for g, top in self.top_drivers(feat).items()]
            body += f"<h4>Drivers within groups of {esc(feat)}</h4>" + html_table(rows)
        return body

    # ------------------------------------------------------------------ plots (matplotlib, no display needed)
    def plot_importance(self, ax: Any = None, *, max_display: int = 20) -> Any:
        """Bar chart of mean |SHAP| per column, largest on top. Returns the matplotlib Axes."""
        ax = _axes(ax, (6, 0.3 * min(max_display, self.contributions.shape[1]) + 1))
        imp = self.importance.iloc[:max_display][::-1]
        ax.barh(list(imp.index), imp.to_numpy(), color="#1f77b4")
        ax.set_xlabel("mean |SHAP value| (log-odds)")
        ax.set_title(f"Global importance: {self.model_name}")
        return ax

    def plot_beeswarm(self, ax: Any = None, *, max_display: int = 15) -> Any:
        """One dot per sampled row and column at its SHAP value, coloured by the column's value (numerics;
        categoricals are grey). Returns the matplotlib Axes."""
        from matplotlib import colormaps

        cols = list(self.importance.index[:max_display])
        ax = _axes(ax, (7, 0.4 * len(cols) + 1.2))
        rng = np.random.default_rng(self.seed)
        cmap = colormaps["coolwarm"]
        for y, col in enumerate(reversed(cols)):
            shap_values = self.contributions[col].to_numpy()
            values = self.data[col]
            if pd.api.types.is_float_dtype(values):
                ranks = values.rank(pct=True).to_numpy()
                colors = [cmap(r) if np.isfinite(r) else (0.6, 0.6, 0.6, 1.0) for r in ranks]
            else:
                colors = [(0.55, 0.55, 0.55, 1.0)] * len(values)
            jitter = rng.uniform(-0.3, 0.3, len(shap_values))
            ax.scatter(shap_values, y + jitter, c=colors, s=6, linewidths=0)
        ax.set_yticks(range(len(cols)), list(reversed(cols)))
        ax.axvline(0.0, color="#999", linewidth=0.8)
        ax.set_xlabel("SHAP value (log-odds); colour: numeric value low (blue) to high (red)")
        ax.set_title(f"SHAP values per row: {self.model_name}")
        return ax

    def plot_group_drivers(self, feature: str, ax: Any = None, *, top: int = 8) -> Any:
        """Grouped bars of mean |SHAP| per column within each group of sensitive ``feature``."""
        frame = self._drivers(feature)
        cols = list(frame.max(axis=0).sort_values(ascending=False, kind="stable").index[:top])[::-1]
        ax = _axes(ax, (7, 0.5 * len(cols) + 1.2))
        groups = list(frame.index)
        height = 0.8 / max(len(groups), 1)
        for i, g in enumerate(groups):
            pos = np.arange(len(cols)) - 0.4 + height * (i + 0.5)
            ax.barh(pos, frame.loc[g, cols].to_numpy(), height=height,
                    label=f"{g} (n={self.group_sizes[feature][str(g)]})")
        ax.set_yticks(range(len(cols)), cols)
        ax.set_xlabel("mean |SHAP value| (log-odds)")
        ax.set_title(f"Drivers within groups of {feature}: {self.model_name}")
        ax.legend(fontsize="small")
        return ax


def _axes(ax: Any, size: tuple[float, float]) -> Any:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    return plt.subplots(figsize=size, layout="constrained")[1]


def _column_owners(ct: Any) -> list[str]:
    """The original column behind each output column of a fitted ColumnTransformer, in output order.

    A block whose output width equals its input width maps 1:1 (scaled or ordinal-encoded columns); a one-hot
    block maps through its encoder's ``categories_``. Checked against ``get_feature_names_out``.
    """
    owners: list[str] = []
    for name, trans, cols in ct.transformers_:
        if name == "remainder" or trans == "drop" or len(cols) == 0:
            continue
        out = trans.get_feature_names_out(list(cols))
        if len(out) == len(cols):
            owners += list(cols)
            continue
        encoder = trans[-1] if hasattr(trans, "steps") else trans
        cats = getattr(encoder, "categories_", None)
        if cats is None or getattr(encoder, "drop_idx_", None) is not None or sum(map(len, cats)) != len(out):
            raise ModelError(f"cannot map the outputs of transformer '{name}' back to its columns",
                             hint="use one-hot without drop/infrequent categories, or a 1:1 transformer")
        for col, c in zip(cols, cats, strict=True):
            owners += [col] * len(c)
    if len(owners) != len(ct.get_feature_names_out()):
        raise ModelError("transformed column count does not match the column mapping")
    return owners


def _shap_values(kind: str, estimator: Any, Xt: np.ndarray, background: np.ndarray
                 ) -> tuple[np.ndarray, float]:
    import shap

    if kind == "tree":
        explainer = shap.TreeExplainer(estimator)
    else:
        explainer = shap.LinearExplainer(estimator, (background.mean(axis=0), None))
    values = np.asarray(explainer.shap_values(Xt), dtype=np.float64)
    if values.ndim == 3:  # (rows, features, classes): keep the positive class
        values = values[..., -1]
    base = float(np.ravel(explainer.expected_value)[-1])
    return values, base


def _group_drivers(contrib: pd.DataFrame, sensitive: pd.DataFrame
                   ) -> tuple[dict[str, pd.DataFrame], dict[str, dict[str, int]]]:
    drivers, sizes = {}, {}
    absolute = contrib.abs()
    for feat in sensitive.columns:
        groups = sensitive[feat].astype(object).where(sensitive[feat].notna(), MISSING_GROUP).astype(str)
        groups = groups.replace("", MISSING_GROUP).to_numpy()
        drivers[feat] = absolute.groupby(groups, sort=True).mean()
        drivers[feat].index.name = feat
        counts = pd.Series(groups).value_counts()
        sizes[feat] = {str(g): int(counts[g]) for g in drivers[feat].index}
    return drivers, sizes


def explain(fitted_model: FittedModel, X: pd.DataFrame, *, sample_size: int = 1000, seed: int = 0,
            sensitive: Any = None, background: pd.DataFrame | None = None) -> ShapReport:
    """Explain a fitted candidate with SHAP on a seeded sample of rows.

    Parameters
    ----------
    fitted_model:
        A candidate from :func:`~workbench.modeling.fit_model` (``"hgb"`` or ``"logreg"``).
    X:
        Model frame (from :func:`~workbench.modeling.to_model_frame`) to draw the rows from.
    sample_size:
        Rows to explain (all rows when ``X`` has fewer), drawn without replacement with ``seed``.
    seed:
        Seed of the sample.
    sensitive:
        Optional frame (pandas or polars) of sensitive features aligned row by row with ``X``; gives per-group
        drivers. Missing values form the group ``"(missing)"``.
    background:
        Model frame whose mean is the linear explainer's reference (default: all of ``X``). The tree explainer
        uses the training data distribution stored in the trees and ignores it.

    Raises
    ------
    ModelError
        The model is a baseline or has no registered explainer.
    ParameterError
        ``X`` is empty, ``sample_size`` is not positive or ``sensitive`` does not have one row per row of
        ``X``.
    """
    if fitted_model.kind != "candidate" or fitted_model.name not in CANDIDATES:
        raise ModelError("has no SHAP explanation (only candidates are explained)", model=fitted_model.name,
                         hint="a baseline's explanation is its description: FittedModel.description")
    if sample_size < 1:
        raise ParameterError(f"must be at least 1, got {sample_size}", parameter="sample_size")
    if len(X) == 0:
        raise ParameterError("has no rows to explain", parameter="X")
    kind = CANDIDATES[fitted_model.name].explainer
    features = fitted_model.features
    categorical = tuple(c for c in features if c in X.columns and is_text(X[c]))
    check_model_frame(X, ColumnRoles((), categorical, tuple(features)))
    if sensitive is not None:
        if not isinstance(sensitive, pd.DataFrame):
            sensitive = sensitive.to_pandas()
        if len(sensitive) != len(X):
            raise ParameterError(f"has {len(sensitive)} rows but X has {len(X)}", parameter="sensitive",
                                 hint="pass the sensitive columns of the same rows as X")
    pipe = fitted_model.model
    ct, estimator = pipe.named_steps["prep"], pipe.named_steps["model"]
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(X), size=min(sample_size, len(X)), replace=False))
    rows = X.iloc[idx][fitted_model.features].reset_index(drop=True)
    start = time.perf_counter()
    Xt = np.asarray(ct.transform(rows), dtype=np.float64)
    bg = np.asarray(ct.transform((background if background is not None else X)[fitted_model.features]),
                    dtype=np.float64) if kind == "linear" else Xt
    values, base = _shap_values(kind, estimator, Xt, bg)
    seconds = time.perf_counter() - start
    margin = np.asarray(estimator.decision_function(Xt), dtype=np.float64).ravel()
    error = float(np.max(np.abs(base + values.sum(axis=1) - margin))) if len(margin) else 0.0
    owners = _column_owners(ct)
    owners_arr = np.asarray(owners, dtype=object)
    contrib = pd.DataFrame({col: values[:, owners_arr == col].sum(axis=1) for col in fitted_model.features})
    drivers, sizes = ({}, {}) if sensitive is None else _group_drivers(
        contrib, sensitive.iloc[idx].reset_index(drop=True))
    log.info("%s SHAP for %s on %d rows in %.2f s; additivity max error %.2e",
             kind, fitted_model.name, len(rows), seconds, error)
    if error > ADDITIVITY_TOLERANCE:
        log.warning("SHAP additivity check failed for %s: max error %.2e > %.0e",
                    fitted_model.name, error, ADDITIVITY_TOLERANCE)
    return ShapReport(
        model_name=fitted_model.name, explainer=kind, seed=int(seed), base_value=base, contributions=contrib,
        data=rows, row_index=idx, margin=margin, additivity_max_error=error, group_drivers=drivers,
        group_sizes=sizes, transformed_names=[str(n) for n in ct.get_feature_names_out()],
        transformed_columns=owners, transformed_contributions=values, seconds=seconds,
    )
