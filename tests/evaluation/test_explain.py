"""SHAP explanations: additivity, one-hot aggregation, group drivers, persistence and plots."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import polars as pl
import pytest
from threadpoolctl import threadpool_limits

from workbench.errors import ModelError, ParameterError
from workbench.evaluation.explain import ADDITIVITY_TOLERANCE, ShapReport, explain
from workbench.modeling import ColumnRoles, fit_model, to_model_frame

# shap's import touches matplotlib colormap APIs that matplotlib plans to deprecate.
pytestmark = pytest.mark.filterwarnings("ignore::PendingDeprecationWarning:shap")

ROLES = ColumnRoles(("age", "score"), ("color", "city", "sex"), ("age", "color", "score", "city", "sex"))
ADULT = Path(__file__).resolve().parents[2] / "data" / "adult_train.parquet"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """OpenMP reads OMP_NUM_THREADS once; on a busy machine HGB's spinning threads can slow a fit tenfold."""
    with threadpool_limits(limits=1):
        yield


def make_data(n: int, seed: int) -> tuple[pl.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, n).round()
    score = rng.normal(0, 1, n)
    color = rng.choice(["red", "green", "blue"], n)
    city = rng.choice(["a", "b", "c", "d"], n)
    sex = rng.choice(["F", "M"], n, p=[0.4, 0.6])
    logit = 0.08 * (age - 40) + 0.8 * score + np.where(color == "red", 1.5, -0.5) + 0.4 * (sex == "M")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    every = pl.int_range(pl.len())
    df = pl.DataFrame({"age": age, "color": color, "score": score, "city": city, "sex": sex}).with_columns(
        pl.when(every % 17 == 3).then(None).otherwise(pl.col("age")).alias("age"),
        pl.when(every % 13 == 5).then(None).otherwise(pl.col("color")).alias("color"),
    )
    return df, y


@pytest.fixture(scope="module")
def setup():
    train, y = make_data(500, 0)
    test, _ = make_data(300, 1)
    X, X_test = to_model_frame(train, ROLES), to_model_frame(test, ROLES)
    models = {name: fit_model(name, X, y, seed=0, contract=ROLES) for name in ("logreg", "hgb")}
    return models, X_test, test.select("sex", "city")


@pytest.fixture(scope="module")
def reports(setup):
    models, X_test, sensitive = setup
    return {name: explain(m, X_test, sample_size=200, seed=1, sensitive=sensitive)
            for name, m in models.items()}


@pytest.mark.parametrize(("name", "kind"), [("logreg", "linear"), ("hgb", "tree")])
def test_additivity_within_tolerance(reports, name, kind):
    r = reports[name]
    assert r.explainer == kind and len(r.contributions) == 200
    assert r.additivity_max_error <= ADDITIVITY_TOLERANCE and r.additivity_ok
    np.testing.assert_allclose(r.base_value + r.contributions.sum(axis=1), r.margin, atol=1e-6, rtol=0)


def test_margin_is_the_pipeline_decision_function(setup, reports):
    models, X_test, _ = setup
    r = reports["hgb"]
    np.testing.assert_allclose(r.margin, models["hgb"].model.decision_function(X_test.iloc[r.row_index]))


def test_one_hot_contributions_sum_back_exactly(reports):
    r = reports["logreg"]
    names = np.asarray(r.transformed_names)
    assert r.transformed_contributions.shape == (200, len(names))
    assert len(names) > len(r.contributions.columns)
    for col in ("color", "city", "sex"):
        mask = np.char.startswith(names.astype(str), f"cat__{col}_")
        assert mask.sum() >= 2
        np.testing.assert_allclose(r.contributions[col], r.transformed_contributions[:, mask].sum(axis=1),
                                   rtol=0, atol=1e-15)
    age = r.transformed_contributions[:, names == "num__age"][:, 0]
    np.testing.assert_array_equal(r.contributions["age"], age)
    np.testing.assert_allclose(r.contributions.sum(axis=1), r.transformed_contributions.sum(axis=1),
                               rtol=0, atol=1e-12)


def test_ordinal_columns_map_one_to_one(reports):
    r = reports["hgb"]
    assert r.transformed_contributions.shape[1] == len(r.contributions.columns)
    assert sorted(r.transformed_columns) == sorted(r.contributions.columns)


def test_importance_and_group_drivers(reports):
    r = reports["hgb"]
    assert r.importance.index[0] in {"color", "score", "age"}
    assert r.importance.is_monotonic_decreasing and set(r.importance.index) == set(ROLES.order)
    sex = r.group_drivers["sex"]
    assert sex.shape == (2, len(ROLES.order)) and list(sex.index) == ["F", "M"]
    assert r.group_drivers["city"].shape == (4, len(ROLES.order))
    assert sum(r.group_sizes["sex"].values()) == 200
    top = r.top_drivers("sex", k=3)
    assert set(top) == {"F", "M"} and all(len(v) == 3 for v in top.values())
    within_f = r.contributions[r.data["sex"] == "F"].abs().mean()
    np.testing.assert_allclose(sex.loc["F"].to_numpy(), within_f[sex.columns].to_numpy())


