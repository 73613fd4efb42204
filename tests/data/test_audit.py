from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from testkit import ADULT_BRIEF, make_churn, write_brief
from workbench.brief import Brief, FeatureSpec, load_brief
from workbench.data import audit_dataset, infer_contract, load_dataset
from workbench.data.audit import univariate_auc
from workbench.data.io import Dataset

AS_OF = dt.date(2026, 6, 1)


def _audit(tmp_path, df, **brief_overrides):
    df.write_csv(tmp_path / "d.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "d.csv", **brief_overrides))
    data = load_dataset(b, seed=0)
    return audit_dataset(data, b, infer_contract(data.train, b), as_of=AS_OF), data


def test_univariate_auc_matches_sklearn():
    rng = np.random.default_rng(0)
    x = rng.integers(0, 20, 2000)
    y = (rng.random(2000) < 0.2 + 0.02 * x).astype(int)
    vals = np.unique(x)
    pos = np.array([(y[x == v] == 1).sum() for v in vals])
    neg = np.array([(y[x == v] == 0).sum() for v in vals])
    assert univariate_auc(pos, neg) == pytest.approx(roc_auc_score(y, x), abs=1e-12)


def test_clean_data_proceeds_and_is_deterministic(tmp_path):
    a1, _ = _audit(tmp_path, make_churn(800))
    a2, _ = _audit(tmp_path, make_churn(800))
    assert a1.quality.verdict == "proceed" and a1.quality.total >= 18
    assert json.dumps(a1.to_dict()) == json.dumps(a2.to_dict())
    assert a1.quality["timeliness"].score == 5
    assert len(a1.quality.dimensions) == 6 and all(0 <= d.score <= 5 and d.evidence for d in a1.quality.dimensions)


def test_duplicates_and_conflicting_labels_counted(tmp_path):
    df = make_churn(400)
    dup = df.head(10)
    conflict = df.slice(20, 5).with_columns((1 - pl.col("Churned")).alias("Churned"))
    a, data = _audit(tmp_path, pl.concat([df, dup, conflict]), data={"train": "d.csv", "test_size": 0.01})
    # Duplicates counted on the training split: recount independently.
    full = data.train
    assert a.duplicates["duplicate_rows"] == full.height - full.unique().height
    assert a.duplicates["duplicate_rows"] > 0
    feats = [c for c in full.columns if c != "churned"]
    n_conf = full.group_by(feats).agg(pl.col("churned").n_unique().alias("k"), pl.len()).filter(pl.col("k") > 1)
    assert a.duplicates["conflicting_groups"] == n_conf.height > 0


def test_leakage_flagged(tmp_path):
    df = make_churn(600).with_columns((pl.col("Churned") * 100 + pl.col("Tenure Months") % 3).alias("Refund Amount"))
    a, _ = _audit(tmp_path, df)
    flagged = [x["column"] for x in a.leakage if x["flagged"]]
    assert flagged == ["refund_amount"]
    assert any("leakage" in w for w in a.warnings)
    assert a.quality["relevance"].score < 5


def test_target_rate_by_group_and_small_slices(tmp_path):
    a, data = _audit(tmp_path, make_churn(600), fairness={"min_slice_size": 200})
    rows = a.target_by_group["region"]
    tr = data.train
    for r in rows:
        sub = tr.filter(pl.col("region") == r["group"])
        assert r["count"] == sub.height
        assert r["positive_rate"] == pytest.approx(sub.get_column("churned").mean(), abs=1e-6)
        assert r["evidence"] == ("ok" if sub.height >= 200 else "insufficient evidence")


def test_poor_data_scores_fix_data_first(tmp_path):
    rng = np.random.default_rng(1)
    df = make_churn(60)
    mask = rng.random((60, 3)) < 0.5
    df = df.with_columns(
        [pl.when(pl.Series(mask[:, i])).then(None).otherwise(pl.col(c)).alias(c)
         for i, c in enumerate(["Tenure Months", "Plan Type", "MonthlyCharges"])]
    )
    df = pl.concat([df, df, df])  # heavy duplication
    a, _ = _audit(tmp_path, df, data={"train": "d.csv", "collected": 1990})
    assert a.quality.verdict == "fix data first" and a.quality.total < 18
    assert a.quality["completeness"].score <= 1
    assert a.quality["consistency"].score <= 2
    assert a.warnings[0].startswith("data quality")


def test_overlap_detected(tmp_path):
    df = make_churn(300)
    df.write_csv(tmp_path / "train.csv")
    df.head(30).write_csv(tmp_path / "test.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "train.csv", data={"train": "train.csv", "test": "test.csv"}))
    data = load_dataset(b)
    a = audit_dataset(data, b, infer_contract(data.train, b), as_of=AS_OF)
    assert a.overlap["test_rows_in_train"] == 30 and a.overlap["fraction"] == 1.0


def test_adult_audit_figures():
    b = load_brief(ADULT_BRIEF)
    data = load_dataset(b)
    a = audit_dataset(data, b, infer_contract(data.train, b), as_of=AS_OF)
    miss = {m["column"]: m["train_nulls"] for m in a.missingness}
    assert (miss["workclass"], miss["occupation"], miss["native_country"]) == (1836, 1843, 583)
    assert a.duplicates["duplicate_rows"] == 24
    assert a.class_balance["suggested_metric"] == "pr_auc"
    assert a.quality.verdict == "proceed"
    assert a.quality["timeliness"].score <= 1
    assert "<table" in a._repr_html_()


# ------------------------------------------------------------------------------------------------------------
# Duplicate and conflicting-label counts on tricky frames, checked against plain polars: a duplicate is a row
# equal to an earlier one (``df.unique()``), a conflict a group of identical inputs with more than one label
# (``n_unique`` of the target, which counts a null label as a label). The audit prefilters rows by hash, so
# each frame below holds values whose hashing could disagree with polars' equality.
def _tricky_brief(positive_label: str | int | bool = 1) -> Brief:
    return Brief.model_validate({
        "name": "tricky", "objective": "Count duplicates on frames built in the test.",
        "data": {"train": "unused.parquet", "collected": "2026-01-01"},
        "target": {"column": "y", "positive_label": positive_label},
        "success": {"metric": "pr_auc", "threshold": 0.5}, "latency_budget_ms": 10,
    })


def _plain_duplicates(train: pl.DataFrame, target: str = "y") -> dict:
    inputs = [c for c in train.columns if c != target]
    conflicts = (train.group_by(inputs).agg(pl.col(target).n_unique().alias("labels"), pl.len().alias("rows"))
                 .filter(pl.col("labels") > 1))
    return {"duplicate_rows": train.height - train.unique().height, "conflicting_groups": conflicts.height,
            "conflicting_rows": int(conflicts.get_column("rows").sum())}


def _audit_frame(train: pl.DataFrame, test: pl.DataFrame | None = None, *, positive_label=1):
    brief = _tricky_brief(positive_label)
    data = Dataset(train=train, test=train.head(0) if test is None else test, sources={}, split="file")
    return audit_dataset(data, brief, infer_contract(train, brief), as_of=AS_OF)


def _counts(report) -> dict:
    return {k: report.duplicates[k] for k in ("duplicate_rows", "conflicting_groups", "conflicting_rows")}


def _nan(bits: int) -> float:
    return float(np.array([bits], dtype=np.uint64).view(np.float64)[0])


@pytest.mark.parametrize("dtype", [pl.Float64, pl.Float32])
def test_duplicates_treat_signed_zeros_as_equal(dtype):
    train = pl.DataFrame({
        "x": pl.Series([0.0, -0.0, 0.0, -0.0, 1.5, 1.5, 2.5], dtype=dtype),
        "k": [1, 1, 2, 2, 3, 3, 4],
        "y": [0, 0, 1, 0, 1, 1, 0],
    })
    assert train.get_column("x").cast(pl.Float64).to_numpy().view(np.uint64)[1] == 1 << 63  # -0.0 is kept
    expected = {"duplicate_rows": 2, "conflicting_groups": 1, "conflicting_rows": 2}
    assert _plain_duplicates(train) == expected
    assert _counts(_audit_frame(train)) == expected


def test_duplicates_treat_every_nan_payload_as_equal():
    payloads = [0x7FF8000000000000, 0x7FF8000000000001, 0xFFF8000000000000, 0x7FF0000000000001]
    train = pl.DataFrame({
        "x": [*(_nan(b) for b in payloads), 1.0, 1.0, None, None],
        "k": [7, 7, 7, 7, 7, 8, 9, 9],
        "y": [1, 1, 0, 1, 0, 0, 1, 1],
    })
    bits = train.get_column("x").head(4).to_numpy().view(np.uint64)
    assert len(set(bits.tolist())) == 4  # the payloads survive into the frame
    # NaN rows: one input group with labels {0, 1}; three of its rows are equal; two null rows are equal
    expected = {"duplicate_rows": 3, "conflicting_groups": 1, "conflicting_rows": 4}
    assert _plain_duplicates(train) == expected
    assert _counts(_audit_frame(train)) == expected


def test_null_target_counts_as_a_label():
    train = pl.DataFrame({
        "x": [1, 1, 1, 2, 2, 3, 3, 4],
        "z": ["a", "a", "a", "b", "b", "c", "c", "d"],
        "y": pl.Series([None, None, 1, None, 0, 1, 1, 0], dtype=pl.Int64),
    })
    # x=1: labels {null, 1}; x=2: {null, 0}; x=3 repeats one label; two pairs of equal rows
    expected = {"duplicate_rows": 2, "conflicting_groups": 2, "conflicting_rows": 5}
    assert _plain_duplicates(train) == expected
    a = _audit_frame(train)
    assert _counts(a) == expected
    assert a.class_balance["train"]["counts"] == {"0": 2, "1": 3, "None": 3}


def test_boolean_target():
    train = pl.DataFrame({
        "x": [1, 1, 2, 2, 3, 3, 4, 5],
        "y": [True, True, True, False, False, False, True, None],
    })
    expected = {"duplicate_rows": 2, "conflicting_groups": 1, "conflicting_rows": 2}
    assert _plain_duplicates(train) == expected
    a = _audit_frame(train, positive_label=True)
    assert _counts(a) == expected
    assert a.class_balance["train"]["positive_rate"] == pytest.approx(4 / 7, abs=1e-6)


def test_categorical_and_enum_columns():
    level = pl.Enum(["low", "high"])
    train = pl.DataFrame({
        "c": pl.Series(["a", "a", "b", "b", "a", "b", "a"], dtype=pl.Categorical),
        "e": pl.Series(["low", "low", "high", "high", "low", "low", "low"], dtype=level),
        "k": [1, 1, 2, 2, 3, 3, 1],
        "y": pl.Series(["no", "no", "yes", "no", "yes", "yes", "yes"], dtype=pl.Enum(["no", "yes"])),
    })
    # (a, low, 1) three times with labels {no, yes}; (b, high, 2) twice with {yes, no}
    expected = {"duplicate_rows": 1, "conflicting_groups": 2, "conflicting_rows": 5}
    assert _plain_duplicates(train) == expected
    a = _audit_frame(train, positive_label="yes")
    assert _counts(a) == expected
    assert a.class_balance["train"]["positive_rate"] == pytest.approx(4 / 7, abs=1e-6)


def test_columns_the_hash_skips_still_count():
    # binary inputs stay out of the row hash: every row goes through the exact group-by
    train = pl.DataFrame({
        "b": pl.Series([b"\x00", b"\x00", b"\x00\x00", b"\x00\x00", b"", b"", b"\xff"], dtype=pl.Binary),
        "y": [0, 0, 0, 1, 1, 1, 0],
    })
    brief = _tricky_brief().model_copy(update={"features": FeatureSpec(include=["b"])})
    a = audit_dataset(Dataset(train=train, test=train.head(0), sources={}, split="file"), brief,
                      infer_contract(train, brief), as_of=AS_OF)
    expected = {"duplicate_rows": 2, "conflicting_groups": 1, "conflicting_rows": 2}
    assert _plain_duplicates(train) == expected
    assert _counts(a) == expected


def test_column_named_like_a_profile_count():
    train = pl.DataFrame({"n": [1, 1, 2, 3], "pos": [5, 5, 6, 7], "y": [0, 0, 1, 1]})
    assert _counts(_audit_frame(train)) == _plain_duplicates(train)


@pytest.mark.parametrize("test_rows", [0, 1])
def test_empty_or_single_row_test_split(test_rows):
    train = pl.DataFrame({"x": [1, 1, 2, 2, 3, 4], "g": ["a", "a", "b", "b", "a", "b"],
                          "y": [0, 0, 1, 0, 1, 0]})
    a = _audit_frame(train, train.head(test_rows))
    expected = {"duplicate_rows": 1, "conflicting_groups": 1, "conflicting_rows": 2}
    assert _plain_duplicates(train) == expected and _counts(a) == expected
    assert a.rows == {"train": 6, "test": test_rows}
    assert a.overlap == {"test_rows_in_train": test_rows, "fraction": float(test_rows)}
    assert a.class_balance["test"]["positive_rate"] == 0.0
