"""The champion/challenger gate: a worse challenger refused, an equal one passes, a contract difference shown,
a champion that cannot score the test split refused with the reason. Cheap packages (test_release.build)."""

from __future__ import annotations

import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).parent))
import test_release as kit  # noqa: E402
from test_release import home  # noqa: E402,F401 - the fixture

from workbench.brief import DeploymentSpec  # noqa: E402
from workbench.registry.gates import GateReport, champion_challenger_gates, contract_diff  # noqa: E402
from workbench.tasks import get_task  # noqa: E402

BINARY = get_task("binary_classification")


def _scores(pkg: dict, X: pd.DataFrame) -> np.ndarray:
    from workbench.serving.scorer import OnnxScorer

    s = OnnxScorer(pkg["onnx"], pkg["inputs"])
    return s.scores({i["name"]: X[i["name"]].tolist() for i in pkg["inputs"]})


def _gates(champ: np.ndarray, chal: np.ndarray, y: np.ndarray, **kw):
    d = DeploymentSpec()
    return {g.name: g for g in champion_challenger_gates(
        task=BINARY, y=y, champion=champ, challenger=chal, primary="roc_auc", metric_tolerance=d.metric_tolerance,
        guardrail_tolerance=d.guardrail_tolerance, latency_ratio=d.latency_ratio, champion_tag="workbench-toy:v1",
        threshold=0.5, n_bootstrap=100, seed=3, **kw)}


def test_a_worse_challenger_is_refused_and_an_equal_one_passes(home):  # noqa: F811
    good, bad = kit.build(seed=0), kit.build(seed=1, worse=True)
    X, y = kit.frame(400, 11)
    a, b = _scores(good, X), _scores(bad, X)
    worse = _gates(a, b, y, latency_p99=(0.05, 0.06))
    g = worse["champion/challenger: primary metric (roc_auc)"]
    assert g.verdict == "fail" and g.figures["delta"] < -0.5
    assert g.figures["ci_low"] <= g.figures["delta"] <= g.figures["ci_high"] < 0
    assert "paired bootstrap" in g.detail and g.figures["seed"] == 3
    assert not GateReport("r", "m", list(worse.values())).passed
    equal = _gates(a, a.copy(), y, latency_p99=(0.05, 0.06))
    assert all(x.verdict != "fail" for x in equal.values()), {k: v.verdict for k, v in equal.items()}
    e = equal["champion/challenger: primary metric (roc_auc)"]
    assert e.figures["delta"] == 0 and e.figures["ci_low"] == e.figures["ci_high"] == 0
    assert equal["champion/challenger: calibration ECE"].figures["delta"] == 0
    # the bootstrap is seeded: the same figures twice
    again = _gates(a, b, y)["champion/challenger: primary metric (roc_auc)"]
    assert again.figures == g.figures


def test_guardrails_latency_and_fairness_regressions_fail():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 500)
    p = np.clip(0.5 * y + 0.25 + rng.normal(0, 0.1, 500), 0.01, 0.99)
    gaps = lambda hi: {"gaps": [{"feature": "region", "metric": "demographic_parity_difference",  # noqa: E731
                                 "ci_high": hi, "threshold": 0.3},
                                {"feature": "region", "metric": "equalized_odds_difference", "ci_high": hi,
                                 "threshold": None},  # not gated by the brief: not a guardrail
                                {"feature": "region", "metric": "demographic_parity_ratio", "ci_low": 1 - hi,
                                 "ci_high": 1.0, "threshold": 0.6}]}
    g = _gates(p, p, y, latency_p99=(0.5, 1.5), fairness=(gaps(0.10), gaps(0.20)))
    assert g["champion/challenger: single-row latency p99"].verdict == "fail"  # x3 > the brief's x2
    fair = g["champion/challenger: fairness demographic_parity_difference by region (upper bound)"]
    assert fair.verdict == "fail" and fair.figures["delta"] == pytest.approx(0.10)
    assert not any("equalized_odds_difference" in name for name in g)
    # a ratio gap is better when larger: a lower bound falling by 0.10 is the regression
    ratio = g["champion/challenger: fairness demographic_parity_ratio by region (lower bound)"]
    assert ratio.verdict == "fail" and ratio.figures["delta"] == pytest.approx(0.10)
    ok = _gates(p, p, y, latency_p99=(0.02, 0.05), fairness=(gaps(0.10), gaps(0.11)))
    assert ok["champion/challenger: single-row latency p99"].verdict == "pass"  # within 1 ms: machine noise
    assert ok["champion/challenger: fairness demographic_parity_difference by region (upper bound)"].verdict == "pass"
    # a worse-calibrated challenger (same ranking, so the same AUC) fails the ECE guardrail
    squashed = 0.5 + (p - 0.5) * 0.2
    cal = _gates(p, squashed, y)
    assert cal["champion/challenger: primary metric (roc_auc)"].verdict == "pass"
    assert cal["champion/challenger: calibration ECE"].verdict == "fail"


