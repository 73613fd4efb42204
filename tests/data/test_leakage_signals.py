"""Discovery's leakage signals: single-feature levels, name/value mirrors, dates after the prediction time, and
the COMPAS-like fixture with a naive brief (leaks flagged block, excluded by the contract, named)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
import pytest
import yaml

from fixtures.compas_like import LEAKS, make_compas_like
from testkit import make_churn, write_brief
from workbench.brief import load_brief
from workbench.data import audit_dataset, infer_contract, load_dataset
from workbench.data.audit import leakage_levels, name_mirrors_target

AS_OF = dt.date(2026, 6, 1)


def _run(tmp_path, df, **overrides):
    df.write_csv(tmp_path / "d.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "d.csv", **overrides))
    data = load_dataset(b, seed=0)
    c = infer_contract(data.train, b)
    return b, data, c, audit_dataset(data, b, c, as_of=AS_OF)


def _compas(tmp_path, **extra):
    make_compas_like(3000).write_csv(tmp_path / "compas.csv")
    brief = {"name": "compas", "objective": "Predict two-year recidivism at screening.",
             "data": {"train": "compas.csv", "collected": 2016}, "target": {"column": "two_year_recid",
             "positive_label": 1}, "sensitive_features": ["race", "sex"],
             "success": {"metric": "roc_auc", "threshold": 0.7}, "latency_budget_ms": 50}
    for k, v in extra.items():
        brief[k] = {**brief[k], **v} if isinstance(brief.get(k), dict) else v
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(brief))
    b = load_brief(tmp_path / "b.yaml")
    data = load_dataset(b, seed=0)
    c = infer_contract(data.train, b)
    return b, data, c, audit_dataset(data, b, c, as_of=AS_OF)


def _planted(n=3000, share=0.03, seed=1):
    """A churn frame with a 0/1 copy of the target, ``share`` of each class flipped: ROC-AUC 1 - share."""
    df = make_churn(n, seed=seed)
    rng = np.random.default_rng(seed)
    y = df.get_column("Churned").to_numpy()
    flip = rng.random(n) < share
    return df.with_columns(pl.Series("Refund Flag", np.where(flip, 1 - y, y)))


def test_task_default_levels(tmp_path):
    b, *_ = _run(tmp_path, make_churn(200))
    assert leakage_levels(b) == (0.90, 0.95)
    b2 = b.model_copy(update={"leakage": b.leakage.model_copy(update={"block_score": 0.99, "warn_score": 0.8})})
    assert leakage_levels(b2) == (0.8, 0.99)


def test_planted_leak_at_auc_097_blocks_and_is_excluded(tmp_path):
    _, _, c, a = _run(tmp_path, _planted())
    row = next(r for r in a.leakage if r["column"] == "refund_flag")
    assert 0.96 <= row["separation_auc"] <= 0.98 and row["level"] == "block" and row["flagged"]
    assert c.column("refund_flag").role == "excluded" and "possible leakage" in c.column("refund_flag").reason
    assert a.leakage_blocking == ["refund_flag"]
    sig = next(s for s in a.leakage_signals if s["column"] == "refund_flag")
    assert sig["signal"] == "single_feature" and sig["level"] == "block" and sig["threshold"] == 0.95
    # the honest features: no signal at all
    assert {s["column"] for s in a.leakage_signals} == {"refund_flag"}


def test_planted_leak_below_block_warns_and_stays_a_feature(tmp_path):
    _, _, c, a = _run(tmp_path, _planted(share=0.08))  # AUC about 0.92: warn only
    sig = next(s for s in a.leakage_signals if s["column"] == "refund_flag")
    assert sig["level"] == "warn" and a.leakage_blocking == []
    assert "refund_flag" in c.features


def test_acknowledged_leak_is_not_blocking_but_stays_out(tmp_path):
    _, _, c, a = _run(tmp_path, _planted(), leakage={"acknowledge": {"Refund Flag": "confirmed: kept out"}})
    assert "refund_flag" not in c.features and a.leakage_blocking == []
    sig = next(s for s in a.leakage_signals if s["column"] == "refund_flag")
    assert sig["level"] == "block" and sig["acknowledged"] == "confirmed: kept out"


def test_included_flagged_column_is_a_feature_and_still_blocks_until_acknowledged(tmp_path):
    _, _, c, a = _run(tmp_path, _planted(), features={"include": ["Tenure Months", "Refund Flag"]})
    assert "refund_flag" in c.features and a.leakage_blocking == ["refund_flag"]


def test_brief_block_level_applies(tmp_path):
    _, _, c, a = _run(tmp_path, _planted(), leakage={"block_score": 0.99, "warn_score": 0.9})
    assert "refund_flag" in c.features and a.leakage_blocking == []


@pytest.mark.parametrize("column,target,mirrors", [
    ("is_recid", "two_year_recid", True), ("violent_recid", "two_year_recid", True), ("logwage", "wage", True),
    ("price_per_sqft", "price", True), ("wage_band", "wage", True), ("decile_score", "two_year_recid", False),
    ("relationship", "income", False), ("tenure_months", "churned", False), ("year", "two_year_recid", False),
])
def test_name_mirror(column, target, mirrors):
    assert (name_mirrors_target(column, target) is not None) == mirrors


def test_name_mirror_column_warns_and_honest_names_do_not(tmp_path):
    rng = np.random.default_rng(3)
    df = make_churn(600).with_columns(pl.Series("Churned Before", rng.integers(0, 2, 600)))
    _, _, c, a = _run(tmp_path, df)
    sigs = [s for s in a.leakage_signals if s["signal"] == "name_mirror"]
    assert [(s["column"], s["level"]) for s in sigs] == [("churned_before", "warn")]
    assert "churned_before" in c.features and a.leakage_blocking == []


def test_value_mirror_of_a_numeric_target_blocks(tmp_path):
    rng = np.random.default_rng(4)
    n = 800
    size = rng.uniform(30, 200, n)
    price = 1000 * size + rng.normal(0, 50000, n)
    df = pl.DataFrame({"Size": size, "Noise": rng.normal(size=n), "Price K": np.log(np.clip(price, 1, None)) ** 3,
                       "Price": price})
    df.write_csv(tmp_path / "r.csv")
    b = load_brief(write_brief(tmp_path / "b.yaml", "r.csv", task="regression", target={"column": "Price", "positive_label": None},
                               success={"metric": "mae", "threshold": 1e9}, sensitive_features=[],
                               fairness={"thresholds": {}}))
    data = load_dataset(b, seed=0)
    c = infer_contract(data.train, b)
    a = audit_dataset(data, b, c, as_of=AS_OF)
    mirror = [s for s in a.leakage_signals if s["signal"] == "name_mirror" and s["level"] == "block"]
    assert [s["column"] for s in mirror] == ["price_k"] and mirror[0]["value"] >= 0.995
    assert c.column("price_k").role == "excluded" and "size" in c.features and "noise" in c.features
    assert not any(s["column"] in ("size", "noise") for s in a.leakage_signals)


def _dated(n=600, post_share=0.0, seed=5):
    rng = np.random.default_rng(seed)
    df = make_churn(n, seed=seed)
    start = np.array([dt.date(2024, 1, 1) + dt.timedelta(days=int(d)) for d in rng.integers(0, 300, n)])
    before = [str(s - dt.timedelta(days=int(d))) for s, d in zip(start, rng.integers(1, 400, n), strict=True)]
    late = rng.random(n) < post_share
    other = [str(s + dt.timedelta(days=int(d))) if lt else str(s - dt.timedelta(days=int(d)))
             for s, d, lt in zip(start, rng.integers(1, 90, n), late, strict=True)]
    return df.with_columns(pl.Series("Scored On", [str(s) for s in start]), pl.Series("Signed Up", before),
                           pl.Series("Closed On", other))


def test_post_outcome_date_blocks_with_its_share(tmp_path):
    _, _, c, a = _run(tmp_path, _dated(post_share=0.4), data={"prediction_time": "Scored On"},
                      features={"derive": [{"days_between": ["Scored On", "Closed On"], "name": "days_to_close"}]})
    sigs = {s["column"]: s for s in a.leakage_signals if s["signal"] == "post_prediction_time"}
    assert set(sigs) == {"closed_on", "days_to_close"}
    assert sigs["closed_on"]["level"] == "block" and 0.3 < sigs["closed_on"]["value"] < 0.5
    assert c.column("closed_on").role == "date"
    assert c.column("days_to_close").role == "excluded" and "post_prediction_time" in c.column("days_to_close").reason
    assert set(a.leakage_blocking) == {"closed_on", "days_to_close"}


def test_dates_before_the_prediction_time_are_not_signalled(tmp_path):
    _, _, c, a = _run(tmp_path, _dated(post_share=0.0), data={"prediction_time": "Scored On"})
    assert not [s for s in a.leakage_signals if s["signal"] == "post_prediction_time"]
    # without data.prediction_time there is nothing to compare with
    _, _, _, a2 = _run(tmp_path, _dated(post_share=0.4))
    assert not [s for s in a2.leakage_signals if s["signal"] == "post_prediction_time"]


def test_compas_like_naive_brief_blocks_the_leaks_by_name(tmp_path):
    _, _, c, a = _compas(tmp_path, data={"prediction_time": "compas_screening_date"})
    scores = {r["column"]: r["separation_auc"] for r in a.leakage}
    for leak in LEAKS:
        assert 0.96 <= scores[leak] <= 0.98, (leak, scores[leak])
        assert c.column(leak).role == "excluded" and "possible leakage" in c.column(leak).reason
        assert leak not in c.features
    assert set(LEAKS) | {"r_offense_date"} <= set(a.leakage_blocking)
    assert 0.6 < scores["decile_score"] < 0.75 and "decile_score" in c.features
    for d in ("compas_screening_date", "dob", "c_jail_in", "r_offense_date"):
        assert c.column(d).role == "date" and c.column(d).reason == "date"
    assert c.column("id").role == "excluded" and c.column("name").role == "excluded"
    assert ("is_recid", "name_mirror") in {(s["column"], s["signal"]) for s in a.leakage_signals}
    assert "blocking" in a._repr_html_() and "is_recid" in a.to_dict()["leakage_blocking"]


def test_compas_like_with_the_leaks_excluded_is_not_blocked(tmp_path):
    _, _, c, a = _compas(tmp_path, data={"prediction_time": "compas_screening_date"},
                         features={"exclude": [*LEAKS, "r_offense_date", "c_jail_out"]})
    assert a.leakage_blocking == []
    assert not [s for s in a.leakage_signals if s["level"] == "block"]
