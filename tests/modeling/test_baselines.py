"""Baselines: the majority prior and the one-feature rule, fitted and scored like candidates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from workbench.errors import ModelError
from workbench.modeling import BASELINES, ColumnRoles, OneFeatureRule, fit_model, make_baseline

ROLES = ColumnRoles(("age", "noise"), ("relationship", "city"), ("age", "relationship", "noise", "city"))


def make_frame(n: int = 800, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    """'relationship' decides the target (Husband/Wife mostly positive); the other columns barely matter."""
    rng = np.random.default_rng(seed)
    rel = rng.choice(["Husband", "Wife", "Own-child", "Unmarried"], n, p=[0.4, 0.1, 0.3, 0.2])
    p = np.where(np.isin(rel, ["Husband", "Wife"]), 0.7, 0.05)
    y = (rng.random(n) < p).astype(int)
    X = pd.DataFrame({
        "age": pd.Series(rng.normal(40, 10, n), dtype=np.float64),
        "relationship": pd.Series(rel, dtype=object),
        "noise": pd.Series(rng.normal(0, 1, n), dtype=np.float64),
        "city": pd.Series(rng.choice(["a", "b", ""], n), dtype=object),
    })
    X.loc[::23, "age"] = np.nan
    X.loc[::19, "relationship"] = ""
    return X, y


def test_majority_predicts_the_prior():
    X, y = make_frame()
    fitted = fit_model("majority", X, y, seed=0, contract=ROLES)
    p = fitted.positive_proba(X.head(5))
    np.testing.assert_allclose(p, y.mean())
    assert fitted.kind == "baseline" and not fitted.onnx_convertible
    assert fitted.description == f"always predicts P(positive) = {y.mean():.3f}, the training positive rate"


def test_rule_picks_the_deciding_feature_and_describes_it():
    X, y = make_frame()
    fitted = fit_model("rule", X, y, seed=0, contract=ROLES)
    rule = fitted.model
    assert rule.feature_ == "relationship"
    assert max(rule.scores_, key=rule.scores_.get) == "relationship"
    assert fitted.description.startswith(
        "one-feature rule on relationship: predicts positive when relationship in {Wife, Husband} (")
    assert "relationship in {Own-child, Unmarried, (unseen)}: P(positive) = 0.06" in fitted.description
    assert [leaf["p_positive"] for leaf in rule.rule_] == sorted((leaf["p_positive"] for leaf in rule.rule_),
                                                                 reverse=True)
    assert fitted.extra["rule_scores"] == rule.scores_
    assert set(fitted.to_dict()) >= {"name", "kind", "description", "rule", "rule_scores"}


def test_rule_on_a_numeric_feature_reads_as_thresholds():
    rng = np.random.default_rng(1)
    x = rng.uniform(0, 100, 600)
    y = (x + rng.normal(0, 10, 600) > 60).astype(int)
    X = pd.DataFrame({"x": x, "c": pd.Series(rng.choice(["u", "v"], 600), dtype=object)})
    rule = OneFeatureRule(numeric_features=("x",), categorical_features=("c",), random_state=0).fit(X, y)
    assert rule.feature_ == "x"
    assert any(leaf["condition"].startswith("x > ") for leaf in rule.rule_)
    assert rule.description_.startswith("predicts positive when x > ")
    assert len(rule.rule_) <= 4 and sum(leaf["n"] for leaf in rule.rule_) == 600


def test_rule_handles_missing_and_unseen_at_predict():
    X, y = make_frame()
    rule = make_baseline("rule", ROLES, seed=0).fit(X, y)
    new = X.head(4).copy()
    new["relationship"] = ["Cousin", "", None, "Wife"]
    p = rule.predict_proba(new)
    assert p.shape == (4, 2) and np.isfinite(p).all()
    np.testing.assert_allclose(p.sum(axis=1), 1.0)
    assert set(rule.predict(new)) <= {0, 1}


def test_rule_follows_the_sklearn_contract():
    rule = OneFeatureRule(numeric_features=("age",), random_state=3)
    assert rule.get_params()["random_state"] == 3 and not hasattr(rule, "feature_")
    with pytest.raises(NotFittedError):
        rule.predict_proba(make_frame(10)[0])
    X, y = make_frame()
    twin = clone(rule)
    assert twin.fit(X, y) is twin and twin.feature_ == "age"
    assert all(not k.endswith("_") for k in vars(clone(twin)))


def test_rule_is_deterministic_for_a_seed():
    X, y = make_frame()
    a = fit_model("rule", X, y, seed=5, contract=ROLES)
    b = fit_model("rule", X, y, seed=5, contract=ROLES)
    assert a.model.scores_ == b.model.scores_ and a.description == b.description
    np.testing.assert_array_equal(a.positive_proba(X), b.positive_proba(X))


def test_rule_infers_kinds_from_dtypes_without_lists():
    X, y = make_frame()
    rule = OneFeatureRule(random_state=0).fit(X, y)
    assert set(rule.scores_) == set(X.columns) and rule.feature_ == "relationship"


def test_unknown_baseline_name():
    assert set(BASELINES) == {"majority", "rule"}
    with pytest.raises(ModelError, match="majority, rule"):
        make_baseline("median", ROLES, seed=0)


def test_rule_needs_two_classes():
    X, _ = make_frame(50)
    with pytest.raises(ValueError, match="two classes"):
        OneFeatureRule().fit(X, np.zeros(50))
