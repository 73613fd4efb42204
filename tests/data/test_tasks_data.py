"""The data layer per task: target checks, missing regression targets, stratified splits, the contract's task
fields, per-task audit summaries and leakage screens, plots, and the bundled penguins and wage data."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
import yaml

from testkit import ROOT, write_brief
from workbench.brief import load_brief
from workbench.data import audit_dataset, infer_contract, load_dataset, plots
from workbench.errors import DataError

AS_OF = dt.date(2026, 6, 1)


def make_regression(n: int = 600, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    size = rng.integers(30, 200, n)
    area = rng.choice(["north", "south", "east"], n)
    price = 50 + 2.0 * size + np.where(area == "north", 40, 0) + rng.normal(0, 30, n)
    return pl.DataFrame({"Size": size, "Area": area, "Noise": rng.normal(size=n), "Price": np.round(price, 2)})


def make_multiclass(n: int = 600, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    kind = rng.choice(["a", "b", "c"], n, p=[0.5, 0.3, 0.2])
    length = np.where(kind == "a", 10.0, np.where(kind == "b", 12.0, 14.0)) + rng.normal(0, 1.5, n)
    return pl.DataFrame({"Length": np.round(length, 2), "Site": rng.choice(["x", "y"], n),
                         "Group": rng.choice(["g1", "g2"], n), "Kind": kind})


def _brief_file(path, data_file: str, target: dict, **overrides):
    """testkit's brief with the target replaced (not merged: these tasks take no positive_label)."""
    write_brief(path, data_file, **overrides)
    raw = yaml.safe_load(path.read_text())
    path.write_text(yaml.safe_dump({**raw, "target": target}, sort_keys=False))
    return path


def _regression_brief(tmp_path, df: pl.DataFrame, **overrides):
    df.write_csv(tmp_path / "r.csv")
    base = {"task": "regression", "sensitive_features": ["Area"],
            "success": {"metric": "mae", "threshold": 30.0},
            "fairness": {"min_slice_size": 20, "thresholds": {"mae_difference": 20.0}}}
    return load_brief(_brief_file(tmp_path / "r.yaml", "r.csv", {"column": "Price"}, **{**base, **overrides}))


def _multiclass_brief(tmp_path, df: pl.DataFrame, **overrides):
    df.write_csv(tmp_path / "m.csv")
    base = {"task": "multiclass_classification", "sensitive_features": ["Group"],
            "success": {"metric": "macro_f1", "threshold": 0.5},
            "fairness": {"min_slice_size": 20, "thresholds": {"accuracy_difference": 0.2}}}
    return load_brief(_brief_file(tmp_path / "m.yaml", "m.csv", {"column": "Kind"}, **{**base, **overrides}))


def _audit(brief, seed=0):
    data = load_dataset(brief, seed=seed)
    contract = infer_contract(data.train, brief)
    return data, contract, audit_dataset(data, brief, contract, as_of=AS_OF)


# ------------------------------------------------------------------------------------------------ io: targets
def test_regression_text_target_refused_naming_the_column(tmp_path):
    df = make_regression(60).with_columns(pl.col("Price").cast(pl.String))
    df = df.with_columns(pl.when(pl.int_range(pl.len()) == 3).then(pl.lit("unknown")).otherwise(pl.col("Price"))
                         .alias("Price"))
    b = _regression_brief(tmp_path, df)
    with pytest.raises(DataError) as e:
        load_dataset(b)
    assert e.value.column == "price" and "numeric" in str(e.value) and "fix:" in str(e.value)


def test_regression_numeric_target_accepted(tmp_path):
    d = load_dataset(_regression_brief(tmp_path, make_regression(60)))
    assert d.train.schema["price"] == pl.Float64 and d.dropped_target == {}


def test_multiclass_with_two_classes_suggests_binary(tmp_path):
    df = make_multiclass(60).with_columns(pl.col("Kind").replace("c", "b"))
    with pytest.raises(DataError, match="binary_classification") as e:
        load_dataset(_multiclass_brief(tmp_path, df))
    assert e.value.column == "kind"


