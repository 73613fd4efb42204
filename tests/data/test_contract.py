from __future__ import annotations

from collections import Counter

import numpy as np
import polars as pl
import pytest

from testkit import make_churn, write_brief
from workbench.brief import Brief, load_brief
from workbench.data import DataContract, infer_contract, load_dataset
from workbench.errors import ContractError


@pytest.fixture
def churn(tmp_path):
    make_churn(400).with_columns(pl.lit("same").alias("Const")).write_csv(tmp_path / "c.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "c.csv"))
    return b, load_dataset(b)


def test_roles_kinds_and_ranges(churn):
    b, d = churn
    c = infer_contract(d.train, b)
    assert c.target == "churned"
    assert c.column("customer_id").role == "excluded" and "identifier" in c.column("customer_id").reason
    assert c.column("const").role == "excluded" and "constant" in c.column("const").reason
    assert set(c.features) == {"tenure_months", "plan_type", "region", "monthly_charges"}
    assert c.numeric_features == ["tenure_months", "monthly_charges"]
    assert c.column("plan_type").categories == ["basic", "plus", "pro"]
    assert c.column("region").sensitive and c.sensitive_features == ["region"]
    tm = c.column("tenure_months")
    assert tm.min == d.train.get_column("tenure_months").min() and tm.max == d.train.get_column("tenure_months").max()


def test_explicit_include_keeps_column(tmp_path):
    make_churn(300).write_csv(tmp_path / "c.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "c.csv", features={"include": ["Customer ID", "Region"]}))
    c = infer_contract(load_dataset(b).train, b)
    assert c.features == ["customer_id", "region"]


def test_high_cardinality_text_excluded(tmp_path):
    df = make_churn(400).with_columns((pl.col("Customer ID").str.slice(0, 4)).alias("Code"))
    df.write_csv(tmp_path / "c.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "c.csv"))
    c = infer_contract(load_dataset(b).train, b, max_categories=3)
    assert c.column("code").role == "excluded" and "high-cardinality" in c.column("code").reason


def test_check_flags_unseen_and_out_of_range(churn):
    b, d = churn
    c = infer_contract(d.train, b)
    live = d.test.head(5).with_columns(
        pl.Series("plan_type", ["basic", "gold", "gold", "pro", None]),
        pl.Series("tenure_months", [1, 500, 3, 4, 5]),
    )
    chk = c.check(live, name="live")
    issues = {i["column"]: i for i in chk.issues}
    assert issues["plan_type"]["rows"] == 2 and "gold" in issues["plan_type"]["issue"]
    assert issues["tenure_months"]["rows"] == 1
    assert not chk.ok
    assert c.check(d.train, name="train").ok


def test_check_missing_column_raises(churn):
    b, d = churn
    c = infer_contract(d.train, b)
    with pytest.raises(ContractError, match="lacks contract columns: region"):
        c.check(d.test.drop("region"))


def test_save_load_round_trip_and_html(churn, tmp_path):
    b, d = churn
    c = infer_contract(d.train, b)
    c.save(tmp_path / "contract.json")
    c2 = DataContract.load(tmp_path / "contract.json")
    assert c2 == c and c2.to_dict() == c.to_dict()
    html = c._repr_html_()
    assert "<table" in html and "plan_type" in html


# ------------------------------------------------------------------------------------------------------------
# infer_contract counts distinct values three ways (text through ``unique``, integers of a narrow span through
# ``arg_unique``, the rest through ``n_unique``): each figure is checked here against plain Python or polars.
def _brief(**features) -> Brief:
    return Brief.model_validate({
        "name": "stats", "objective": "Check the contract's column statistics.",
        "data": {"train": "unused.parquet"}, "target": {"column": "y", "positive_label": 1},
        "success": {"metric": "pr_auc", "threshold": 0.5}, "latency_budget_ms": 10, "features": features,
    })


def _top_categories(values: list, k: int) -> list[str]:
    counts = Counter(v for v in values if v is not None)
    return sorted(sorted(counts, key=lambda v: (-counts[v], v))[:k])


@pytest.mark.parametrize("k", [1, 2, 3, 4, 6, 7])
def test_categories_are_the_most_frequent_ties_broken_by_value(k):
    values = ["a"] * 5 + ["d", "c", "b"] * 3 + ["é", "Z"] + [None] * 4  # b, c, d tie at 3; "Z" < "a" < "é"
    df = pl.DataFrame({"t": values, "x": list(range(len(values))), "y": [0, 1] * (len(values) // 2)})
    spec = infer_contract(df, _brief(), max_categories=k).column("t")
    assert spec.categories == _top_categories(values, k)
    assert spec.n_unique == 6 and spec.nullable and spec.null_fraction == round(4 / len(values), 6)
    assert (spec.role == "excluded") == (k < 6)


def test_text_statistics_match_polars():
    rng = np.random.default_rng(3)
    words = np.array(["north", "south", "east", "west", "", " ", "ü", "x" * 40])
    t = pl.Series("t", words[rng.integers(0, len(words), 500)]).scatter([3, 7, 11], None)
    # "count" is also the name of value_counts' own column
    df = pl.DataFrame({"t": t, "count": t, "x": rng.integers(0, 9, 500), "y": rng.integers(0, 2, 500)})
    c = infer_contract(df, _brief(), max_categories=5)
    for name in ("t", "count"):
        spec = c.column(name)
        assert spec.n_unique == t.drop_nulls().n_unique()
        assert spec.categories == _top_categories(t.to_list(), 5)


@pytest.mark.parametrize("dtype", [pl.Int8, pl.Int16, pl.Int32, pl.Int64, pl.UInt8, pl.UInt32, pl.UInt64,
                                   pl.Float32, pl.Float64])
def test_numeric_statistics_match_polars(dtype):
    rng = np.random.default_rng(4)
    lo = 0 if dtype.is_unsigned_integer() else -100
    narrow = pl.Series("narrow", rng.integers(lo, 100, 400)).cast(dtype).scatter([0, 5], None)
    df = pl.DataFrame({"narrow": narrow, "y": rng.integers(0, 2, 400)})
    if dtype not in (pl.Int8, pl.Int16, pl.UInt8):  # a span of 2**31 or more: counted by n_unique
        wide = rng.integers(0, 2**31, 400) * (1 << 20 if dtype == pl.Int64 else 1)
        df = df.with_columns(pl.Series("wide", wide).cast(dtype))
    c = infer_contract(df, _brief())
    for name in df.columns[:1] + df.columns[2:]:
        s, spec = df.get_column(name), c.column(name)
        assert spec.n_unique == s.drop_nulls().n_unique()
        assert (spec.min, spec.max) == (float(s.min()), float(s.max()))
        assert spec.nullable == (s.null_count() > 0)


def test_all_null_and_constant_columns():
    df = pl.DataFrame({
        "empty_text": pl.Series([None] * 4, dtype=pl.String),
        "empty_int": pl.Series([None] * 4, dtype=pl.Int64),
        "one": [7, 7, None, 7], "x": [1, 2, 3, 4], "y": [0, 1, 0, 1],
    })
    c = infer_contract(df, _brief())
    assert c.column("empty_text").categories is None and c.column("empty_text").n_unique == 0
    assert (c.column("empty_int").min, c.column("empty_int").n_unique) == (None, 0)
    assert c.column("one").n_unique == 1 and "constant" in c.column("one").reason
    assert c.features == ["x"]


def test_check_decimal_column():
    df = pl.DataFrame({"d": pl.Series(["1.10", "2.25", "3.5"]).cast(pl.Decimal(6, 2)), "y": [0, 1, 0]})
    c = infer_contract(df, _brief())
    assert c.check(df).ok


def test_negative_max_categories_refused():
    df = pl.DataFrame({"t": ["a", "b"], "x": [1, 2], "y": [0, 1]})
    with pytest.raises(ValueError, match="max_categories must be 0 or more"):
        infer_contract(df, _brief(), max_categories=-1)
    assert infer_contract(df, _brief(), max_categories=0).column("t").categories == []
