"""SHAP explanations of a fitted candidate, per original column, overall and within sensitive groups.

The explainer works on the pipeline's *transformed* matrix (SHAP's model-agnostic explainers choke on
string columns): ``TreeExplainer`` (path-dependent) for gradient boosting (``hgb``), ``LinearExplainer``
(interventional, background mean) for linear models (``logreg``, ridge). One-hot contributions are summed back
to the column they encode, so every figure is about a column of the data contract. What the values add up to
depends on the task (``task=``), and the report records that additivity check and names the output:

* ``"binary_classification"``: log-odds of the positive class, adding up to ``decision_function``;
* ``"regression"``: the target's units, adding up to ``predict``;
* ``"multiclass_classification"``: one explanation per class of the per-class raw score (the softmax logits,
  ``decision_function``, shape (n, K)); each class's values add up to its column. ``contributions`` then holds
  each row's mean |SHAP| over classes (unsigned), so ``importance`` is the overall mean |SHAP| across classes;
  the signed per-class values are in ``class_contributions`` and ``importance_by_class``.

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
"""Largest allowed |base value + sum of contributions - model output| (log-odds, target units or raw score).
For regression the check is relative to the target's scale: the tolerance is multiplied by max(1, |prediction|
scale) so a target in the thousands is held to the same float64 precision."""

TASKS = ("binary_classification", "multiclass_classification", "regression")
_UNITS = {"binary_classification": "log-odds", "regression": "target units",
          "multiclass_classification": "raw score"}
_OUTPUTS = {"binary_classification": "log-odds of the positive class (decision_function)",
            "regression": "prediction in the target's units (predict)",
            "multiclass_classification": "per-class raw score: the softmax logits (decision_function, one "
                                         "column per class)"}

MISSING_GROUP = "(missing)"
CONTRIBUTIONS_SUFFIX = "_contributions.parquet"


@dataclass(eq=False)
class ShapReport(Report):
    """SHAP values of a seeded sample of rows, aggregated to the original columns.

    Attributes
    ----------
    contributions:
        One row per sampled row, one column per original feature: SHAP values in log-odds (binary) or the
        target's units (regression); for multiclass, each row's mean |SHAP| over classes (unsigned).
    data:
        The sampled rows' feature values (same index as ``contributions``).
    row_index:
        Positions of the sampled rows in the frame that was explained.
    group_drivers:
        Per sensitive feature, a frame of mean |SHAP| per original column (columns) within each group (rows).
    transformed_contributions:
        SHAP values per transformed column (``transformed_names``; ``transformed_columns`` names the original
        column each one belongs to); for multiclass shape (rows, transformed columns, classes). Not saved in
        JSON.
    task, output:
        The task, and what the values add up to (checked to ``additivity_tolerance``).
    classes, class_contributions, class_base_values:
        Multiclass only: class names, per class a signed contributions frame like ``contributions``, and per
        class the base value. ``base_value`` is then NaN and ``margin`` has shape (rows, classes).
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
    task: str = "binary_classification"
    output: str = _OUTPUTS["binary_classification"]
    classes: list[str] = field(default_factory=list)
    class_contributions: dict[str, pd.DataFrame] = field(default_factory=dict, repr=False)
    class_base_values: dict[str, float] = field(default_factory=dict)

    title: ClassVar[str] = "SHAP explanation"

    # ------------------------------------------------------------------ views
    @property
    def additivity_ok(self) -> bool:
        return bool(self.additivity_max_error <= self.additivity_tolerance)

    @property
    def importance(self) -> pd.Series:
        """Global importance: mean |SHAP| per original column, largest first (multiclass: also averaged over
        classes)."""
        return self.contributions.abs().mean().sort_values(ascending=False, kind="stable")

    @property
    def importance_by_class(self) -> pd.DataFrame:
        """Multiclass: mean |SHAP| per original column (rows, in :attr:`importance` order) and class (columns).
        Empty for the other tasks."""
        if not self.class_contributions:
            return pd.DataFrame()
        frame = pd.DataFrame({c: v.abs().mean() for c, v in self.class_contributions.items()})
        return frame.loc[list(self.importance.index)]

    @property
    def _unit(self) -> str:
        return _UNITS.get(self.task, "log-odds")

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
        extra: dict[str, Any] = {}
        if self.task != "binary_classification":
            extra = {"task": self.task, "output": self.output}
        if self.class_contributions:
            extra.update(classes=self.classes, base_values=self.class_base_values,
                         importance_by_class={c: col.to_dict() for c, col in self.importance_by_class.items()})
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
            **extra,
        })

    def contributions_frame(self) -> pl.DataFrame:
        """The sampled rows as one polars frame: ``row_index``, ``margin``, ``base_value``, then each column's
        value and its SHAP value (``shap__<column>``). Multiclass: ``margin__<class>`` and
        ``base_value__<class>`` replace ``margin`` and ``base_value``, ``shap__<column>`` is the mean |SHAP| over
        classes and ``shap__<class>__<column>`` each class's signed value."""
        cols: dict[str, Any] = {"row_index": self.row_index.astype(np.int64)}
        if self.class_contributions:
            for j, c in enumerate(self.classes):
                cols[f"margin__{c}"] = self.margin[:, j]
                cols[f"base_value__{c}"] = np.full(len(self.margin), self.class_base_values[c])
        else:
            cols.update(margin=self.margin, base_value=np.full(len(self.margin), self.base_value))
        for col in self.contributions.columns:
            cols[col] = self.data[col].to_numpy()
            cols[f"shap__{col}"] = self.contributions[col].to_numpy()
            for c, frame in self.class_contributions.items():
                cols[f"shap__{c}__{col}"] = frame[col].to_numpy()
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
        out = {"model": self.model_name, "explainer": self.explainer, "rows": len(self.contributions),
               "additivity_max_error": self.additivity_max_error, "additivity_passed": self.additivity_ok,
               "top_features": list(self.importance.index[:5])}
        if self.task != "binary_classification":
            out.update(task=self.task, output=self.output)
        if self.class_contributions:
            by_class = self.importance_by_class
            out["top_features_by_class"] = {c: list(by_class[c].sort_values(ascending=False, kind="stable")
                                                    .index[:5]) for c in self.classes}
        return out

    def _html_body(self) -> str:
        status = ("<span class='wb-ok'>pass</span>" if self.additivity_ok
                  else "<span class='wb-bad'>FAIL</span>")
        head = (f"<p>{esc(self.explainer)} explainer on {len(self.contributions)} sampled rows of model "
                f"<b>{esc(self.model_name)}</b> (seed {self.seed}, {self.seconds:.2f} s). "
                + (f"Values in log-odds; base value {self.base_value:.4f}. " if self.task == "binary_classification"
                   else f"Values explain the {esc(self.output)}" + (
                       f"; base value {self.base_value:.4g}. " if not self.class_contributions else
                       "; importance is mean |SHAP| over rows and classes. "))
                + 
                f"Additivity: max |error| {self.additivity_max_error:.2e} "
                f"(tolerance {self.additivity_tolerance:.0e}) {status}.</p>")
        imp = [{"column": c, "mean |SHAP|": float(v)} for c, v in self.importance.items()]
        body = head + "<h4>Global importance</h4>" + html_table(imp)
        if self.class_contributions:
            by_class = [{"column": col, **{c: float(v) for c, v in row.items()}}
                        for col, row in self.importance_by_class.iterrows()]
            body += "<h4>Importance per class (mean |SHAP|)</h4>" + html_table(by_class)
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
        ax.set_xlabel(f"mean |SHAP value| ({self._unit})")
        ax.set_title(f"Global importance: {self.model_name}")
        return ax

    def plot_beeswarm(self, ax: Any = None, *, max_display: int = 15, class_name: str | None = None) -> Any:
        """One dot per sampled row and column at its SHAP value, coloured by the column's value (numerics;
        categoricals are grey). Multiclass: pass ``class_name`` for that class's signed values (default: the
        mean |SHAP| over classes). Returns the matplotlib Axes."""
        from matplotlib import colormaps

        contributions = self.contributions
        if class_name is not None:
            if class_name not in self.class_contributions:
                known = ", ".join(self.class_contributions) or "none (not a multiclass explanation)"
                raise ParameterError(f"no class '{class_name}'", parameter="class_name", hint=f"use one of: {known}")
            contributions = self.class_contributions[class_name]
        cols = list(contributions.abs().mean().sort_values(ascending=False, kind="stable").index[:max_display])
        ax = _axes(ax, (7, 0.4 * len(cols) + 1.2))
        rng = np.random.default_rng(self.seed)
        cmap = colormaps["coolwarm"]
        for y, col in enumerate(reversed(cols)):
            shap_values = contributions[col].to_numpy()
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
        ax.set_xlabel(f"SHAP value ({self._unit}); colour: numeric value low (blue) to high (red)")
        ax.set_title(f"SHAP values per row: {self.model_name}" + (f", class {class_name}" if class_name else ""))
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
        ax.set_xlabel(f"mean |SHAP value| ({self._unit})")
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


