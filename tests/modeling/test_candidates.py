"""Candidate pipelines: the model frame, building, fitting, determinism, errors and ONNX parity."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest
from threadpoolctl import threadpool_limits

from workbench.brief import Brief
from workbench.data import infer_contract
from workbench.data.io import target_vector
from workbench.errors import ContractError, ModelError, WorkbenchError
from workbench.modeling import (
    CANDIDATES,
    MISSING_CATEGORY,
    ColumnRoles,
    fit_model,
    make_candidate,
    to_model_frame,
)

log = logging.getLogger(__name__)
# skl2onnx 1.20 under protobuf 6.33 warns while building HGB nodes; the conversion itself is correct.
ONNX_WARNING = "ignore:Field onnx.AttributeProto:DeprecationWarning"
ADULT = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """OpenMP reads OMP_NUM_THREADS once; on a busy machine HGB's spinning threads can slow a fit tenfold."""
    with threadpool_limits(limits=1):
        yield


def make_data(n: int = 600, seed: int = 0) -> pl.DataFrame:
    """Two numerics and two categoricals, with missing values in both kinds; 'y' depends on all four."""
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, n).round()
    score = rng.normal(0, 1, n)
    color = rng.choice(["red", "green", "blue"], n)
    city = rng.choice(["a", "b", "c", "d"], n)
    logit = 0.08 * (age - 40) + 0.8 * score + np.where(color == "red", 1.5, -0.5) + 0.5 * (city == "a")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df = pl.DataFrame({"age": age, "color": color, "score": score, "city": city, "y": y})
    every = pl.int_range(pl.len())
    return df.with_columns(
        pl.when(every % 17 == 3).then(None).otherwise(pl.col("age")).alias("age"),
        pl.when(every % 13 == 5).then(None).otherwise(pl.col("color")).alias("color"),
    )


def make_brief() -> Brief:
    return Brief.model_validate({
        "name": "synthetic", "objective": "test", "data": {"train": "unused.csv"},
        "target": {"column": "y", "positive_label": 1}, "success": {"metric": "roc_auc", "threshold": 0.6},
        "latency_budget_ms": 10,
    })


@pytest.fixture(scope="module")
def synthetic():
    brief = make_brief()
    train, test = make_data(600, seed=0), make_data(300, seed=1)
    # Unseen categories and missing values at predict time.
    every = pl.int_range(pl.len())
    test = test.with_columns(
        pl.when(every % 10 == 0).then(pl.lit("purple")).otherwise(pl.col("color")).alias("color"),
        pl.when(every % 11 == 0).then(None).otherwise(pl.col("score")).alias("score"),
    )
    contract = infer_contract(train, brief)
    return (contract, to_model_frame(train, contract), target_vector(train, brief),
            to_model_frame(test, contract))


# ---------------------------------------------------------------------------------------------- model frame
def test_model_frame_types_order_and_missing(synthetic):
    contract, X, _, _ = synthetic
    assert list(X.columns) == contract.features == ["age", "color", "score", "city"]
    assert X["age"].dtype == np.float64 and X["score"].dtype == np.float64
    assert X["color"].dtype == object and all(isinstance(v, str) for v in X["color"])
    assert X["age"].isna().sum() > 0
    assert (X["color"] == MISSING_CATEGORY).sum() > 0 and not X["color"].isna().any()


def test_model_frame_refuses_missing_column_and_text_in_numeric(synthetic):
    contract = synthetic[0]
    with pytest.raises(ContractError, match="city"):
        to_model_frame(make_data(20).drop("city"), contract)
    bad = make_data(20).with_columns(pl.lit("many").alias("age"))
    with pytest.raises(ContractError, match="not numbers"):
        to_model_frame(bad, contract)


def test_model_frame_accepts_pandas_and_roles():
    roles = ColumnRoles(("x",), ("c",), ("c", "x"))
    X = to_model_frame(pd.DataFrame({"x": [1, None], "c": ["u", None]}), roles)
    assert list(X.columns) == ["c", "x"] and X["c"].tolist() == ["u", ""] and np.isnan(X["x"][1])


# ---------------------------------------------------------------------------------------------- candidates
@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_candidate_fits_and_scores_missing_and_unseen(synthetic, name):
    contract, X, y, X_test = synthetic
    fitted = fit_model(name, X, y, seed=0, contract=contract)
    p = fitted.positive_proba(X_test)
    assert p.shape == (len(X_test),) and np.isfinite(p).all() and ((p >= 0) & (p <= 1)).all()
    assert fitted.kind == "candidate" and fitted.onnx_convertible and fitted.features == contract.features
    assert fitted.fit_seconds > 0 and fitted.to_dict()["name"] == name
    prep = fitted.model.named_steps["prep"]
    expected = [contract.numeric_features, contract.categorical_features]
    assert [cols for _, _, cols in prep.transformers] == expected


def test_hgb_has_no_native_categoricals(synthetic):
    pipe = make_candidate("hgb", synthetic[0], seed=3)
    assert pipe.named_steps["model"].categorical_features is None
    assert pipe.named_steps["model"].random_state == 3


