"""Fairness gates that never pass by leaving groups out, for the three tasks: insufficient groups kept with their
intervals, all-groups and Fairlearn figures, the review verdict and its acknowledgement, per-feature bootstrap
streams, and bins in order."""

from __future__ import annotations

import json
from types import SimpleNamespace

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import polars as pl
import pytest
from fairlearn.metrics import MetricFrame, equalized_odds_difference
from sklearn.metrics import mean_absolute_error

from workbench.brief import FairnessAck, FairnessSpec
from workbench.evaluation.fairness import REVIEW, fairness_report, group_codes
from workbench.evaluation.multiclass import multiclass_fairness_report
from workbench.evaluation.regression import regression_fairness_report
from workbench.registry.fairness_gate import fairness_gates
from workbench.tasks import get_task

EO = {"equalized_odds_difference": 0.3}


def gap(report, feature: str, metric: str) -> dict:
    return next(g for g in report.gaps if g["feature"] == feature and g["metric"] == metric)


def binary_data(n: int = 3000, *, small: int = 40, small_tpr: float | None = None, seed: int = 0):
    """Groups A, B (large, same behaviour) and S (``small`` rows). With ``small_tpr`` the model finds only that
    share of S's positives."""
    rng = np.random.default_rng(seed)
    g = np.r_[rng.choice(["A", "B"], n - small), np.full(small, "S")]
    y = (rng.random(n) < 0.5).astype(int)
    p = np.clip(0.2 + 0.6 * y + rng.normal(0, 0.1, n), 0, 1)
    if small_tpr is not None:
        s_pos = np.flatnonzero((g == "S") & (y == 1))
        miss = s_pos[int(round(small_tpr * s_pos.size)):]
        p[miss] = 0.1
    age = rng.integers(18, 80, n)
    return y, p, pd.DataFrame({"g": g, "age": age.astype(str)}), age


# ------------------------------------------------------------------------------------------- binary verdicts
def test_small_group_with_a_plausible_gap_asks_for_review():
    y, p, s, _ = binary_data(small=40, small_tpr=0.8)
    r = fairness_report(y, p, s[["g"]], thresholds=EO, min_slice_size=30, n_bootstrap=200)
    eo = gap(r, "g", "equalized_odds_difference")
    srow = next(row for row in r.groups["g"] if row["group"] == "S")
    assert srow["evidence_tpr_fpr"] == "insufficient evidence" and None not in srow["ci"]["tpr"]
    assert eo["groups_used"] == ["A", "B"] and eo["groups_insufficient"] == ["S"]
    assert eo["ci_high"] <= 0.3 and eo["ci_low_insufficient"] <= 0.3
    assert eo["verdict"] == REVIEW and r.verdict == REVIEW
    assert eo["ci_high_all_groups"] > eo["ci_high"]  # the small group's width is in the all-groups interval
    assert eo["fairlearn_value"] == pytest.approx(
        equalized_odds_difference(y, (p > 0.5).astype(int), sensitive_features=s["g"]), abs=1e-12)
    assert eo["fairlearn_value"] == pytest.approx(eo["value_all_groups"], abs=1e-12)
    assert eo["acknowledged"] == [] and eo["groups_unacknowledged"] == ["S"]
    gate = next(x for x in fairness_gates(r.to_dict()) if x.name == "fairness: equalized_odds_difference by g")
    assert gate.verdict == "fail" and "S" in gate.detail and "Fairlearn" in gate.detail and "all 3 groups" in gate.detail


def test_small_group_whose_lower_bound_exceeds_fails():
    # S: 60 rows, about 30 positives, the model finds none of them: TPR 0 against about 1.
    y, p, s, _ = binary_data(small=60, small_tpr=0.0)
    r = fairness_report(y, p, s[["g"]], thresholds=EO, min_slice_size=50, n_bootstrap=200)
    eo = gap(r, "g", "equalized_odds_difference")
    assert eo["groups_insufficient"] == ["S"] and eo["value"] < 0.1  # over A and B alone it looks fine
    assert eo["ci_low_insufficient"] > 0.3 and eo["insufficient_group"] == "S"
    assert eo["verdict"] == "exceeds threshold"
    # an acknowledgement cannot wave through a gap that exceeds
    ack = [{"feature": "g", "groups": ["S"], "reason": "small"}]
    r2 = fairness_report(y, p, s[["g"]], thresholds=EO, min_slice_size=50, n_bootstrap=200, acknowledge=ack)
    gates = fairness_gates(r2.to_dict())
    assert [x.verdict for x in gates] == ["fail"] and "involving S" in gates[0].detail


