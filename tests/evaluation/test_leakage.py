"""The leakage report after the prototype: Discovery's signals, the SHAP share, too good to be true, acknowledgements."""

from __future__ import annotations

import datetime as dt
import json

import yaml

from fixtures.compas_like import LEAKS, make_compas_like
from testkit import make_churn, write_brief
from workbench.brief import load_brief
from workbench.data import audit_dataset, infer_contract, load_dataset
from workbench.evaluation.leakage import LeakageReport, leakage_report


def _brief(tmp_path, **over):
    make_churn(100).write_csv(tmp_path / "d.csv")
    return load_brief(write_brief(tmp_path / "b.yaml", "d.csv", **over))


def _board(model=0.80, rule=0.70, primary="roc_auc", task="binary_classification", metric=None):
    metric = metric or primary
    return {"task": task, "primary": primary, "selected": "hgb",
            "models": {"hgb": {"kind": "candidate", "test": {"metrics": {metric: model}}},
                       "rule": {"kind": "baseline", "test": {"metrics": {metric: rule}},
                                "fitted": {"rule_scores": {"a": 0.6, "is_recid": rule}}}}}


def test_clean_run_passes(tmp_path):
    r = leakage_report({"leakage_signals": []}, {"importance": {"a": 0.3, "b": 0.3, "c": 0.4}}, _board(), _brief(tmp_path))
    assert r.verdict == "pass" and r.blocking == [] and r.signals == []


def test_shap_share_warns_above_the_brief_level(tmp_path):
    b = _brief(tmp_path)
    r = leakage_report(None, {"importance": {"a": 0.7, "b": 0.2, "c": 0.1}}, _board(), b)
    [s] = r.signals
    assert s["signal"] == "shap_share" and s["column"] == "a" and s["value"] == 0.7 and s["level"] == "warn"
    assert r.verdict == "warn" and r.blocking == []
    b2 = _brief(tmp_path, leakage={"shap_share_warn": 0.8})
    assert leakage_report(None, {"importance": {"a": 0.7, "b": 0.3}}, _board(), b2).signals == []


def test_too_good_held_out_metric_blocks_unless_acknowledged(tmp_path):
    r = leakage_report(None, None, _board(model=0.9993, rule=0.7), _brief(tmp_path))
    [s] = r.signals
    assert s["signal"] == "too_good" and s["column"] == "held_out_metric" and s["level"] == "block"
    assert r.blocking == ["held_out_metric"] and r.verdict == "block"
    ack = _brief(tmp_path, leakage={"acknowledge": {"held_out_metric": "the task is known to be this easy"}})
    r2 = leakage_report(None, None, _board(model=0.9993, rule=0.7), ack)
    assert r2.blocking == [] and r2.signals[0]["acknowledged"].startswith("the task")
    assert r2.verdict == "warn"


def test_one_feature_rule_near_the_ceiling_blocks_its_feature(tmp_path):
    r = leakage_report(None, None, _board(model=0.98, rule=0.965), _brief(tmp_path))
    [s] = r.signals
    assert s["signal"] == "too_good" and s["column"] == "is_recid" and r.blocking == ["is_recid"]
    assert leakage_report(None, None, _board(model=0.98, rule=0.90), _brief(tmp_path)).signals == []


def test_ceilings_per_task(tmp_path):
    reg = _board(model=0.995, rule=0.5, primary="mae", task="regression", metric="r2")
    assert leakage_report(None, None, reg, _brief(tmp_path)).blocking == ["held_out_metric"]
    mc = _board(model=0.97, rule=0.6, primary="macro_f1", task="multiclass_classification")
    assert leakage_report(None, None, mc, _brief(tmp_path)).signals == []


def test_compas_like_naive_brief_is_blocked_naming_the_leaks(tmp_path):
    make_compas_like(3000).write_csv(tmp_path / "compas.csv")
    brief = {"name": "compas", "objective": "Predict two-year recidivism at screening.",
             "data": {"train": "compas.csv", "collected": 2016, "prediction_time": "compas_screening_date"},
             "target": {"column": "two_year_recid", "positive_label": 1}, "sensitive_features": ["race"],
             "success": {"metric": "roc_auc", "threshold": 0.7}, "latency_budget_ms": 50}
    (tmp_path / "b.yaml").write_text(yaml.safe_dump(brief))
    b = load_brief(tmp_path / "b.yaml")
    data = load_dataset(b, seed=0)
    c = infer_contract(data.train, b)
    audit = json.loads(audit_dataset(data, b, c, as_of=dt.date(2026, 6, 1)).to_json())
    shap = {"importance": {"decile_score": 0.5, "age": 0.3, "priors_count": 0.2}}
    r = leakage_report(audit, shap, _board(model=0.72, rule=0.66), b)
    assert r.verdict == "block" and set(LEAKS) | {"r_offense_date"} <= set(r.blocking)
    assert not set(LEAKS) & set(c.features)
    # the report round-trips and renders
    d = json.loads(r.to_json())
    assert set(d) >= {"signals", "blocking", "verdict"} and d["verdict"] == "block"
    assert LeakageReport.from_dict(d).to_dict() == r.to_dict()
    assert "is_recid" in r._repr_html_() and r.summary()["blocking"] == r.blocking
    for s in d["signals"]:
        assert set(s) == {"signal", "column", "value", "threshold", "level", "evidence", "acknowledged"}
    # acknowledging every blocking column (with a reason) clears the verdict of block
    ack = b.model_copy(update={"leakage": b.leakage.model_copy(update={
        "acknowledge": {c_: "reviewed" for c_ in r.blocking}})})
    assert leakage_report(audit, shap, _board(model=0.72, rule=0.66), ack).blocking == []