def test_sample_is_seeded_and_capped(setup, reports):
    models, X_test, _ = setup
    again = explain(models["hgb"], X_test, sample_size=200, seed=1)
    np.testing.assert_array_equal(again.row_index, reports["hgb"].row_index)
    assert again.group_drivers == {}
    everything = explain(models["logreg"], X_test, sample_size=10_000, seed=0)
    assert len(everything.contributions) == len(X_test)


def test_baselines_are_refused(setup):
    models, X_test, _ = setup
    X = X_test.copy()
    majority = fit_model("majority", X, np.arange(len(X)) % 2, seed=0, contract=ROLES)
    with pytest.raises(ModelError, match="no SHAP explanation"):
        explain(majority, X_test, sample_size=10, seed=0)


def test_bad_arguments(setup):
    models, X_test, sensitive = setup
    with pytest.raises(ParameterError, match="sensitive"):
        explain(models["hgb"], X_test, sample_size=10, seed=0, sensitive=sensitive.head(5))
    with pytest.raises(ParameterError, match="sample_size"):
        explain(models["hgb"], X_test, sample_size=0, seed=0)


def test_report_json_parquet_and_html(reports, tmp_path):
    r = reports["logreg"]
    d = json.loads(r.to_json())
    assert d["additivity"]["passed"] is True and d["explainer"] == "linear"
    assert set(d["group_drivers"]["sex"]) == {"F", "M"} and d["group_drivers"]["sex"]["F"]["top"]
    assert r.summary()["additivity_passed"] and len(r.summary()["top_features"]) == 5
    path = r.save(tmp_path / "shap_logreg.json")
    rows = pl.read_parquet(tmp_path / "shap_logreg_contributions.parquet")
    assert json.loads(path.read_text())["sample_size"] == 200
    assert rows.height == 200 and {"row_index", "margin", "shap__color", "color"} <= set(rows.columns)
    np.testing.assert_allclose(rows["shap__age"].to_numpy(), r.contributions["age"].to_numpy())
    assert "Additivity" in r._repr_html_() and "pass" in r._repr_html_()
    assert isinstance(r, ShapReport)


def test_plots_need_no_display(reports):
    plt.switch_backend("agg")
    r = reports["hgb"]
    for ax in (r.plot_importance(), r.plot_beeswarm(max_display=3), r.plot_group_drivers("sex")):
        assert ax.get_title()
    assert len(r.plot_beeswarm(max_display=3).get_yticklabels()) == 3
    with pytest.raises(ParameterError, match="sex, city"):
        r.plot_group_drivers("race")
    plt.close("all")


def test_adult_sample_additivity_both_explainers():
    df = pl.read_parquet(ADULT).sample(n=3000, seed=0, shuffle=True)
    roles = ColumnRoles(("age", "education_num", "capital_gain", "hours_per_week"),
                        ("workclass", "occupation", "relationship", "sex", "native_country"),
                        ("age", "workclass", "education_num", "occupation", "relationship", "sex",
                         "capital_gain", "hours_per_week", "native_country"))
    X = to_model_frame(df, roles)
    y = (df["income"] == ">50K").to_numpy().astype(int)
    for name in ("hgb", "logreg"):
        r = explain(fit_model(name, X, y, seed=0, contract=roles), X, sample_size=300, seed=0,
                    sensitive=df.select("sex"))
        assert r.additivity_ok, (name, r.additivity_max_error)
        assert r.group_drivers["sex"].shape == (2, 9)
        assert isinstance(r.contributions, pd.DataFrame)