def test_acknowledgement_of_every_insufficient_group_passes_the_gate():
    y, p, s, _ = binary_data(small=40, small_tpr=0.8)
    s = s.assign(g=np.where(np.arange(len(s)) < 35, "T", s["g"]))  # a second small group
    ack = [FairnessAck(feature="g", groups=["S"], reason="40 rows in the test split")]
    kw = {"thresholds": EO, "min_slice_size": 30, "n_bootstrap": 100}
    partial_report = fairness_report(y, p, s[["g"]], acknowledge=ack, **kw)
    partial = gap(partial_report, "g", "equalized_odds_difference")
    assert partial["verdict"] == REVIEW and partial["groups_unacknowledged"] == ["T"]
    assert partial["acknowledged"] == [{"group": "S", "reason": "40 rows in the test split"}]
    both = [*ack, {"feature": "g", "groups": ["T"], "reason": "35 rows"}]
    r = fairness_report(y, p, s[["g"]], acknowledge=both, **kw)
    g = gap(r, "g", "equalized_odds_difference")
    assert g["verdict"] == REVIEW and g["groups_unacknowledged"] == []
    gate = fairness_gates(r.to_dict())[0]
    assert gate.verdict == "pass" and "acknowledged" in gate.detail and "35 rows" in gate.detail
    assert "35 rows" in r._repr_html_()
    # the gate can also be judged against the brief's acknowledgements directly (promotion's recomputation)
    assert fairness_gates(r.to_dict(), acknowledge=ack)[0].verdict == "fail"
    assert fairness_gates(partial_report.to_dict(), acknowledge=both)[0].verdict == "pass"


def test_acknowledgement_of_another_feature_or_unknown_group_acknowledges_nothing():
    y, p, s, _ = binary_data(small=40, small_tpr=0.8)
    ack = [{"feature": "g", "groups": ["s"], "reason": "typo"}, {"feature": "race", "groups": ["S"], "reason": "x"}]
    r = fairness_report(y, p, s[["g"]], thresholds=EO, min_slice_size=30, n_bootstrap=50, acknowledge=ack)
    assert gap(r, "g", "equalized_odds_difference")["groups_unacknowledged"] == ["S"]
    assert any("'s'" in n and "not among its groups" in n for n in r.notes)
    assert any("'race'" in n for n in r.notes)
    assert fairness_gates(r.to_dict())[0].verdict == "fail"


def test_within_threshold_only_without_insufficient_groups():
    y, p, s, _ = binary_data(small=40)
    r = fairness_report(y, p, s[["g"]], thresholds=EO, min_slice_size=10, n_bootstrap=100)
    g = gap(r, "g", "equalized_odds_difference")
    assert g["groups_insufficient"] == [] and g["verdict"] == "within threshold"
    assert g["value_all_groups"] == pytest.approx(g["value"]) and fairness_gates(r.to_dict())[0].verdict == "pass"


def test_legacy_insufficient_verdict_still_fails_the_gate():
    legacy = {"confidence_level": 0.95, "gaps": [{
        "feature": "race", "metric": "equalized_odds_difference", "value": None, "ci_low": None, "ci_high": None,
        "threshold": 0.3, "verdict": "insufficient evidence", "groups_used": ["White"],
        "groups_excluded": ["Other"]}]}
    gates = fairness_gates(legacy)
    assert [x.verdict for x in gates] == ["fail"] and "Other" in gates[0].detail
    assert fairness_gates({"gaps": []})[0].verdict == "info"


