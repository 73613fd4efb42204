"""The model frame: the single boundary where polars becomes pandas for scikit-learn and SHAP.

:func:`to_model_frame` selects the data contract's feature columns in contract order. Numeric features become
float64 (a null becomes NaN); categorical features become object columns of ``str`` in which a null becomes
:data:`MISSING_CATEGORY`, the empty string. The pipelines replace that empty string by the category
``"__missing__"`` themselves, so missing values are decided inside the model, the same way in scikit-learn
and in ONNX (skl2onnx only converts a string imputer whose ``missing_values`` is a string; ``None``/NaN
cannot travel in an ONNX string tensor). The loaders already map empty text to null, so no real category
is ever ``""``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import polars as pl

from ..errors import ContractError

__all__ = ["MISSING_CATEGORY", "IMPUTED_CATEGORY", "ColumnRoles", "column_roles", "to_model_frame",
           "check_model_frame", "is_text"]

MISSING_CATEGORY = ""
"""What a missing categorical value is at the model boundary (model frame, ONNX string input)."""

IMPUTED_CATEGORY = "__missing__"
"""The category the pipelines give a missing categorical value."""


@dataclass(frozen=True)
class ColumnRoles:
    """The feature columns a model uses, split by kind, in contract order."""

    numeric: tuple[str, ...]
    categorical: tuple[str, ...]
    order: tuple[str, ...]

    @property
    def features(self) -> list[str]:
        return list(self.order)


def is_text(column: pd.Series) -> bool:
    """True for an object or string column (pandas 3 infers ``str`` for text)."""
    return pd.api.types.is_object_dtype(column) or pd.api.types.is_string_dtype(column)


def column_roles(source: Any) -> ColumnRoles:
    """Feature roles from a data contract or from a model frame (float columns numeric, object categorical).

    Parameters
    ----------
    source:
        A :class:`~workbench.data.DataContract` (anything with ``features``, ``numeric_features`` and
        ``categorical_features``), a :class:`ColumnRoles`, or a pandas frame made by :func:`to_model_frame`.
    """
    if isinstance(source, ColumnRoles):
        return source
    if isinstance(source, pd.DataFrame):
        numeric = [c for c in source.columns if pd.api.types.is_float_dtype(source[c])]
        categorical = [c for c in source.columns if is_text(source[c])]
        other = [c for c in source.columns if c not in set(numeric) | set(categorical)]
        if other:
            raise ContractError(f"model frame columns of unexpected type: {', '.join(map(str, other))}",
                                column=str(other[0]),
                                hint="build the frame with workbench.modeling.to_model_frame")
        return ColumnRoles(tuple(numeric), tuple(categorical), tuple(source.columns))
    try:
        numeric, categorical = list(source.numeric_features), list(source.categorical_features)
        order = [c for c in source.features if c in set(numeric) | set(categorical)]
    except AttributeError:
        raise TypeError("expected a DataContract, ColumnRoles or pandas DataFrame, "
                        f"got {type(source).__name__}") from None
    return ColumnRoles(tuple(numeric), tuple(categorical), tuple(order))


def to_model_frame(df: pl.DataFrame | pd.DataFrame, contract: Any) -> pd.DataFrame:
    """Return the contract's feature columns as the pandas frame every model and explainer takes.

    Parameters
    ----------
    df:
        A polars frame with (at least) the contract's feature columns. A pandas frame is converted first.
    contract:
        The :class:`~workbench.data.DataContract` (or :class:`ColumnRoles`).

    Returns
    -------
    pandas.DataFrame
        Columns in contract order; numerics float64 with NaN for nulls, categoricals object ``str`` with
        :data:`MISSING_CATEGORY` for nulls; a fresh ``RangeIndex``.

    Raises
    ------
    ContractError
        A feature column is missing, or a numeric feature holds values that are not numbers.
    """
    roles = column_roles(contract)
    if isinstance(df, pd.DataFrame):
        df = pl.from_pandas(df)
    missing = [c for c in roles.order if c not in df.columns]
    if missing:
        raise ContractError(f"lacks feature columns: {', '.join(missing)}", column=missing[0],
                            hint="supply every feature column named in the data contract")
    numeric = set(roles.numeric)
    index = pd.RangeIndex(df.height)
    columns: dict[str, pd.Series] = {}
    for name in roles.order:
        s = df.get_column(name)
        if name in numeric:
            converted = s.cast(pl.Float64, strict=False)
            if converted.null_count() > s.null_count():
                raise ContractError(f"has values that are not numbers (type {s.dtype})", column=name,
                                    hint="the contract says this column is numeric: fix or convert the data")
            columns[name] = pd.Series(converted.fill_nan(None).to_numpy(), index=index, dtype=np.float64)
        else:
            # dtype=object explicitly: pandas 3 would otherwise infer its "str" dtype.
            text = s.cast(pl.String).fill_null(MISSING_CATEGORY).to_numpy()
            columns[name] = pd.Series(text, index=index, dtype=object)
    return pd.DataFrame(columns)


def check_model_frame(X: pd.DataFrame, roles: ColumnRoles) -> None:
    """Refuse a frame the pipelines would score differently from ONNX (None/NaN in a categorical column).

    Raises
    ------
    ContractError
        A feature column is missing, or a categorical column holds ``None``/NaN instead of
        :data:`MISSING_CATEGORY`.
    """
    if not isinstance(X, pd.DataFrame):
        raise ContractError(f"expected a pandas DataFrame, got {type(X).__name__}",
                            hint="build the frame with workbench.modeling.to_model_frame")
    missing = [c for c in roles.order if c not in X.columns]
    if missing:
        raise ContractError(f"model frame lacks feature columns: {', '.join(missing)}", column=missing[0],
                            hint="build the frame with workbench.modeling.to_model_frame")
    for name in roles.categorical:
        if X[name].isna().any():
            raise ContractError(
                "categorical column holds None/NaN; the pipelines expect missing categories as '' ",
                column=name, hint="build the frame with workbench.modeling.to_model_frame",
            )
