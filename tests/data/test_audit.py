from __future__ import annotations

import datetime as dt
import json

import numpy as np
import polars as pl
import pytest
from sklearn.metrics import roc_auc_score

from conftest import ADULT_BRIEF, make_churn, write_brief
from workbench.brief import load_brief
from workbench.data import audit_dataset, infer_contract, load_dataset
from workbench.data.audit import univariate_auc

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