# ------------------------------------------------------------------------------------------- independence
def test_a_features_intervals_do_not_move_with_other_features():
    y, p, s, age = binary_data(small=40)
    kw = {"thresholds": EO, "min_slice_size": 30, "n_bootstrap": 100, "seed": 7}
    binned = pd.cut(age, [0, 35, 50, 200], labels=["<= 35", "(35, 50]", "> 50"]).astype(str)
    reports = [fairness_report(y, p, frame, **kw) for frame in
               (s[["g"]], s[["g", "age"]], s[["g"]].assign(age=binned))]
    ref = [(x["metric"], x["ci_low"], x["ci_high"], x["ci_high_all_groups"]) for x in reports[0].gaps]
    for r in reports[1:]:
        assert [(x["metric"], x["ci_low"], x["ci_high"], x["ci_high_all_groups"])
                for x in r.gaps if x["feature"] == "g"] == ref
        assert [row["ci"] for row in r.groups["g"]] == [row["ci"] for row in reports[0].groups["g"]]
    assert fairness_report(y, p, s[["g", "age"]], **kw).to_dict() == reports[1].to_dict()  # same seed


def test_regression_and_multiclass_features_are_independent_too():
    rng = np.random.default_rng(3)
    n = 800
    s = pd.DataFrame({"g": rng.choice(["A", "B"], n), "h": rng.choice(["x", "y", "z"], n)})
    y = rng.normal(10, 2, n)
    yhat = y + rng.normal(0, 1, n)
    one = regression_fairness_report(y, yhat, s[["g"]], thresholds={"mae_difference": 1.0}, n_bootstrap=50)
    two = regression_fairness_report(y, yhat, s, thresholds={"mae_difference": 1.0}, n_bootstrap=50)
    assert [x for x in two.gaps if x["feature"] == "g"] == one.gaps
    codes = rng.integers(0, 3, n)
    proba = np.full((n, 3), 0.1)
    proba[np.arange(n), codes] = 0.8
    kw = {"classes": ["a", "b", "c"], "thresholds": {"accuracy_difference": 0.2}, "n_bootstrap": 50}
    one = multiclass_fairness_report(codes, proba, s[["g"]], **kw)
    two = multiclass_fairness_report(codes, proba, s, **kw)
    assert [x for x in two.gaps if x["feature"] == "g"] == one.gaps


# ------------------------------------------------------------------------------------------- other tasks
def test_regression_small_group_review_and_fairlearn_figure():
    rng = np.random.default_rng(1)
    n = 600
    g = np.r_[rng.choice(["A", "B"], n - 12), np.full(12, "C")]
    y = rng.normal(50, 10, n)
    yhat = y + rng.normal(0, 2, n) + np.where(g == "C", 1.0, 0.0)
    s = pd.DataFrame({"g": g})
    th = {"mae_difference": 3.0, "mean_residual_difference": 3.0}
    r = regression_fairness_report(y, yhat, s, thresholds=th, n_bootstrap=100)
    mae = gap(r, "g", "mae_difference")
    mf = MetricFrame(metrics=mean_absolute_error, y_true=y, y_pred=yhat, sensitive_features=g)
    assert mae["fairlearn_value"] == pytest.approx(mf.difference(), abs=1e-12)
    assert mae["value_all_groups"] == pytest.approx(mae["fairlearn_value"], abs=1e-12)
    assert mae["groups_insufficient"] == ["C"] and mae["verdict"] == REVIEW
    rel = gap(r, "g", "mae_relative_difference")
    assert rel["fairlearn_value"] == pytest.approx(mf.difference() / mean_absolute_error(y, yhat))
    # C under-predicted by 20: even the lower bound of its residual gap is past 3
    far = regression_fairness_report(y, yhat + np.where(g == "C", -20.0, 0.0), s, thresholds=th, n_bootstrap=100)
    assert gap(far, "g", "mean_residual_difference")["verdict"] == "exceeds threshold"
    ack = [{"feature": "g", "groups": ["C"], "reason": "12 rows"}]
    ok = regression_fairness_report(y, yhat, s, thresholds=th, n_bootstrap=100, acknowledge=ack)
    assert all(x.verdict == "pass" for x in fairness_gates(ok.to_dict()))
    assert all(x.verdict == "fail" for x in fairness_gates(r.to_dict()))
    json.loads(ok.to_json())