def _shap_values(kind: str, estimator: Any, Xt: np.ndarray, background: np.ndarray, *, task: str = TASKS[0]
                 ) -> tuple[np.ndarray, np.ndarray]:
    """SHAP values and base value(s): binary (rows, cols) and a scalar base; regression the same; multiclass
    (rows, cols, classes) and one base per class."""
    import shap

    if kind == "tree":
        explainer = shap.TreeExplainer(estimator)
    else:
        explainer = shap.LinearExplainer(estimator, (background.mean(axis=0), None))
    values = np.asarray(explainer.shap_values(Xt), dtype=np.float64)
    expected = np.ravel(np.asarray(explainer.expected_value, dtype=np.float64))
    if task == "multiclass_classification":
        return values, expected
    if values.ndim == 3:  # (rows, features, classes): keep the positive class
        values = values[..., -1]
    return values, np.asarray(expected[-1])


def _explainer_kind(fitted_model: FittedModel, estimator: Any) -> Literal["tree", "linear"]:
    """The registered candidate's explainer, else one inferred from the estimator (linear models have
    ``coef_``; scikit-learn's gradient-boosting and tree ensembles take the tree explainer)."""
    spec = CANDIDATES.get(fitted_model.name)
    if spec is not None and spec.explainer in ("tree", "linear"):
        return spec.explainer
    if hasattr(estimator, "coef_"):
        return "linear"
    name = type(estimator).__name__
    if name.startswith(("HistGradientBoosting", "GradientBoosting", "RandomForest", "ExtraTrees", "DecisionTree")):
        return "tree"
    raise ModelError(f"has no registered SHAP explainer for {name}", model=fitted_model.name,
                     hint="explain linear models (coef_) or tree ensembles, or register the candidate's explainer")