def test_multiclass_class_with_one_row_refused(tmp_path):
    df = make_multiclass(60).with_columns(
        pl.when(pl.int_range(pl.len()) == 0).then(pl.lit("rare")).otherwise(pl.col("Kind")).alias("Kind"))
    with pytest.raises(DataError, match="'rare'") as e:
        load_dataset(_multiclass_brief(tmp_path, df))
    assert e.value.column == "kind"


def test_multiclass_three_classes_accepted(tmp_path):
    d = load_dataset(_multiclass_brief(tmp_path, make_multiclass(60)))
    assert set(d.train.get_column("kind").unique()) == {"a", "b", "c"}


def test_regression_missing_targets_dropped_and_reported(tmp_path):
    df = make_regression(400).with_columns(
        pl.when(pl.int_range(pl.len()) % 40 == 0).then(None).otherwise(pl.col("Price")).alias("Price"))
    data, contract, a = _audit(_regression_brief(tmp_path, df))
    assert data.dropped_target == {"train": 10}
    assert data.train.get_column("price").null_count() == 0 and data.test.get_column("price").null_count() == 0
    assert data.train.height + data.test.height == 390 and data.to_dict()["dropped_target_rows"] == {"train": 10}
    assert a.target_distribution["missing_dropped"] == 10
    assert any("10 train rows without a target value were dropped" in w for w in a.warnings)
    assert any("without a target" in e for e in a.quality["completeness"].evidence)


def test_regression_missing_targets_in_test_file_dropped(tmp_path):
    df = make_regression(300)
    df.write_csv(tmp_path / "train.csv")
    df.head(40).with_columns(pl.when(pl.int_range(pl.len()) < 3).then(None).otherwise(pl.col("Price"))
                             .alias("Price")).write_csv(tmp_path / "test.csv")
    b = _regression_brief(tmp_path, df, data={"train": "train.csv", "test": "test.csv"})
    d = load_dataset(b)
    assert d.dropped_target == {"test": 3} and d.test.height == 37


def test_binary_dataset_has_no_dropped_rows_key(tmp_path, churn_project):
    d = load_dataset(load_brief(churn_project))
    assert d.dropped_target == {} and "dropped_target_rows" not in d.to_dict()


# ------------------------------------------------------------------------------------------------ io: splits
def test_regression_split_is_stratified_on_target_bins_and_seeded(tmp_path):
    b = _regression_brief(tmp_path, make_regression(800))
    d1, d2 = load_dataset(b, seed=3), load_dataset(b, seed=3)
    assert d1.test.equals(d2.test) and d1.test.height == pytest.approx(200, abs=5)
    assert not load_dataset(b, seed=4).test.equals(d1.test)
    q = [0.1, 0.5, 0.9]
    tr = np.quantile(d1.train.get_column("price").to_numpy(), q)
    te = np.quantile(d1.test.get_column("price").to_numpy(), q)
    spread = d1.train.get_column("price").std()
    assert np.all(np.abs(tr - te) < 0.1 * spread)
    assert any("quantile bins" in n for n in d1.notes)


def test_multiclass_split_keeps_class_shares(tmp_path):
    d = load_dataset(_multiclass_brief(tmp_path, make_multiclass(600)), seed=1)
    for cls in ("a", "b", "c"):
        tr = (d.train.get_column("kind") == cls).mean()
        te = (d.test.get_column("kind") == cls).mean()
        assert abs(tr - te) < 0.02


# ------------------------------------------------------------------------------------------------ contract
def test_contract_records_task_classes_and_no_positive_label(tmp_path):
    b = _multiclass_brief(tmp_path, make_multiclass(300))
    c = infer_contract(load_dataset(b).train, b)
    assert (c.task, c.classes, c.positive_label) == ("multiclass_classification", ["a", "b", "c"], None)
    r = _regression_brief(tmp_path, make_regression(300))
    cr = infer_contract(load_dataset(r).train, r)
    assert (cr.task, cr.classes, cr.positive_label) == ("regression", None, None)
    assert "regression" in cr._repr_html_()


def test_binary_contract_keeps_positive_label(tmp_path, churn_project):
    b = load_brief(churn_project)
    c = infer_contract(load_dataset(b).train, b)
    assert (c.task, c.positive_label, c.classes) == ("binary_classification", "1", None)