def test_contract_difference_is_shown():
    champ = [{"name": "size", "kind": "numeric", "nullable": False},
             {"name": "colour", "kind": "categorical", "nullable": False, "categories": ["blue", "red"]},
             {"name": "region", "kind": "categorical", "nullable": False, "categories": ["n", "s"]}]
    chal = [{"name": "size", "kind": "numeric", "nullable": True},
            {"name": "colour", "kind": "categorical", "nullable": False, "categories": ["blue", "green", "red"]},
            {"name": "weight", "kind": "numeric", "nullable": False}]
    d = contract_diff(champ, chal)
    assert d["added"] == ["weight"] and d["removed"] == ["region"]
    assert {c["name"]: c["what"] for c in d["changed"]} == {"size": ["nullable"], "colour": ["categories"]}
    rng = np.random.default_rng(1)
    y, p = rng.integers(0, 2, 200), rng.random(200)
    g = _gates(p, p, y, contract=d)["champion/challenger: contract"]
    assert g.verdict == "info" and "added: weight" in g.value and "removed: region" in g.value
    assert "changed: size (nullable)" in g.value and g.figures == d


def _frames(X: pd.DataFrame, y: np.ndarray) -> SimpleNamespace:
    return SimpleNamespace(X_test=X, y_test=y, classes=None, test_rows=np.arange(len(X)),
                           sensitive_test=pd.DataFrame(index=X.index))


def test_champion_gates_score_both_packages_and_refuse_a_champion_that_cannot_score(home):  # noqa: F811
    import polars as pl

    from workbench.registry.promote import champion_gates
    from workbench.serving.scorer import OnnxScorer

    champ = kit.build(seed=0)
    kit.register_first(champ)
    chal = kit.build(seed=1, n=900, drop=("region",))  # the challenger drops an input the champion reads
    X, y = kit.frame(300, 4)
    brief = SimpleNamespace(deployment=DeploymentSpec(), threshold=0.5)
    scorer = OnnxScorer(chal["onnx"], chal["inputs"])
    kw = dict(brief=brief, task=BINARY, challenger=scorer, challenger_inputs=chal["inputs"],
              row={c: [X[c].iloc[0]] for c in ("size", "weight", "colour")}, primary="roc_auc", latency_calls=50,
              seed=1, n_bootstrap=50)
    Xc = X[["size", "weight", "colour"]]
    # the raw test rows still hold region: the champion reads it from there, and the gates compare
    gates = {g.name: g for g in champion_gates(champ["tag"], frames=_frames(Xc, y), raw_test=pl.from_pandas(X),
                                               **kw)}
    assert gates["champion/challenger: contract"].figures["removed"] == ["region"]
    primary = gates["champion/challenger: primary metric (roc_auc)"]
    assert primary.verdict == "pass" and "raw test rows" in primary.detail
    assert "champion/challenger: single-row latency p99" in gates
    # region found nowhere: the gate fails with that reason
    refused = champion_gates(champ["tag"], frames=_frames(Xc, y), raw_test=pl.from_pandas(Xc), **kw)
    assert len(refused) == 1 and refused[0].verdict == "fail" and "region" in refused[0].detail
    assert refused[0].figures["removed"] == ["region"]