@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_same_seed_same_model(synthetic, name):
    contract, X, y, X_test = synthetic
    a = fit_model(name, X, y, seed=7, contract=contract).positive_proba(X_test)
    b = fit_model(name, X, y, seed=7, contract=contract).positive_proba(X_test)
    np.testing.assert_array_equal(a, b)


def test_roles_from_model_frame_match_contract(synthetic):
    contract, X, y, _ = synthetic
    fitted = fit_model("logreg", X, y, seed=0)
    assert fitted.features == contract.features


def test_unknown_candidate_name_lists_valid_ones(synthetic):
    with pytest.raises(ModelError, match="logreg, hgb, lgbm, xgb") as info:
        make_candidate("xgboost", synthetic[0], seed=0)
    assert isinstance(info.value, WorkbenchError) and info.value.model == "xgboost"
    with pytest.raises(ModelError, match="logreg, hgb, lgbm, xgb, majority, rule"):
        fit_model("forest", synthetic[1], synthetic[2], seed=0)


def test_params_override_and_unknown_param(synthetic):
    contract, X, y, _ = synthetic
    fitted = fit_model("hgb", X, y, seed=0, contract=contract, params={"max_iter": 7})
    assert fitted.params["max_iter"] == 7 and fitted.model.named_steps["model"].n_iter_ <= 7
    with pytest.raises(ModelError, match="max_iterations"):
        make_candidate("hgb", contract, seed=0, params={"max_iterations": 7})


def test_fit_refuses_none_in_categorical(synthetic):
    contract, X, y, _ = synthetic
    bad = X.copy()
    bad.loc[0, "color"] = None
    with pytest.raises(ContractError, match="to_model_frame"):
        fit_model("logreg", bad, y, seed=0, contract=contract)


# ---------------------------------------------------------------------------------------------- ONNX parity
def onnx_parity(fitted, X: pd.DataFrame, roles) -> tuple[float, float]:
    """Convert with one named input per column (float32 numerics, strings categoricals); return label
    agreement and max |p_onnx - p_sklearn| on X."""
    import onnxruntime as ort

    from workbench.export import export_onnx

    numeric = set(roles.numeric_features)
    pipe = fitted.model
    onx = export_onnx(pipe, features=fitted.features, numeric=[c for c in fitted.features if c in numeric])
    sess = ort.InferenceSession(onx.model_bytes, providers=["CPUExecutionProvider"])
    feeds = {c: (X[c].to_numpy(np.float32) if c in numeric else X[c].to_numpy(object)).reshape(-1, 1)
             for c in fitted.features}
    labels, proba = sess.run(None, feeds)
    agreement = float((labels == pipe.predict(X)).mean())
    max_dp = float(np.max(np.abs(proba[:, 1] - fitted.positive_proba(X))))
    return agreement, max_dp


@pytest.mark.filterwarnings(ONNX_WARNING)
@pytest.mark.parametrize("name", sorted(CANDIDATES))
def test_onnx_parity_with_missing_and_unseen(synthetic, name):
    contract, X, y, X_test = synthetic
    fitted = fit_model(name, X, y, seed=0, contract=contract)
    agreement, max_dp = onnx_parity(fitted, X_test, contract)
    log.info("ONNX parity %s (synthetic): agreement %.4f, max |dp| %.2e", name, agreement, max_dp)
    assert agreement == 1.0
    assert max_dp < 1e-2


@pytest.fixture(scope="module")
def adult_sample():
    brief = Brief.model_validate({
        "name": "adult", "objective": "test", "data": {"train": str(ADULT / "adult_train.parquet")},
        "target": {"column": "income", "positive_label": ">50K"}, "features": {"exclude": ["fnlwgt"]},
        "sensitive_features": ["sex", "race"], "success": {"metric": "pr_auc", "threshold": 0.7},
        "latency_budget_ms": 10,
    })
    df = pl.read_parquet(ADULT / "adult_train.parquet").sample(n=6000, seed=0, shuffle=True)
    train, test = df.head(4000), df.tail(2000)
    contract = infer_contract(train, brief)
    return (contract, to_model_frame(train, contract), target_vector(train, brief),
            to_model_frame(test, contract), target_vector(test, brief))


@pytest.mark.filterwarnings(ONNX_WARNING)
@pytest.mark.parametrize(("name", "min_auc"), [("hgb", 0.88), ("logreg", 0.87)])
def test_adult_sample_auc_and_onnx_parity(adult_sample, name, min_auc):
    from sklearn.metrics import roc_auc_score

    contract, X, y, X_test, y_test = adult_sample
    fitted = fit_model(name, X, y, seed=0, contract=contract)
    auc = roc_auc_score(y_test, fitted.positive_proba(X_test))
    agreement, max_dp = onnx_parity(fitted, X_test, contract)
    log.info("Adult sample %s: ROC-AUC %.4f; ONNX agreement %.4f, max |dp| %.2e",
             name, auc, agreement, max_dp)
    assert auc >= min_auc
    assert agreement == 1.0
    assert max_dp < 1e-2