def test_multiclass_rare_class_group_needs_review():
    rng = np.random.default_rng(2)
    n = 900
    g = rng.choice(["A", "B"], n)
    y = rng.integers(0, 3, n)
    y[(g == "B") & (y == 2)] = rng.choice([0, 1], int(((g == "B") & (y == 2)).sum()))
    y[np.flatnonzero(g == "B")[:10]] = 2  # B: 10 rows of class c
    pred = np.where(rng.random(n) < 0.85, y, (y + 1) % 3)
    proba = np.full((n, 3), 0.1)
    proba[np.arange(n), pred] = 0.8
    th = {"recall_difference": 0.3, "accuracy_difference": 0.3}
    r = multiclass_fairness_report(y, proba, pd.DataFrame({"g": g}), classes=["a", "b", "c"], thresholds=th,
                                   n_bootstrap=100)
    rec = gap(r, "g", "recall_difference")
    assert rec["groups_insufficient"] == ["B"] and rec["groups_insufficient_by_class"]["c"] == ["B"]
    assert rec["verdict"] == REVIEW and gap(r, "g", "accuracy_difference")["verdict"] == "within threshold"
    assert rec["fairlearn_value"] is not None and rec["value_all_groups"] is not None
    gates = {x.name: x.verdict for x in fairness_gates(r.to_dict())}
    assert gates == {"fairness: recall_difference by g": "fail", "fairness: accuracy_difference by g": "pass"}


# ------------------------------------------------------------------------------------------- task hooks
@pytest.mark.parametrize("task", ["binary_classification", "regression"])
def test_task_hook_passes_the_briefs_acknowledgements(task):
    y, p, s, _ = binary_data(small=40, small_tpr=0.8)
    ack = [FairnessAck(feature="g", groups=["S"], reason="40 rows")]
    thresholds = EO if task == "binary_classification" else {"mae_difference": 0.5}
    brief = SimpleNamespace(threshold=0.5, fairness=FairnessSpec(thresholds=thresholds, min_slice_size=30,
                                                                 acknowledge=ack))
    t = get_task(task)
    scores = p if task == "binary_classification" else p.astype(float)
    r = t.fairness(y if task == "binary_classification" else y.astype(float), scores, s[["g"]], brief=brief,
                   n_bootstrap=50, seed=0)
    assert all(g["acknowledged"] == [{"group": "S", "reason": "40 rows"}] for g in r.gaps if g["groups_insufficient"])
    none = t.fairness(y if task == "binary_classification" else y.astype(float), scores, s[["g"]], brief=brief,
                      n_bootstrap=50, seed=0, acknowledge=[])
    assert all(g["acknowledged"] == [] for g in none.gaps)


# ------------------------------------------------------------------------------------------- bins in order
def test_bin_labels_keep_their_order_and_missing_is_last():
    names, codes = group_codes(np.array(["> 50", "(35, 50]", "<= 35", "(missing)", "(35, 50]"]))
    assert list(names) == ["<= 35", "(35, 50]", "> 50", "(missing)"]
    assert list(names[codes]) == ["> 50", "(35, 50]", "<= 35", "(missing)", "(35, 50]"]
    names, _ = group_codes(np.array(["Male", "Female", "(missing)"]))
    assert list(names) == ["(missing)", "Female", "Male"]  # categorical: sorted as before


def test_report_and_plot_show_bins_in_order():
    y, p, _, age = binary_data(small=0)
    binned = np.select([age <= 35, age <= 50], ["<= 35", "(35, 50]"], "> 50")
    s = pl.DataFrame({"age": binned, "sex": np.where(age % 2 == 0, "F", "M")})
    r = fairness_report(y, p, s, thresholds=EO, n_bootstrap=20)
    assert [row["group"] for row in r.groups["age"]] == ["<= 35", "(35, 50]", "> 50"]
    assert [row["group"] for row in r.groups["age & sex"]][:2] == ["<= 35 & F", "<= 35 & M"]
    ax = r.plot("age")
    assert [t.get_text() for t in ax.get_xticklabels()] == ["<= 35", "(35, 50]", "> 50"]
    reg = regression_fairness_report(y.astype(float), p, s, thresholds=None, n_bootstrap=20)
    assert [row["group"] for row in reg.groups["age"]] == ["<= 35", "(35, 50]", "> 50"]


def test_plot_says_when_a_rate_is_undefined():
    y, p, s, _ = binary_data(small=40)
    y = np.where(s["g"].to_numpy() == "S", 0, y)
    r = fairness_report(y, p, s[["g"]], thresholds=EO, n_bootstrap=20)
    srow = next(row for row in r.groups["g"] if row["group"] == "S")
    assert srow["tpr"] is None and "TPR undefined (0 positives)" in srow["note"]
    ax = r.plot("g", "tpr")
    assert "undefined" in [t.get_text() for t in ax.texts]