def test_constant_column_excluded_as_constant(tmp_path):
    b = _regression_brief(tmp_path, make_regression(300).with_columns(pl.lit("one region").alias("Region")))
    c = infer_contract(load_dataset(b).train, b)
    assert c.column("region").role == "excluded" and c.column("region").reason.startswith("constant")
    assert c.column("area").role == "feature"


def test_regression_leak_excluded_by_contract_unless_included(tmp_path):
    df = make_regression(600).with_columns(pl.col("Price").log().alias("Log Price"))
    b = _regression_brief(tmp_path, df)
    data, c, a = _audit(b)
    assert c.column("log_price").role == "excluded" and "possible leakage" in c.column("log_price").reason
    assert "log_price" not in c.features and {"size", "area", "noise"} <= set(c.features)
    assert a.summary()["leakage_flags"] == ["log_price"]
    b2 = _regression_brief(tmp_path, df, features={"include": ["Size", "Area", "Log Price"]})
    assert "log_price" in infer_contract(load_dataset(b2).train, b2).features


# ------------------------------------------------------------------------------------------------ audit: regression
def test_regression_leakage_scores(tmp_path):
    rng = np.random.default_rng(5)
    df = make_regression(800).with_columns(
        pl.col("Price").log().alias("Log Price"),
        pl.Series("Row ID", rng.permutation(800)),  # unique per row: must not score 1.0
    )
    _, c, a = _audit(_regression_brief(tmp_path, df, features={"exclude": ["Row ID"]}))
    score = {r["column"]: r["r2_cross_fit"] for r in a.leakage}
    flagged = {r["column"] for r in a.leakage if r["flagged"]}
    assert score["log_price"] > 0.95 and flagged == {"log_price"}
    assert 0.3 < score["size"] < 0.9  # informative, not a leak
    # cross-fitted, noise scores at or a little below 0 (about -bins / rows), never near 1
    assert -0.15 < score["noise"] < 0.05 and -0.15 < score["row_id"] < 0.05
    assert any("log_price" in w and "leakage" in w for w in a.warnings)


def test_regression_categorical_id_scores_like_noise(tmp_path):
    df = make_regression(400).with_columns(pl.format("id{}", pl.int_range(pl.len())).alias("Code"))
    b = _regression_brief(tmp_path, df, features={"include": ["Size", "Code"]})
    _, _, a = _audit(b)
    score = {r["column"]: r["r2_cross_fit"] for r in a.leakage}
    assert score["code"] < 0.05 and not any(r["flagged"] for r in a.leakage)


def test_regression_target_summary_and_group_means(tmp_path):
    b = _regression_brief(tmp_path, make_regression(600))
    data, _, a = _audit(b)
    y = data.train.get_column("price")
    td = a.target_distribution["train"]
    assert td["mean"] == pytest.approx(y.mean(), abs=1e-6) and td["std"] == pytest.approx(y.std(), abs=1e-6)
    assert td["median"] == pytest.approx(y.median(), abs=1e-6) and td["skew"] == pytest.approx(y.skew(), abs=1e-6)
    assert td["q05"] < td["q25"] < td["median"] < td["q75"] < td["q95"]
    for r in a.target_by_group["area"]:
        sub = data.train.filter(pl.col("area") == r["group"]).get_column("price")
        assert r["count"] == sub.len() and r["mean"] == pytest.approx(sub.mean(), abs=1e-6)
    assert a.class_balance == {} and a.to_dict()["task"] == "regression"
    assert a.quality.verdict == "proceed" and "<table" in a._repr_html_()


def test_binned_sensitive_feature_groups(tmp_path):
    b = _regression_brief(tmp_path, make_regression(600),
                          sensitive_features=["Area", {"column": "Size", "bins": [80, 150]}])
    data, _, a = _audit(b)
    rows = {r["group"]: r for r in a.target_by_group["size"]}
    assert set(rows) == {"<= 80", "(80, 150]", "> 150"}
    size = data.train.get_column("size")
    assert rows["<= 80"]["count"] == (size <= 80).sum()
    assert rows["(80, 150]"]["count"] == ((size > 80) & (size <= 150)).sum()
    assert "area x size" in a.target_by_group


