"""Baselines: the bar a candidate has to clear, fitted and evaluated exactly like a candidate.

* ``"majority"`` predicts the training prior for every row (``DummyClassifier(strategy="prior")``).
* ``"rule"`` is :class:`OneFeatureRule`: a depth-2 decision tree on the single feature with the best
  cross-validated ROC-AUC, described in words (``relationship in {Husband, Wife}: P(positive) = 0.45``).

Baselines are not ONNX candidates and have no SHAP explanation; their description is the explanation.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.dummy import DummyClassifier, DummyRegressor
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from sklearn.tree import DecisionTreeClassifier
from sklearn.utils.validation import check_is_fitted

from ..errors import ModelError
from ._rules import OneFeatureClassRule, OneFeatureRegressionRule
from ._rules import _Coder as _RuleCoder
from .candidates import apply_params, unknown_model_error
from .frame import IMPUTED_CATEGORY, column_roles

__all__ = ["BaselineSpec", "BASELINES", "TASK_BASELINES", "baselines_for", "OneFeatureRule", "OneFeatureClassRule",
           "OneFeatureRegressionRule", "make_baseline", "describe_baseline"]


def _positive_rate(y: np.ndarray) -> float:
    return float(np.mean(y)) if len(y) else 0.0


def _Coder(kind: str, values: Any, y: np.ndarray) -> _RuleCoder:  # noqa: N802 - reads like the class it builds
    """The one-feature rules' coder (:mod:`._rules`) with categories in order of their positive rate: a threshold on
    the code is then the best two-set split."""
    return _RuleCoder(kind, values, y, _positive_rate)


class OneFeatureRule(ClassifierMixin, BaseEstimator):
    """A depth-``max_depth`` decision tree on the one feature that ranks the target best.

    Each feature is scored by the mean ROC-AUC of the tree over ``cv`` stratified folds of the training data;
    the best one is refitted on all of it. Categories are ordinal-encoded in order of their positive rate (so
    a threshold picks a set of categories), missing categories become ``"__missing__"``, missing numbers the
    training median, and categories unseen in training take code -1 (the lowest-rate side).

    Parameters
    ----------
    numeric_features, categorical_features:
        Candidate columns, by kind. When both are empty, float columns count as numeric and the rest as
        categorical.
    max_depth:
        Depth of the tree (2: at most four leaves).
    cv:
        Number of folds used to pick the feature.
    random_state:
        Seed of the folds and the tree.
    """

    def __init__(self, *, numeric_features: tuple[str, ...] = (), categorical_features: tuple[str, ...] = (),
                 max_depth: int = 2, cv: int = 3, random_state: int | None = None) -> None:
        self.numeric_features = numeric_features
        self.categorical_features = categorical_features
        self.max_depth = max_depth
        self.cv = cv
        self.random_state = random_state

    def _kinds(self, X: pd.DataFrame) -> dict[str, str]:
        if not self.numeric_features and not self.categorical_features:
            return {c: "numeric" if pd.api.types.is_float_dtype(X[c]) else "categorical" for c in X.columns}
        kinds = {c: "numeric" for c in self.numeric_features}
        kinds.update({c: "categorical" for c in self.categorical_features})
        return kinds

    def _tree(self) -> DecisionTreeClassifier:
        return DecisionTreeClassifier(max_depth=self.max_depth, random_state=self.random_state)

    def fit(self, X: pd.DataFrame, y: Any) -> OneFeatureRule:
        """Pick the feature by cross-validated ROC-AUC and fit the tree on it. Returns ``self``."""
        if not isinstance(X, pd.DataFrame):
            raise TypeError("OneFeatureRule needs a pandas DataFrame (see workbench.modeling.to_model_frame)")
        y = np.asarray(y)
        self.classes_ = np.unique(y)
        if len(self.classes_) != 2:
            raise ValueError(f"OneFeatureRule needs two classes, got {len(self.classes_)}")
        y01 = (y == self.classes_[1]).astype(np.int64)
        kinds = self._kinds(X)
        folds = list(StratifiedKFold(self.cv, shuffle=True, random_state=self.random_state).split(X, y01))
        self.scores_: dict[str, float] = {}
        for col, kind in kinds.items():
            x = X[col].to_numpy()
            aucs = []
            for tr, va in folds:
                coder = _Coder(kind, x[tr], y01[tr])
                tree = self._tree().fit(coder(x[tr]), y01[tr])
                aucs.append(roc_auc_score(y01[va], tree.predict_proba(coder(x[va]))[:, -1]))
            self.scores_[col] = float(np.mean(aucs))
        self.feature_ = max(kinds, key=lambda c: self.scores_[c])  # first of equals wins: deterministic
        self.feature_kind_ = kinds[self.feature_]
        x = X[self.feature_].to_numpy()
        self.coder_ = _Coder(self.feature_kind_, x, y01)
        self.tree_ = self._tree().fit(self.coder_(x), y01)
        self.n_features_in_ = X.shape[1]
        self.feature_names_in_ = np.asarray(X.columns, dtype=object)
        self.rule_ = _leaves(self.tree_, self.feature_, self.coder_)
        leaves = "; ".join(f"{leaf['condition']}: P(positive) = {leaf['p_positive']:.2f} (n={leaf['n']:,})"
                           for leaf in self.rule_)
        self.description_ = f"{_headline(self.feature_, self.coder_, self.rule_)} ({leaves})"
        return self

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        check_is_fitted(self, "tree_")
        p = self.tree_.predict_proba(self.coder_(X[self.feature_].to_numpy()))
        pos = p[:, list(self.tree_.classes_).index(1)] if 1 in self.tree_.classes_ else np.zeros(len(p))
        return np.column_stack([1.0 - pos, pos])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return self.classes_[(self.predict_proba(X)[:, 1] >= 0.5).astype(int)]


def _leaves(tree: DecisionTreeClassifier, feature: str, coder: _RuleCoder) -> list[dict]:
    """The tree's leaves as intervals of the encoded feature, in words, highest positive rate first."""
    t = tree.tree_
    pos_col = list(tree.classes_).index(1) if 1 in tree.classes_ else None
    out: list[dict] = []

    def walk(node: int, lo: float, hi: float) -> None:
        if t.children_left[node] == -1:
            value = t.value[node][0]
            p = float(value[pos_col] / value.sum()) if pos_col is not None else 0.0
            out.append({"condition": _condition(feature, coder, lo, hi), "p_positive": p,
                        "n": int(t.n_node_samples[node]), "low": lo, "high": hi})
            return
        thr = float(t.threshold[node])
        walk(int(t.children_left[node]), lo, min(hi, thr))
        walk(int(t.children_right[node]), max(lo, thr), hi)

    walk(0, -np.inf, np.inf)
    return sorted(out, key=lambda leaf: -leaf["p_positive"])


