from __future__ import annotations

import polars as pl
import pytest

from conftest import make_churn, write_brief
from workbench.brief import load_brief
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
