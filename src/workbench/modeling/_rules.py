"""One-feature rules for multiclass classification and regression (private; public through
:mod:`workbench.modeling.baselines`).

Both are a depth-``max_depth`` decision tree on the single feature that cross-validates best, like the binary
:class:`~workbench.modeling.baselines.OneFeatureRule`, and describe themselves in words. Categories are
ordinal-encoded in order of the target's mean (regression) or of the rate of each category's most frequent
class (multiclass), so that a threshold on the code picks a set of categories; a missing category becomes
``"__missing__"``, a missing number the training median, an unseen category code -1.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, RegressorMixin
from sklearn.metrics import f1_score, mean_absolute_error
from sklearn.model_selection import KFold, StratifiedKFold
from sklearn.preprocessing import OrdinalEncoder
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor
from sklearn.utils.validation import check_is_fitted

from .frame import IMPUTED_CATEGORY, MISSING_CATEGORY

__all__ = ["OneFeatureClassRule", "OneFeatureRegressionRule"]


def _as_categories(values: Any) -> np.ndarray:
    s = pd.Series(values, dtype=object)
    s = s.where(s.notna() & (s != MISSING_CATEGORY), IMPUTED_CATEGORY)
    return s.astype(str).to_numpy(dtype=object)


class _Coder:
    """One raw column -> the number the tree splits on; ``order_key(category rows' targets) -> sort key``."""

    def __init__(self, kind: str, values: Any, y: np.ndarray, order_key: Any) -> None:
        self.kind = kind
        self.order: list[str] = []
        if kind == "numeric":
            x = np.asarray(values, dtype=np.float64)
            self.fill = float(np.nanmedian(x)) if np.isfinite(x).any() else 0.0
            return
        cats = _as_categories(values)
        keys = {c: order_key(y[cats == c]) for c in np.unique(cats)}
        self.order = sorted(keys, key=lambda c: (keys[c], c))
        known = np.array(self.order, dtype=object).reshape(-1, 1)
        self.encoder = OrdinalEncoder(categories=[self.order], handle_unknown="use_encoded_value",
                                      unknown_value=-1).fit(known)

    def __call__(self, values: Any) -> np.ndarray:
        if self.kind == "numeric":
            x = np.asarray(values, dtype=np.float64)
            return np.where(np.isnan(x), self.fill, x).reshape(-1, 1)
        return self.encoder.transform(_as_categories(values).reshape(-1, 1))

    def condition(self, feature: str, lo: float, hi: float) -> str:
        if self.kind != "numeric":
            cats = [c if c != IMPUTED_CATEGORY else "(missing)" for i, c in enumerate(self.order) if lo < i <= hi]
            cats += ["(unseen)"] if lo < -1 <= hi else []
            shown = ", ".join(cats[:6]) + (f", ... (+{len(cats) - 6} more)" if len(cats) > 6 else "")
            return f"{feature} in {{{shown}}}"
        if np.isinf(lo) and np.isinf(hi):
            return f"any {feature}"
        if np.isinf(lo):
            return f"{feature} <= {hi:g}"
        if np.isinf(hi):
            return f"{feature} > {lo:g}"
        return f"{lo:g} < {feature} <= {hi:g}"


def _leaves(tree: Any, feature: str, coder: _Coder) -> list[dict]:
    t = tree.tree_
    out: list[dict] = []

    def walk(node: int, lo: float, hi: float) -> None:
        if t.children_left[node] == -1:
            out.append({"condition": coder.condition(feature, lo, hi), "value": t.value[node][0].copy(),
                        "n": int(t.n_node_samples[node]), "low": lo, "high": hi})
            return
        thr = float(t.threshold[node])
        walk(int(t.children_left[node]), lo, min(hi, thr))
        walk(int(t.children_right[node]), max(lo, thr), hi)

    walk(0, -np.inf, np.inf)
    return out


class _OneFeature(BaseEstimator):
    """Shared fitting: pick the feature by cross-validated score, refit the tree on it."""

    def __init__(self, *, numeric_features: tuple[str, ...] = (), categorical_features: tuple[str, ...] = (),
                 max_depth: int = 2, cv: int = 3, random_state: int | None = None) -> None:
        self.numeric_features = numeric_features
        self.categorical_features = categorical_features
        self.max_depth = max_depth
        self.cv = cv
        self.random_state = random_state

    # subclasses: _tree(), _order_key(y), _score(y_true, tree, Xc) (greater is better), _folds(X, y)
    def _kinds(self, X: pd.DataFrame) -> dict[str, str]:
        if not self.numeric_features and not self.categorical_features:
            return {c: "numeric" if pd.api.types.is_float_dtype(X[c]) else "categorical" for c in X.columns}
        kinds = {c: "numeric" for c in self.numeric_features}
        kinds.update({c: "categorical" for c in self.categorical_features})
        return kinds

    def _fit_rule(self, X: pd.DataFrame, y: np.ndarray) -> None:
        if not isinstance(X, pd.DataFrame):
            raise TypeError("a one-feature rule needs a pandas DataFrame (see workbench.modeling.to_model_frame)")
        kinds = self._kinds(X)
        folds = self._folds(X, y)
        self.scores_: dict[str, float] = {}
        for col, kind in kinds.items():
            x = X[col].to_numpy()
            vals = []
            for tr, va in folds:
                coder = _Coder(kind, x[tr], y[tr], self._order_key)
                tree = self._tree().fit(coder(x[tr]), y[tr])
                vals.append(self._score(y[va], tree, coder(x[va])))
            self.scores_[col] = float(np.mean(vals))
        self.feature_ = max(kinds, key=lambda c: self.scores_[c])  # first of equals wins: deterministic
        self.feature_kind_ = kinds[self.feature_]
        x = X[self.feature_].to_numpy()
        self.coder_ = _Coder(self.feature_kind_, x, y, self._order_key)
        self.tree_ = self._tree().fit(self.coder_(x), y)
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.leaves_ = _leaves(self.tree_, self.feature_, self.coder_)

    def _x(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "tree_")
        return self.coder_(X[self.feature_].to_numpy())


class OneFeatureRegressionRule(RegressorMixin, _OneFeature):
    """A depth-2 regression tree on the one feature with the lowest cross-validated MAE."""

    def _tree(self) -> DecisionTreeRegressor:
        return DecisionTreeRegressor(max_depth=self.max_depth, random_state=self.random_state)

    @staticmethod
    def _order_key(y: np.ndarray) -> float:
        return float(np.mean(y)) if y.size else 0.0

    @staticmethod
    def _score(y: np.ndarray, tree: Any, Xc: np.ndarray) -> float:
        return -float(mean_absolute_error(y, tree.predict(Xc)))

    def _folds(self, X: pd.DataFrame, y: np.ndarray) -> list:
        return list(KFold(self.cv, shuffle=True, random_state=self.random_state).split(X))

    def fit(self, X: pd.DataFrame, y: Any) -> OneFeatureRegressionRule:
        """Pick the feature by cross-validated MAE and fit the tree on it. Returns ``self``."""
        y = np.asarray(y, dtype=np.float64)
        self._fit_rule(X, y)
        self.rule_ = [{"condition": leaf["condition"], "prediction": float(leaf["value"][0]), "n": leaf["n"]}
                      for leaf in sorted(self.leaves_, key=lambda leaf: -float(leaf["value"][0]))]
        self.description_ = "; ".join(f"{r['condition']}: predicts {r['prediction']:.4g} (n={r['n']:,})"
                                      for r in self.rule_)
        return self

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.tree_.predict(self._x(X))


class OneFeatureClassRule(ClassifierMixin, _OneFeature):
    """A depth-2 classification tree on the one feature with the best cross-validated macro-F1, for class
    codes 0..K-1. ``class_names`` (optional) are used in the description."""

    def __init__(self, *, numeric_features: tuple[str, ...] = (), categorical_features: tuple[str, ...] = (),
                 max_depth: int = 2, cv: int = 3, random_state: int | None = None,
                 class_names: tuple[str, ...] = ()) -> None:
        super().__init__(numeric_features=numeric_features, categorical_features=categorical_features,
                         max_depth=max_depth, cv=cv, random_state=random_state)
        self.class_names = class_names

    def _tree(self) -> DecisionTreeClassifier:
        return DecisionTreeClassifier(max_depth=self.max_depth, random_state=self.random_state)

    @staticmethod
    def _order_key(y: np.ndarray) -> tuple:
        if not y.size:
            return (-1, 0.0)
        counts = np.bincount(y)
        top = int(np.argmax(counts))
        return (top, float(counts[top] / y.size))

    @staticmethod
    def _score(y: np.ndarray, tree: Any, Xc: np.ndarray) -> float:
        return float(f1_score(y, tree.predict(Xc), average="macro", zero_division=0.0))

    def _folds(self, X: pd.DataFrame, y: np.ndarray) -> list:
        cv = min(self.cv, int(np.bincount(y).min())) if y.size else self.cv
        splitter = StratifiedKFold(max(cv, 2), shuffle=True, random_state=self.random_state)
        return list(splitter.split(X, y))

    def fit(self, X: pd.DataFrame, y: Any) -> OneFeatureClassRule:
        """Pick the feature by cross-validated macro-F1 and fit the tree on it. Returns ``self``."""
        y = np.asarray(y, dtype=np.int64)
        self.classes_ = np.unique(y)
        self._fit_rule(X, y)
        names = list(self.class_names) or [str(c) for c in self.classes_]
        self.rule_ = []
        for leaf in self.leaves_:
            shares = leaf["value"] / leaf["value"].sum()
            k = int(np.argmax(shares))
            self.rule_.append({"condition": leaf["condition"], "predicts": names[int(self.tree_.classes_[k])],
                               "share": float(shares[k]), "n": leaf["n"]})
        self.description_ = "; ".join(f"{r['condition']}: {r['predicts']} ({r['share']:.0%} of n={r['n']:,})"
                                      for r in self.rule_)
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = self.tree_.predict_proba(self._x(X))
        out = np.zeros((p.shape[0], len(self.classes_)))
        for j, c in enumerate(self.tree_.classes_):
            out[:, list(self.classes_).index(c)] = p[:, j]
        return out

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[np.argmax(self.predict_proba(X), axis=1)]
