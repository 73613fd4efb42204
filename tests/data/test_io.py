from __future__ import annotations

import polars as pl
import pytest

from testkit import make_churn, write_brief
from workbench.brief import load_brief
from workbench.data import load_dataset, read_table, sha256_file
from workbench.errors import BriefError, DataError


def test_messy_csv_is_cleaned(tmp_path):
    p = tmp_path / "messy.csv"
    p.write_text("Age , Work-Class,Income Band\n 39, State-gov ,<=50K\n50,?,>50K\n 38 , Private,<=50K\n")
    df, renamed = read_table(p)
    assert df.columns == ["age", "work_class", "income_band"]
    assert renamed == {"Age ": "age", " Work-Class": "work_class", "Income Band": "income_band"}
    assert df.schema["age"] == pl.Int64 and df.get_column("age").to_list() == [39, 50, 38]
    assert df.get_column("work_class").to_list() == ["State-gov", None, "Private"]


def test_numbers_with_text_stay_text(tmp_path):
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1,x\n2.5,y\nunknown,z\n")
    df, _ = read_table(p)
    assert df.schema["a"] == pl.String


def test_parquet_round_trip_and_sha(tmp_path):
    df = make_churn(50)
    p = tmp_path / "c.parquet"
    df.write_parquet(p)
    out, renamed = read_table(p)
    assert out.columns[:2] == ["customer_id", "tenure_months"] and out.height == 50
    assert renamed["MonthlyCharges"] == "monthly_charges"
    assert len(sha256_file(p)) == 64


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        read_table(tmp_path / "nope.csv")


def test_empty_file(tmp_path):
    p = tmp_path / "empty.csv"
    p.write_text("")
    with pytest.raises(DataError) as e:
        read_table(p)
    assert "empty" in str(e.value) and str(p) in str(e.value) and e.value.exit_code == 2


def test_header_only(tmp_path):
    p = tmp_path / "h.csv"
    p.write_text("a,b,c\n")
    with pytest.raises(DataError, match="header but no rows"):
        read_table(p)


def test_wrong_separator_says_which(tmp_path):
    p = tmp_path / "semi.csv"
    p.write_text("age;job;target\n30;x;1\n40;y;0\n")
    with pytest.raises(DataError) as e:
        read_table(p)
    assert "semicolon-separated" in str(e.value) and "data.separator: ';'" in str(e.value)
    df, _ = read_table(p, separator=";")
    assert df.width == 3


def test_unsupported_format(tmp_path):
    p = tmp_path / "x.xlsx"
    p.write_bytes(b"PK..")
    with pytest.raises(DataError, match="unsupported file type"):
        read_table(p)


def test_colliding_names(tmp_path):
    p = tmp_path / "c.csv"
    p.write_text("Tenure Months,tenure_months,y\n1,2,0\n")
    with pytest.raises(DataError, match="both become 'tenure_months'"):
        read_table(p)


def test_missing_target_column_names_file_and_column(tmp_path):
    make_churn(100).drop("Churned").write_csv(tmp_path / "c.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "c.csv"))
    with pytest.raises(DataError) as e:
        load_dataset(b)
    assert e.value.column == "churned" and "c.csv" in str(e.value) and "target.column" in str(e.value)


def test_all_null_column_auto_excluded_but_explicit_refused(tmp_path):
    df = make_churn(200).with_columns(pl.lit(None, dtype=pl.String).alias("Notes"))
    df.write_csv(tmp_path / "c.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "c.csv"))
    data = load_dataset(b)
    from workbench.data import infer_contract

    c = infer_contract(data.train, b)
    assert c.column("notes").role == "excluded" and c.column("notes").reason == "all values missing"
    b2 = load_brief(write_brief(tmp_path / "b2.yaml", "c.csv", sensitive_features=["Notes"]))
    with pytest.raises(DataError, match="every value is missing.*sensitive_features"):
        load_dataset(b2)


def test_all_null_target(tmp_path):
    df = make_churn(50).with_columns(pl.lit(None, dtype=pl.Int64).alias("Churned"))
    df.write_csv(tmp_path / "c.csv")
    with pytest.raises(DataError, match="target column has no values"):
        load_dataset(load_brief(write_brief(tmp_path / "b.yaml", "c.csv")))


def test_multiclass_target_refused(tmp_path):
    make_churn(60).with_columns(pl.col("Plan Type").alias("Churned")).write_csv(tmp_path / "c.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "c.csv", target={"column": "Churned", "positive_label": "pro"}))
    with pytest.raises(DataError, match="exactly two target values, found 3"):
        load_dataset(b)


def test_random_split_is_stratified_and_seeded(tmp_path, churn_project):
    b = load_brief(churn_project)
    d1, d2 = load_dataset(b, seed=3), load_dataset(b, seed=3)
    assert d1.split == "random" and d1.train.height + d1.test.height == 600
    assert d1.test.height == pytest.approx(150, abs=2)
    assert d1.test.equals(d2.test)
    r_train = d1.train.get_column("churned").mean()
    r_test = d1.test.get_column("churned").mean()
    assert abs(r_train - r_test) < 0.02


def test_test_file_label_mismatch(tmp_path):
    df = make_churn(100).with_columns(pl.when(pl.col("Churned") == 1).then(pl.lit(">50K")).otherwise(pl.lit("<=50K"))
                                      .alias("Churned"))
    df.write_csv(tmp_path / "train.csv")
    df.with_columns(pl.col("Churned") + ".").write_csv(tmp_path / "test.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "train.csv", data={"train": "train.csv", "test": "test.csv"},
                               target={"column": "Churned", "positive_label": ">50K"}))
    with pytest.raises(DataError, match="test file but not in the train file"):
        load_dataset(b)


def test_test_file_missing_columns(tmp_path):
    df = make_churn(100)
    df.write_csv(tmp_path / "train.csv")
    df.drop("Region").write_csv(tmp_path / "test.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "train.csv", data={"train": "train.csv", "test": "test.csv"}))
    with pytest.raises(DataError, match="test file lacks columns.*region"):
        load_dataset(b)


def test_sample_rows(tmp_path, churn_project):
    d = load_dataset(load_brief(churn_project), sample_rows=100, seed=1)
    assert d.train.height == 100 and d.test.height == 100


def test_adult_bundled_data_matches_readme():
    from testkit import ADULT_BRIEF

    d = load_dataset(load_brief(ADULT_BRIEF))
    assert (d.train.height, d.test.height) == (32561, 16281)
    readme = (ADULT_BRIEF.parents[1] / "data" / "README.md").read_text()
    assert d.sources["train"].sha256 in readme and d.sources["test"].sha256 in readme
    assert set(d.test.get_column("income").unique().to_list()) == {">50K", "<=50K"}


def test_brief_column_error_is_brief_error(tmp_path):
    make_churn(50).write_csv(tmp_path / "c.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "c.csv", features={"exclude": ["Nope"]}))
    with pytest.raises(BriefError, match=r"features.exclude\[0\]"):
        load_dataset(b)
