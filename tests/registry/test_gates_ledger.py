from __future__ import annotations

import json

import pytest

from workbench.errors import WorkbenchError
from workbench.registry import ledger
from workbench.registry.gates import GateReport, baseline_gate, fairness_gates, latency_gate
from workbench.serving.pointer import production_pointer, production_tag


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bento"))
    monkeypatch.delenv("WORKBENCH_MODEL_TAG", raising=False)
    return tmp_path / "bento"


def _gap(feature, verdict, hi, threshold=0.2, metric="equalized_odds_difference"):
    return {"feature": feature, "metric": metric, "value": hi / 2, "ci_low": 0.0, "ci_high": hi,
            "threshold": threshold, "verdict": verdict, "groups_used": ["a", "b"]}


def test_fairness_gate_uses_upper_bound_and_never_passes_small_slices():
    f = {"confidence_level": 0.95, "gaps": [_gap("sex", "within threshold", 0.15), _gap("race", "exceeds threshold", 0.31),
                                            _gap("tiny", "insufficient evidence", 0.9)]}
    gates = {g.name: g for g in fairness_gates(f)}
    assert gates["fairness: equalized_odds_difference by sex"].verdict == "pass"
    assert gates["fairness: equalized_odds_difference by race"].verdict == "fail"
    assert gates["fairness: equalized_odds_difference by race"].value == 0.31
    assert gates["fairness: equalized_odds_difference by tiny"].verdict == "info"
    only_small = {"confidence_level": 0.95, "gaps": [_gap("tiny", "insufficient evidence", 0.9)]}
    assert any(g.verdict == "fail" for g in fairness_gates(only_small))


def test_gate_report_passes_only_without_failures():
    lb = {"best_baseline": "rule", "comparisons": {"hgb": {"primary": "pr_auc", "primary_delta": 0.03,
                                                            "min_improvement": 0.05, "candidate": {"pr_auc": 0.6},
                                                            "baseline": {"pr_auc": 0.57}}}}
    r = GateReport("run", "hgb", [baseline_gate(lb, "hgb"), latency_gate(1.0, 0.5, 10, 100)])
    assert not r.passed and [g.name for g in r.failed] == ["beats baseline (pr_auc)"]
    assert "NO-GO" in r._repr_html_()
    assert json.loads(r.to_json())["passed"] is False


def test_ledger_is_append_only_and_rollback_walks_back(home, monkeypatch):
    from workbench.registry.store import list_models, save_model_package

    tags = []
    for i in range(3):
        tag = save_model_package({"model.onnx": bytes([i])}, name="workbench-t", labels={"stage": "certified"},
                                 metadata={})
        ledger.append({"action": "promote", "tag": tag, "sha256": f"s{i}", "run_id": f"r{i}", "brief": "t"})
        ledger.set_production(tag, sha256=f"s{i}", run_id=f"r{i}", brief="t")
        tags.append(tag)
    assert production_tag() == tags[2]
    before = ledger.ledger_path().read_text()
    e = ledger.rollback(reason="bad drift")
    assert e["tag"] == tags[1] and e["from_tag"] == tags[2] and production_pointer()["tag"] == tags[1]
    assert ledger.ledger_path().read_text().startswith(before)  # only appended
    assert ledger.rollback()["tag"] == tags[0]
    with pytest.raises(WorkbenchError, match="no earlier certified model"):
        ledger.rollback()
    monkeypatch.setenv("WORKBENCH_MODEL_TAG", tags[2])
    assert production_tag() == tags[2]
    assert len(list_models()) == 3


def test_rollback_with_nothing_in_production(home):
    with pytest.raises(WorkbenchError, match="nothing is in production"):
        ledger.rollback()
    with pytest.raises(LookupError, match="workbench promote latest"):
        production_tag()
