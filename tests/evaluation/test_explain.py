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