def _categories(coder: _RuleCoder, lo: float, hi: float) -> list[str]:
    cats = [c if c != IMPUTED_CATEGORY else "(missing)" for i, c in enumerate(coder.order) if lo < i <= hi]
    return cats + (["(unseen)"] if lo < -1 <= hi else [])


def _category_set(feature: str, cats: list[str]) -> str:
    shown = ", ".join(cats[:6]) + (f", ... (+{len(cats) - 6} more)" if len(cats) > 6 else "")
    return f"{feature} in {{{shown}}}"


def _condition(feature: str, coder: _RuleCoder, lo: float, hi: float) -> str:
    return coder.condition(feature, lo, hi)


def _headline(feature: str, coder: _RuleCoder, leaves: list[dict]) -> str:
    """The rule in one phrase: when it predicts positive (P >= 0.5), merging neighbouring leaves."""
    positive = sorted((leaf for leaf in leaves if leaf["p_positive"] >= 0.5), key=lambda leaf: leaf["low"])
    if not positive:
        return f"never predicts positive at 0.5; the highest rate is where {leaves[0]['condition']}"
    if len(positive) == len(leaves):
        return "predicts positive for every row at 0.5"
    spans: list[list[float]] = []
    for leaf in positive:
        if spans and spans[-1][1] == leaf["low"]:
            spans[-1][1] = leaf["high"]
        else:
            spans.append([leaf["low"], leaf["high"]])
    if coder.kind != "numeric":
        return "predicts positive when " + _category_set(
            feature, [c for lo, hi in spans for c in _categories(coder, lo, hi)])
    return "predicts positive when " + " or ".join(_condition(feature, coder, lo, hi) for lo, hi in spans)