def _model_output(task: str, estimator: Any, Xt: np.ndarray) -> np.ndarray:
    """What the SHAP values add up to: the margin (binary), the prediction (regression), the per-class raw
    score (multiclass, rows x classes)."""
    if task == "regression":
        return np.asarray(estimator.predict(Xt), dtype=np.float64).ravel()
    out = np.asarray(estimator.decision_function(Xt), dtype=np.float64)
    return out if task == "multiclass_classification" else out.ravel()


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


def _calibrated_base(estimator: Any) -> Any:
    """The estimator inside a ``CalibratedClassifierCV(ensemble=False)`` (refit on the whole training split), or
    None for any other model."""
    inner = getattr(estimator, "calibrated_classifiers_", None)
    if type(estimator).__name__ != "CalibratedClassifierCV" or not inner:
        return None
    return inner[0].estimator


def explain(fitted_model: FittedModel, X: pd.DataFrame, *, sample_size: int = 1000, seed: int = 0,
            sensitive: Any = None, background: pd.DataFrame | None = None,
            task: Literal["binary_classification", "multiclass_classification", "regression"] = "binary_classification",
            classes: list[str] | None = None) -> ShapReport:
    """Explain a fitted candidate with SHAP on a seeded sample of rows.

    Parameters
    ----------
    fitted_model:
        A candidate from :func:`~workbench.modeling.fit_model` (e.g. ``"hgb"`` or ``"logreg"``): its ``model``
        is ``Pipeline([("prep", ColumnTransformer), ("model", estimator)])``.
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
    task:
        What the model predicts, which decides what is explained: log-odds of the positive class (binary,
        against ``decision_function``), the prediction in target units (regression, against ``predict``), or
        each class's raw score, the softmax logits (multiclass, against ``decision_function``).
    classes:
        Multiclass only: class names in code order (default: the estimator's ``classes_`` as strings).

    Raises
    ------
    ModelError
        The model is a baseline, has no explainer, or its output does not have one column per class.
    ParameterError
        ``X`` is empty, ``sample_size`` is not positive, ``task`` or ``classes`` is invalid, or ``sensitive``
        does not have one row per row of ``X``.
    """
    if task not in TASKS:
        raise ParameterError(f"unknown task {task!r}", parameter="task", hint=f"use one of: {', '.join(TASKS)}")
    if fitted_model.kind != "candidate":
        raise ModelError("has no SHAP explanation (only candidates are explained)", model=fitted_model.name,
                         hint="a baseline's explanation is its description: FittedModel.description")
    if sample_size < 1:
        raise ParameterError(f"must be at least 1, got {sample_size}", parameter="sample_size")
    if len(X) == 0:
        raise ParameterError("has no rows to explain", parameter="X")
    pipe = fitted_model.model
    ct, estimator = pipe.named_steps["prep"], pipe.named_steps["model"]
    calibrated = _calibrated_base(estimator)
    if calibrated is not None:
        # A calibrated model is the selected estimator followed by one monotone map per class: SHAP explains the
        # estimator (what ranks the rows); the calibration only rescales its scores.
        estimator = calibrated
    kind = _explainer_kind(fitted_model, estimator)
    if task == "multiclass_classification":
        classes = [str(c) for c in (classes if classes is not None else getattr(estimator, "classes_", []))]
        n_out = len(getattr(estimator, "classes_", classes))
        if len(classes) < 3 or len(set(classes)) != len(classes) or len(classes) != n_out:
            raise ParameterError(f"expected {n_out} distinct class names (K >= 3), one per model output, got "
                                 f"{classes!r}", parameter="classes", hint="pass the task's classes in code order")
    elif classes is not None:
        raise ParameterError("is only used with task='multiclass_classification'", parameter="classes")
    features = fitted_model.features
    categorical = tuple(c for c in features if c in X.columns and is_text(X[c]))
    check_model_frame(X, ColumnRoles((), categorical, tuple(features)))
    if sensitive is not None:
        if not isinstance(sensitive, pd.DataFrame):
            sensitive = sensitive.to_pandas()
        if len(sensitive) != len(X):
            raise ParameterError(f"has {len(sensitive)} rows but X has {len(X)}", parameter="sensitive",
                                 hint="pass the sensitive columns of the same rows as X")
    rng = np.random.default_rng(seed)
    idx = np.sort(rng.choice(len(X), size=min(sample_size, len(X)), replace=False))
    rows = X.iloc[idx][fitted_model.features].reset_index(drop=True)
    start = time.perf_counter()
    Xt = np.asarray(ct.transform(rows), dtype=np.float64)
    bg = np.asarray(ct.transform((background if background is not None else X)[fitted_model.features]),
                    dtype=np.float64) if kind == "linear" else Xt
    values, base = _shap_values(kind, estimator, Xt, bg, task=task)
    seconds = time.perf_counter() - start
    margin = _model_output(task, estimator, Xt)
    owners = _column_owners(ct)
    owners_arr = np.asarray(owners, dtype=object)
    tolerance = ADDITIVITY_TOLERANCE

    def per_column(v: np.ndarray) -> pd.DataFrame:
        return pd.DataFrame({col: v[:, owners_arr == col].sum(axis=1) for col in fitted_model.features})

    class_contributions: dict[str, pd.DataFrame] = {}
    class_base: dict[str, float] = {}
    if task == "multiclass_classification":
        k = len(classes)
        if values.ndim != 3 or values.shape[2] != k or margin.shape != (len(rows), k) or base.size != k:
            raise ModelError(f"SHAP values of shape {values.shape} and output {margin.shape} do not have one "
                             f"column per class ({k})", model=fitted_model.name,
                             hint="explain a multiclass model trained on the class codes 0..K-1")
        error = float(np.max(np.abs(base + values.sum(axis=1) - margin))) if len(margin) else 0.0
        class_contributions = {c: per_column(values[..., j]) for j, c in enumerate(classes)}
        class_base = {c: float(base[j]) for j, c in enumerate(classes)}
        contrib = sum(f.abs() for f in class_contributions.values()) / k
        base_value = float("nan")
    else:
        base_value = float(base)
        error = float(np.max(np.abs(base_value + values.sum(axis=1) - margin))) if len(margin) else 0.0
        contrib = per_column(values)
        if task == "regression" and len(margin):
            tolerance = ADDITIVITY_TOLERANCE * max(1.0, float(np.max(np.abs(margin))))
    drivers, sizes = ({}, {}) if sensitive is None else _group_drivers(
        contrib, sensitive.iloc[idx].reset_index(drop=True))
    log.info("%s SHAP for %s (%s) on %d rows in %.2f s; additivity max error %.2e",
             kind, fitted_model.name, task, len(rows), seconds, error)
    if error > tolerance:
        log.warning("SHAP additivity check failed for %s: max error %.2e > %.0e",
                    fitted_model.name, error, tolerance)
    return ShapReport(
        model_name=fitted_model.name, explainer=kind, seed=int(seed), base_value=base_value, contributions=contrib,
        data=rows, row_index=idx, margin=margin, additivity_max_error=error, group_drivers=drivers,
        group_sizes=sizes, transformed_names=[str(n) for n in ct.get_feature_names_out()],
        transformed_columns=owners, transformed_contributions=values, seconds=seconds,
        additivity_tolerance=tolerance, task=task, output=_OUTPUTS[task], classes=list(classes or []),
        class_contributions=class_contributions, class_base_values=class_base,
    )
