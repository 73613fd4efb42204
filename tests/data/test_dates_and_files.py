"""Dates recognised (role date), derived date features (polars and the one-record definition agree), the time
split, duplicate headers, and separator detection on files whose text holds the other separators."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest

from testkit import make_churn, write_brief
from workbench.brief import load_brief
from workbench.data import infer_contract, load_dataset, read_table
from workbench.data.dates import derive_columns, parse_dates
from workbench.data.derive import derive_record, derived_specs
from workbench.errors import DataError


def _with_dates(n=400, seed=0):
    rng = np.random.default_rng(seed)
    start = [dt.date(2013, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 700, n)]
    stamps = [dt.datetime(d.year, d.month, d.day, int(h), int(m), 0)
              for d, h, m in zip(start, rng.integers(0, 24, n), rng.integers(0, 60, n), strict=True)]
    return make_churn(n, seed=seed).with_columns(
        pl.Series("Signup Date", [str(d) for d in start]),
        pl.Series("Last Call", [s.strftime("%Y-%m-%d %H:%M:%S") for s in stamps]),
        pl.Series("Native Day", start),
        pl.Series("Native Stamp", stamps),
    )


# ---------------------------------------------------------------------------------------------- dates recognised
def test_iso_text_and_native_dates_get_role_date(tmp_path):
    df = _with_dates()
    df.write_parquet(tmp_path / "d.parquet")
    text = df.with_columns(pl.col("Native Day").cast(pl.String), pl.col("Native Stamp").cast(pl.String))
    text.write_csv(tmp_path / "d.csv")
    for f in ("d.csv", "d.parquet"):
        b = load_brief(write_brief(tmp_path / "b.yaml", f))
        data = load_dataset(b)
        c = infer_contract(data.train, b)
        for col in ("signup_date", "last_call", "native_day", "native_stamp"):
            assert c.column(col).role == "date" and c.column(col).reason == "date", (f, col)
            assert c.excluded[col] == "date" and col not in c.features
        assert data.train.schema["signup_date"] == pl.Date
        assert isinstance(data.train.schema["last_call"], pl.Datetime)
        assert any("date columns" in n for n in data.notes)
    # named in features.include, a date is still never a raw feature
    b = load_brief(write_brief(tmp_path / "b.yaml", "d.csv", features={"include": ["Tenure Months", "Signup Date"]}))
    c = infer_contract(load_dataset(b).train, b)
    assert c.column("signup_date").role == "date" and c.features == ["tenure_months"]


def test_text_that_is_not_all_dates_stays_text():
    df = pl.DataFrame({"a": ["2013-08-14", "2013-08-15", "soon"], "b": ["2013-08-14", None, "2014-01-02"],
                       "c": ["x1", "x2", "x3"], "d": ["2013-08-14 10:30:00", "2013-08-14T11:00:00", None]})
    out, names = parse_dates(df)
    assert names == ["b", "d"] and out.schema["a"] == pl.String and out.schema["c"] == pl.String
    assert out.schema["b"] == pl.Date and isinstance(out.schema["d"], pl.Datetime)
    assert out.get_column("d").to_list()[1] == dt.datetime(2013, 8, 14, 11, 0)


# ---------------------------------------------------------------------------------------------- derived features
DERIVE = [{"column": "Signup Date", "parts": ["year", "month", "day", "day_of_week", "day_of_year", "quarter"]},
          {"days_between": ["Signup Date", "Last Call"], "name": "days_to_call"}]


def test_derived_features_polars_and_one_record_agree():
    rng = np.random.default_rng(1)
    n = 300
    start = [dt.date(2000, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 12000, n)]
    end = [dt.datetime(d.year, d.month, d.day) + dt.timedelta(minutes=int(m))
           for d, m in zip(start, rng.integers(-100000, 100000, n), strict=True)]
    start[3] = None
    df = pl.DataFrame({"a": start, "b": end})
    specs = derived_specs([{"column": "a", "parts": ["year", "month", "day", "day_of_week", "day_of_year",
                                                     "quarter"]}, {"days_between": ["a", "b"], "name": "gap"}])
    got = derive_columns(df, specs)
    # the service sees text, as a JSON request carries it
    text = df.with_columns(pl.col("a").cast(pl.String), pl.col("b").dt.strftime("%Y-%m-%dT%H:%M:%S"))
    for i, rec in enumerate(text.iter_rows(named=True)):
        want = derive_record(rec, specs)
        for s in specs:
            v = got.get_column(s["name"])[i]
            if want[s["name"]] is None:
                assert v is None
            else:
                assert v == pytest.approx(want[s["name"]], abs=1e-9), (s, rec)
    assert got.get_column("a_year")[3] is None and got.get_column("gap")[3] is None


def test_derived_features_become_features_at_load(tmp_path):
    _with_dates().write_csv(tmp_path / "d.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "d.csv", features={"derive": DERIVE}))
    data = load_dataset(b)
    c = infer_contract(data.train, b)
    names = [s["name"] for s in derived_specs(b.features.derive)]
    assert names[:2] == ["signup_date_year", "signup_date_month"] and names[-1] == "days_to_call"
    for nm in names:
        assert data.train.schema[nm] == pl.Float64 and data.test.schema[nm] == pl.Float64
        assert nm in c.features and c.column(nm).kind == "numeric"
    assert c.derive == derived_specs(b.features.derive) and c.date_inputs == ["signup_date", "last_call"]
    assert data.to_dict()["derived"][-1]["days_between"] == ["signup_date", "last_call"]
    assert any("derived date features added" in n for n in data.notes)
    # no derive in the brief: no derived column
    b2 = load_brief(write_brief(tmp_path / "b2.yaml", "d.csv"))
    assert not any(c.endswith("_year") for c in load_dataset(b2).train.columns)


def test_deriving_from_a_text_column_is_refused(tmp_path):
    make_churn(100).write_csv(tmp_path / "d.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "d.csv", features={"derive": [
        {"column": "Plan Type", "parts": ["year"]}]}))
    with pytest.raises(DataError, match="plan_type.*as a date"):
        load_dataset(b)


# ---------------------------------------------------------------------------------------------- time split
def test_time_split_puts_the_latest_rows_in_test(tmp_path):
    _with_dates(800).write_csv(tmp_path / "d.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "d.csv",
                               data={"split": "time", "split_column": "Signup Date", "test_size": 0.25}))
    data = load_dataset(b, seed=3)
    assert data.split == "time" and data.test.height == 200 and data.train.height == 600
    assert data.train.get_column("signup_date").max() <= data.test.get_column("signup_date").min()
    ts = data.to_dict()["time_split"]
    assert ts["column"] == "signup_date" and ts["test_from"] == str(data.test.get_column("signup_date").min())
    assert any("time split on signup_date" in n for n in data.notes)
    # the seed does not move a time split; a random split is not ordered by date
    assert load_dataset(b, seed=9).test.equals(data.test)
    r = load_dataset(load_brief(write_brief(tmp_path / "r.yaml", "d.csv")), seed=3)
    assert r.split == "random" and r.train.get_column("signup_date").max() > r.test.get_column("signup_date").min()


def test_time_split_needs_a_date_column(tmp_path):
    make_churn(200).write_csv(tmp_path / "d.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "d.csv", data={"split": "time", "split_column": "Plan Type"}))
    with pytest.raises(DataError, match="not a date"):
        load_dataset(b)


# ---------------------------------------------------------------------------------------------- duplicate headers
def _dup_csv(path):
    path.write_text("id,priors_count,age,priors_count,label\n1,3,30,3,0\n2,0,41,0,1\n3,5,22,5,1\n")
    return path


def test_duplicate_headers_refused_naming_both_positions(tmp_path):
    with pytest.raises(DataError) as err:
        read_table(_dup_csv(tmp_path / "d.csv"))
    msg = str(err.value)
    assert "columns 2 and 4" in msg and "priors_count" in msg and "allow_duplicate_headers" in msg


def test_duplicate_headers_renamed_when_allowed_and_recorded(tmp_path):
    df, renamed = read_table(_dup_csv(tmp_path / "d.csv"), allow_duplicate_headers=True)
    assert df.columns == ["id", "priors_count", "age", "priors_count_2", "label"]
    assert renamed == {"priors_count (column 4)": "priors_count_2"}
    # through the brief: recorded in the source (the manifest's renamed) and the notes
    n = 60
    rows = "\n".join(f"{i},{i % 4},{20 + i % 30},{i % 4},{i % 2}" for i in range(n))
    (tmp_path / "e.csv").write_text("ID,Priors Count,Age,Priors Count,Label\n" + rows + "\n")
    b = load_brief(write_brief(tmp_path / "b.yaml", "e.csv", target={"column": "Label", "positive_label": 1},
                               sensitive_features=[], data={"allow_duplicate_headers": True}))
    data = load_dataset(b)
    assert data.sources["train"].renamed["Priors Count (column 4)"] == "priors_count_2"
    assert data.to_dict()["renamed"]["train"]["Priors Count (column 4)"] == "priors_count_2"
    assert any("duplicate headers renamed" in x for x in data.notes)
    b2 = load_brief(write_brief(tmp_path / "b2.yaml", "e.csv", target={"column": "Label", "positive_label": 1},
                                sensitive_features=[]))
    with pytest.raises(DataError, match="columns 2 and 4"):
        load_dataset(b2)


def test_unique_headers_are_not_renamed(tmp_path):
    (tmp_path / "d.csv").write_text("a,b\n1,2\n")
    assert read_table(tmp_path / "d.csv")[1] == {}


# ---------------------------------------------------------------------------------------------- separators
def _semicolon_file(path, quoted=False):
    rng = np.random.default_rng(0)
    lines = ["id;city;note;amount"]
    for i in range(40):
        note = ", ".join(rng.choice(["late", "paid", "call back", "ok"], int(rng.integers(1, 4))))
        lines.append(f'{i};Paris;{chr(34) + note + chr(34) if quoted else note};{i * 1.5}')
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("quoted", [False, True])
def test_semicolon_file_with_commas_in_text_names_the_separator(tmp_path, quoted):
    p = _semicolon_file(tmp_path / "d.csv", quoted)
    with pytest.raises(DataError) as err:
        read_table(p)
    msg = str(err.value)
    assert "semicolon-separated" in msg and "data.separator: ';'" in msg
    assert "comma ','" in msg and "semicolon ';': 4 fields per line (consistent)" in msg
    df, _ = read_table(p, separator=";")
    assert df.columns == ["id", "city", "note", "amount"] and df.height == 40
    assert df.get_column("note").str.contains(",").any()


def test_comma_file_with_semicolons_in_quoted_text_reads(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text('id,note,amount\n1,"a; b; c",2.5\n2,"x",3\n3,"p; q",4\n')
    df, _ = read_table(p)
    assert df.get_column("note").to_list() == ["a; b; c", "x", "p; q"]