# ---------------------------------------------------------------------------------------------- other tasks
def _task_pipeline(estimator, *, onehot: bool):
    """``Pipeline([("prep", ColumnTransformer), ("model", est)])`` as the candidates build them."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    from workbench.modeling.frame import IMPUTED_CATEGORY, MISSING_CATEGORY

    num = [("impute", SimpleImputer(strategy="median"))] + ([("scale", StandardScaler())] if onehot else [])
    enc = (OneHotEncoder(handle_unknown="ignore", sparse_output=False) if onehot
           else OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))
    cat = Pipeline([("impute", SimpleImputer(missing_values=MISSING_CATEGORY, strategy="constant",
                                             fill_value=IMPUTED_CATEGORY)), ("encode", enc)])
    prep = ColumnTransformer([("num", Pipeline(num), list(ROLES.numeric)), ("cat", cat, list(ROLES.categorical))],
                             remainder="drop", sparse_threshold=0.0)
    return Pipeline([("prep", prep), ("model", estimator)])


def _fitted(name: str, estimator, X, y, *, onehot: bool):
    from workbench.modeling import FittedModel

    pipe = _task_pipeline(estimator, onehot=onehot).fit(X[list(ROLES.order)], y)
    return FittedModel(pipe, name, "candidate", 0.0, {}, list(ROLES.order), 0)


@pytest.fixture(scope="module")
def task_models():
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge

    train, _ = make_data(400, 2)
    X = to_model_frame(train, ROLES)
    age = X["age"].fillna(40).to_numpy()
    y_reg = 1000 + 25 * (age - 40) + 300 * X["score"].to_numpy() + np.where(X["color"] == "red", 400, 0)
    y_reg = y_reg + np.random.default_rng(0).normal(0, 50, len(X))
    y_mc = np.digitize(X["score"].to_numpy() + np.where(X["city"] == "a", 1.0, 0.0), [-0.5, 0.5])  # 3 codes
    return X, {
        "ridge": _fitted("ridge", Ridge(alpha=1.0), X, y_reg, onehot=True),
        "hgb_reg": _fitted("hgb_reg", HistGradientBoostingRegressor(max_iter=30, random_state=0), X, y_reg,
                           onehot=False),
        "logreg_mc": _fitted("logreg_mc", LogisticRegression(max_iter=1000), X, y_mc, onehot=True),
        "hgb_mc": _fitted("hgb_mc", HistGradientBoostingClassifier(max_iter=20, random_state=0), X, y_mc,
                          onehot=False),
    }


@pytest.mark.parametrize(("name", "kind"), [("ridge", "linear"), ("hgb_reg", "tree")])
def test_regression_shap_adds_up_to_the_prediction(task_models, name, kind):
    X, models = task_models
    m = models[name]
    r = explain(m, X, sample_size=80, seed=0, task="regression", sensitive=X[["sex"]])
    assert r.explainer == kind and r.task == "regression" and r.additivity_ok
    pred = m.model.predict(X.iloc[r.row_index])
    np.testing.assert_allclose(r.margin, pred, rtol=0, atol=1e-9)
    np.testing.assert_allclose(r.base_value + r.contributions.sum(axis=1), pred, rtol=0, atol=1e-6)
    assert r.importance.index[0] in {"score", "age", "color"}  # in target units: hundreds, not log-odds
    assert r.importance.max() > 50
    d = json.loads(r.to_json())
    assert d["task"] == "regression" and "target" in d["output"] and d["additivity"]["passed"]
    assert "target units" in r.plot_importance().get_xlabel()
    plt.close("all")


@pytest.mark.parametrize(("name", "kind"), [("logreg_mc", "linear"), ("hgb_mc", "tree")])
def test_multiclass_shap_per_class_adds_up_to_the_raw_scores(task_models, name, kind, tmp_path):
    X, models = task_models
    m = models[name]
    classes = ["low", "mid", "high"]
    r = explain(m, X, sample_size=60, seed=1, task="multiclass_classification", classes=classes,
                sensitive=X[["sex"]])
    assert r.explainer == kind and r.classes == classes and r.additivity_ok
    raw = m.model.decision_function(X.iloc[r.row_index])
    assert r.margin.shape == (60, 3) and r.transformed_contributions.shape[2] == 3
    for j, c in enumerate(classes):
        total = r.class_base_values[c] + r.class_contributions[c].sum(axis=1)
        np.testing.assert_allclose(total, raw[:, j], rtol=0, atol=1e-6)
    by_class = r.importance_by_class
    assert list(by_class.columns) == classes and list(by_class.index) == list(r.importance.index)
    np.testing.assert_allclose(r.importance.to_numpy(), by_class.mean(axis=1).to_numpy(), rtol=1e-12)
    d = json.loads(r.to_json())
    assert d["classes"] == classes and "softmax logits" in d["output"] and set(d["importance_by_class"]) == set(classes)
    assert d["base_value"] is None and set(d["base_values"]) == set(classes)
    assert set(r.summary()["top_features_by_class"]) == set(classes)
    r.save(tmp_path / "shap.json")
    rows = pl.read_parquet(tmp_path / "shap_contributions.parquet")
    assert {"margin__low", "base_value__high", "shap__mid__score", "shap__score"} <= set(rows.columns)
    assert "Importance per class" in r._repr_html_()
    assert r.plot_beeswarm(max_display=3, class_name="mid").get_title().endswith("class mid")
    with pytest.raises(ParameterError, match="class_name"):
        r.plot_beeswarm(class_name="nope")
    plt.close("all")


def test_task_arguments_are_checked(task_models, reports):
    X, models = task_models
    with pytest.raises(ParameterError, match="parameter 'task'"):
        explain(models["ridge"], X, sample_size=5, task="ranking")
    with pytest.raises(ParameterError, match="parameter 'classes'"):
        explain(models["hgb_mc"], X, sample_size=5, task="multiclass_classification", classes=["a", "b"])
    with pytest.raises(ParameterError, match="parameter 'classes'"):
        explain(models["ridge"], X, sample_size=5, task="regression", classes=["a", "b", "c"])
    default = explain(models["hgb_mc"], X, sample_size=5, task="multiclass_classification")
    assert default.classes == ["0", "1", "2"]
    # the binary report keeps its shape: no task keys
    d = reports["hgb"].to_dict()
    assert "task" not in d and "classes" not in d and reports["hgb"].task == "binary_classification"
    assert reports["hgb"].plot_importance().get_xlabel() == "mean |SHAP value| (log-odds)"
    plt.close("all")