# ------------------------------------------------------------------------------------------------ audit: multiclass
def test_multiclass_class_balance_and_group_shares(tmp_path):
    data, c, a = _audit(_multiclass_brief(tmp_path, make_multiclass(600)))
    cb = a.class_balance
    kinds = data.train.get_column("kind")
    assert cb["classes"] == ["a", "b", "c"] and cb["smallest_class"] == "c"
    for cls in cb["classes"]:
        assert cb["train"]["shares"][cls] == pytest.approx((kinds == cls).mean(), abs=1e-6)
    for r in a.target_by_group["group"]:
        sub = data.train.filter(pl.col("group") == r["group"]).get_column("kind")
        assert r["class_shares"]["a"] == pytest.approx((sub == "a").mean(), abs=1e-6)
        assert sum(r["class_shares"].values()) == pytest.approx(1.0, abs=1e-5)
    assert a.summary()["class_shares_train"] == cb["train"]["shares"]


def test_multiclass_leakage_flagged_and_excluded(tmp_path):
    rng = np.random.default_rng(2)
    df = make_multiclass(600)
    code = df.get_column("Kind").replace_strict({"a": 0, "b": 1, "c": 2}, return_dtype=pl.Float64)
    df = df.with_columns((code * 10 + pl.Series(rng.random(600))).alias("Leak"),
                         pl.Series("Serial", rng.permutation(600).astype(np.float64)))
    _, c, a = _audit(_multiclass_brief(tmp_path, df))
    score = {r["column"]: r["separation_auc_ovr"] for r in a.leakage}
    assert score["leak"] > 0.99 and c.column("leak").role == "excluded"
    assert [r["column"] for r in a.leakage if r["flagged"]] == ["leak"]
    assert 0.6 < score["length"] < 0.98 and abs(score["serial"] - 0.5) < 0.08 and abs(score["site"] - 0.5) < 0.08


# ------------------------------------------------------------------------------------------------ plots
@pytest.mark.parametrize("kind", ["regression", "multiclass"])
def test_plots_for_new_tasks(tmp_path, kind):
    if kind == "regression":
        b = _regression_brief(tmp_path, make_regression(300),
                              sensitive_features=["Area", {"column": "Size", "bins": [100]}])
    else:
        b = _multiclass_brief(tmp_path, make_multiclass(300))
    data, c, a = _audit(b)
    fig = plots.plot_distributions(data.train, c, b)
    assert len(fig.axes) >= len(c.features)
    assert plots.plot_target_rate_by_group(a).axes
    fig.savefig(tmp_path / "d.png")


# ------------------------------------------------------------------------------------------------ bundled data
def test_bundled_wage_with_its_brief():
    b = load_brief(ROOT / "briefs" / "wage.yaml")
    data, c, a = _audit(b, seed=42)
    assert data.train.height + data.test.height == 3000
    readme = (ROOT / "data" / "README.md").read_text()
    assert data.sources["train"].sha256 in readme
    assert "logwage" not in b.features.exclude
    assert c.column("logwage").role == "excluded" and "possible leakage" in c.column("logwage").reason
    assert c.column("region").reason.startswith("constant")
    assert {"age", "education", "race"} <= set(c.features)
    flags = {r["column"]: r for r in a.leakage}
    assert flags["logwage"]["flagged"] and flags["logwage"]["r2_cross_fit"] > 0.95
    assert not flags["age"]["flagged"] and not flags["education"]["flagged"]
    assert set(a.target_by_group) == {"race", "age", "race x age"}
    assert a.quality.verdict == "proceed"


def test_bundled_penguins_with_its_brief():
    b = load_brief(ROOT / "briefs" / "penguins.yaml")
    data, c, a = _audit(b, seed=42)
    assert data.train.height + data.test.height == 344
    readme = (ROOT / "data" / "README.md").read_text()
    assert data.sources["train"].sha256 in readme
    raw = pl.read_parquet(ROOT / "data" / "penguins.parquet")
    assert (raw.get_column("sex") == "NA").sum() == 11  # kept as published; the loader makes it missing
    sex = pl.concat([data.train, data.test]).get_column("sex")
    assert sex.null_count() == 11 and "NA" not in sex.drop_nulls().to_list()
    assert c.classes == ["Adelie", "Chinstrap", "Gentoo"] and c.positive_label is None
    assert any(r["group"] == "(missing)" for r in a.target_by_group["sex"])
    assert not any(r["flagged"] for r in a.leakage)
    assert a.quality.verdict == "proceed"