@dataclass(frozen=True)
class BaselineSpec:
    """A registered baseline."""

    name: str
    description: str
    build: Callable[..., Any]


BASELINES: dict[str, BaselineSpec] = {
    "majority": BaselineSpec("majority", "predicts the training prior for every row",
                             lambda roles, seed: DummyClassifier(strategy="prior")),
    "rule": BaselineSpec("rule", "depth-2 tree on the single best feature (cross-validated ROC-AUC)",
                         lambda roles, seed: OneFeatureRule(numeric_features=roles.numeric,
                                                            categorical_features=roles.categorical,
                                                            random_state=seed)),
}
"""The binary task's baselines (every task's: :data:`TASK_BASELINES`)."""

TASK_BASELINES: dict[str, dict[str, BaselineSpec]] = {
    "binary_classification": BASELINES,
    "multiclass_classification": {
        "majority": BaselineSpec("majority", "predicts the training class shares for every row",
                                 lambda roles, seed, **_: DummyClassifier(strategy="prior")),
        "rule": BaselineSpec("rule", "depth-2 tree on the single best feature (cross-validated macro-F1)",
                             lambda roles, seed, classes=(), **_: OneFeatureClassRule(
                                 numeric_features=roles.numeric, categorical_features=roles.categorical,
                                 random_state=seed, class_names=tuple(classes or ()))),
    },
    "regression": {
        "median": BaselineSpec("median", "predicts the training median for every row",
                               lambda roles, seed, **_: DummyRegressor(strategy="median")),
        "mean": BaselineSpec("mean", "predicts the training mean for every row",
                             lambda roles, seed, **_: DummyRegressor(strategy="mean")),
        "rule": BaselineSpec("rule", "depth-2 regression tree on the single best feature (cross-validated MAE)",
                             lambda roles, seed, **_: OneFeatureRegressionRule(
                                 numeric_features=roles.numeric, categorical_features=roles.categorical,
                                 random_state=seed)),
    },
}


def baselines_for(task: str) -> dict[str, BaselineSpec]:
    """The baselines of a task (``brief.task``)."""
    return TASK_BASELINES[getattr(task, "name", task)]


def make_baseline(name: str, contract: Any, *, seed: int, params: Mapping[str, Any] | None = None,
                  task: str = "binary_classification", classes: list[str] | None = None) -> Any:
    """Build an unfitted baseline of the task (binary: ``"majority"``, ``"rule"``; regression: ``"median"``,
    ``"mean"``, ``"rule"``). ``classes`` names the multiclass codes in the rule's description.

    Raises
    ------
    ModelError
        Unknown baseline name or parameter.
    """
    catalogue = baselines_for(task)
    spec = catalogue.get(name)
    if spec is None:
        raise unknown_model_error(name, list(catalogue))
    built = (spec.build(column_roles(contract), int(seed)) if catalogue is BASELINES
             else spec.build(column_roles(contract), int(seed), classes=classes))
    return apply_params(built, params, name=name)


def describe_baseline(model: Any, *, classes: list[str] | None = None) -> str:
    """The fitted baseline's rule in words."""
    if isinstance(model, OneFeatureRule):
        check_is_fitted(model, "tree_")
        return f"one-feature rule on {model.feature_}: {model.description_}"
    if isinstance(model, OneFeatureRegressionRule | OneFeatureClassRule):
        check_is_fitted(model, "tree_")
        return f"one-feature rule on {model.feature_}: {model.description_}"
    if isinstance(model, DummyClassifier):
        check_is_fitted(model, "class_prior_")
        if len(model.class_prior_) > 2:
            names = list(classes) if classes else [str(c) for c in model.classes_]
            shares = ", ".join(f"{n} {p:.3f}" for n, p in zip(names, model.class_prior_, strict=False))
            return f"always predicts the training class shares ({shares}); label: the most frequent class"
        prior = float(model.class_prior_[-1])
        return f"always predicts P(positive) = {prior:.3f}, the training positive rate"
    if isinstance(model, DummyRegressor):
        check_is_fitted(model, "constant_")
        return f"always predicts {float(np.ravel(model.constant_)[0]):.4g}, the training {model.strategy}"
    raise ModelError(f"not a workbench baseline: {type(model).__name__}")
