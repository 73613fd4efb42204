"""workbench.evaluation.fairness: slices checked against plain numpy and Fairlearn; verdicts; bad inputs."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pandas as pd
import polars as pl
import pytest
from fairlearn.metrics import (
    demographic_parity_difference,
    demographic_parity_ratio,
    equalized_odds_difference,
)

from workbench.errors import EvaluationError, WorkbenchError
from workbench.evaluation.fairness import fairness_report

THRESHOLDS = {"demographic_parity_difference": 0.2, "equalized_odds_difference": 0.2}


def make_data(n: int = 2000, *, biased: bool, seed: int = 0) -> tuple[np.ndarray, np.ndarray, pl.DataFrame]:
    """Two groups with the same label and score distributions; when biased, group B's scores are cut to 30%,
    which suppresses every positive prediction for B."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["A", "B"], n, p=[0.6, 0.4])
    region = rng.choice(["north", "south"], n)
    y = (rng.random(n) < 0.35).astype(int)
    p = np.clip(0.25 + 0.4 * y + rng.normal(0, 0.2, n), 0, 1)
    if biased:
        p = np.where(group == "B", 0.3 * p, p)
    return y, p, pl.DataFrame({"group": group, "region": region})


def relabel_first(s: pl.DataFrame, column: str, k: int, value: str | None) -> pl.DataFrame:
    """The first ``k`` rows of ``column`` set to ``value``."""
    first = pl.int_range(pl.len()) < k
    return s.with_columns(pl.when(first).then(pl.lit(value, dtype=pl.String)).otherwise(column).alias(column))


def plain_groups(y: np.ndarray, yhat: np.ndarray, labels: np.ndarray) -> dict[str, dict]:
    """Per-group figures written out directly, independent of the module."""
    out = {}
    for g in sorted(set(labels.tolist())):
        m = labels == g
        yy, pp = y[m], yhat[m]
        out[g] = {
            "count": int(m.sum()), "positives": int(yy.sum()), "selection_rate": pp.mean(),
            "tpr": pp[yy == 1].mean() if (yy == 1).any() else None,
            "fpr": pp[yy == 0].mean() if (yy == 0).any() else None,
            "accuracy": (yy == pp).mean(),
        }
    return out


def gap(report, feature: str, metric: str) -> dict:
    return next(g for g in report.gaps if g["feature"] == feature and g["metric"] == metric)


@pytest.fixture(scope="module")
def biased():
    y, p, s = make_data(biased=True)
    return y, p, s, fairness_report(y, p, s, threshold=0.5, thresholds=THRESHOLDS, seed=1)


@pytest.fixture(scope="module")
def fair():
    y, p, s = make_data(biased=False)
    return y, p, s, fairness_report(y, p, s, threshold=0.5, thresholds=THRESHOLDS, seed=1)


# ----------------------------------------------------------------------------------------------- values
def test_group_values_match_a_plain_computation(biased):
    y, p, s, r = biased
    yhat = (p > 0.5).astype(int)
    labels = {"group": s["group"].to_numpy(), "region": s["region"].to_numpy()}
    labels["group & region"] = np.char.add(np.char.add(labels["group"].astype(str), " & "),
                                           labels["region"].astype(str))
    assert r.features == ["group", "region", "group & region"]
    for feature, lab in labels.items():
        expected = plain_groups(y, yhat, lab)
        got = {row["group"]: row for row in r.groups[feature]}
        assert list(got) == list(expected)
        for g, e in expected.items():
            for k, v in e.items():
                assert got[g][k] == pytest.approx(v, abs=1e-12), (feature, g, k)


def test_gap_point_estimates_equal_fairlearn(biased):
    y, p, s, r = biased
    yhat = (p > 0.5).astype(int)
    pdf = s.to_pandas()
    for feature, sf in (("group", pdf["group"]), ("region", pdf["region"]), ("group & region", pdf)):
        assert gap(r, feature, "demographic_parity_difference")["value"] == pytest.approx(
            demographic_parity_difference(y, yhat, sensitive_features=sf), abs=1e-12)
        assert gap(r, feature, "demographic_parity_ratio")["value"] == pytest.approx(
            demographic_parity_ratio(y, yhat, sensitive_features=sf), abs=1e-12)
        assert gap(r, feature, "equalized_odds_difference")["value"] == pytest.approx(
            equalized_odds_difference(y, yhat, sensitive_features=sf), abs=1e-12)


def test_group_intervals_surround_their_own_estimate(biased):
    *_, r = biased
    for rows in r.groups.values():
        for row in rows:
            for m in ("selection_rate", "accuracy"):
                lo, hi = row["ci"][m]
                assert lo <= row[m] <= hi, (row["group"], m)


def test_bootstrap_interval_has_the_binomial_width(fair):
    _, _, _, r = fair
    a = next(row for row in r.groups["group"] if row["group"] == "A")
    lo, hi = a["ci"]["selection_rate"]
    rate, n = a["selection_rate"], a["count"]
    assert lo < rate < hi
    assert 0.75 < (hi - lo) / (2 * 1.96 * np.sqrt(rate * (1 - rate) / n)) < 1.3


# ----------------------------------------------------------------------------------------------- verdicts
def test_planted_bias_exceeds_threshold(biased):
    *_, r = biased
    dp = gap(r, "group", "demographic_parity_difference")
    assert dp["value"] > 0.25 and dp["ci_low"] > 0.2
    assert dp["verdict"] == "exceeds threshold" and r.verdict == "exceeds threshold"
    assert gap(r, "region", "demographic_parity_difference")["verdict"] == "within threshold"
    worst = r.summary()["worst_gaps"]["demographic_parity_difference"]
    assert worst["ci_high"] >= dp["ci_high"] and r.summary()["fairness_verdict"] == "exceeds threshold"


def test_unbiased_model_is_within_threshold(fair):
    *_, r = fair
    dp = gap(r, "group", "demographic_parity_difference")
    assert dp["value"] < 0.05 and dp["ci_high"] < 0.2 and dp["verdict"] == "within threshold"
    assert all(g["verdict"] in ("within threshold", "no threshold") for g in r.gaps)
    assert r.verdict == "within threshold"


def test_ratio_verdict_uses_the_lower_bound():
    for is_biased, verdict in ((True, "exceeds threshold"), (False, "within threshold")):
        y, p, s = make_data(4000, biased=is_biased)
        r = fairness_report(y, p, s.select("group"), thresholds={"demographic_parity_ratio": 0.8})
        g = gap(r, "group", "demographic_parity_ratio")
        assert g["verdict"] == verdict and (g["ci_low"] >= 0.8) == (verdict == "within threshold")


def test_point_inside_threshold_but_interval_outside_exceeds():
    # 40 rows per group, selection rates 0.50 and 0.45: the point gap is 0.05, the interval reaches past 0.1
    p = np.r_[np.repeat([0.9, 0.1], 20), np.repeat([0.9, 0.1], [18, 22])]
    y = np.tile([1, 0], 40)
    s = pd.DataFrame({"g": ["A"] * 40 + ["B"] * 40})
    g = gap(fairness_report(y, p, s, thresholds={"demographic_parity_difference": 0.1}), "g",
            "demographic_parity_difference")
    assert g["value"] == pytest.approx(0.05) and g["ci_high"] > 0.1 and g["verdict"] == "exceeds threshold"


def test_small_slice_is_insufficient_and_never_dropped():
    y, p, s = make_data(600, biased=False)
    s = relabel_first(s, "group", 10, "C")
    p = np.where(np.arange(600) < 10, 0.99, p)  # C: every prediction positive, which would dominate any gap
    r = fairness_report(y, p, s, thresholds=THRESHOLDS, min_slice_size=30)
    c = next(row for row in r.groups["group"] if row["group"] == "C")
    assert c["count"] == 10 and c["evidence"] == "insufficient evidence" and "min_slice_size" in c["note"]
    dp = gap(r, "group", "demographic_parity_difference")
    assert dp["groups_used"] == ["A", "B"] and dp["groups_excluded"] == ["C"]
    rest = ~np.isin(s["group"].to_numpy(), ["C"])
    assert dp["value"] == pytest.approx(demographic_parity_difference(
        y[rest], (p[rest] > 0.5).astype(int), sensitive_features=s["group"].to_numpy()[rest]))
    assert set(r.summary()["insufficient_groups"]["group & region"]) == {"C & north", "C & south"}
    # ... but C is in the all-groups gap, which is Fairlearn's, and its 100% selection rate fails the gap
    assert dp["groups_insufficient"] == ["C"] and c["ci"]["selection_rate"][0] is not None
    assert dp["value_all_groups"] == pytest.approx(demographic_parity_difference(
        y, (p > 0.5).astype(int), sensitive_features=s["group"].to_numpy()), abs=1e-12)
    assert dp["fairlearn_value"] == pytest.approx(dp["value_all_groups"], abs=1e-12)
    assert dp["verdict"] == "exceeds threshold" and dp["insufficient_group"] == "C"


def test_one_sufficient_group_gives_insufficient_evidence():
    rng = np.random.default_rng(0)
    y, p = (rng.random(110) < 0.4).astype(int), rng.random(110)
    s = pd.DataFrame({"g": ["A"] * 100 + ["C"] * 10})
    r = fairness_report(y, p, s, thresholds=THRESHOLDS, min_slice_size=30)
    for g in r.gaps:
        gated = g["metric"] in THRESHOLDS
        assert g["verdict"] == ("insufficient evidence — review" if gated else "no threshold")
        assert g["value"] is None and g["groups_used"] == ["A"]
        assert g["groups_insufficient"] == ["C"] and g["groups_unacknowledged"] == ["C"]
    assert r.verdict == "insufficient evidence — review"


def test_group_without_positives_is_left_out_of_equalized_odds_only():
    y, p, s = make_data(900, biased=False)
    y = np.where(s["group"].to_numpy() == "B", 0, y)
    r = fairness_report(y, p, s.select("group"), thresholds=THRESHOLDS)
    b = next(row for row in r.groups["group"] if row["group"] == "B")
    assert b["evidence"] == "ok" and b["evidence_tpr_fpr"] == "insufficient evidence" and b["tpr"] is None
    assert gap(r, "group", "demographic_parity_difference")["groups_used"] == ["A", "B"]
    eo = gap(r, "group", "equalized_odds_difference")
    # B is kept in the all-groups gap through its FPR (its TPR is undefined, and the report says so): B's rows
    # that would have been positives are now false positives, so even the lower bound of the gap exceeds.
    assert eo["groups_used"] == ["A"] and eo["groups_insufficient"] == ["B"] and "TPR undefined" in b["note"]
    assert eo["verdict"] == "exceeds threshold" and eo["insufficient_group"] == "B"
    assert eo["ci_low_insufficient"] > 0.2 and eo["value_all_groups"] > 0.2
    json.loads(r.to_json())  # no NaN leaks into the JSON


# ----------------------------------------------------------------------------------------------- inputs
def test_missing_values_form_their_own_group_and_pandas_equals_polars():
    y, p, s = make_data(500, biased=False)
    every_7th = pl.int_range(pl.len()) % 7 == 0
    s = s.with_columns(pl.when(every_7th).then(None).otherwise("region").alias("region"))
    r = fairness_report(y, p, s, seed=3)
    missing = next(row for row in r.groups["region"] if row["group"] == "(missing)")
    assert missing["count"] == len(range(0, 500, 7))
    assert fairness_report(y, p, s.to_pandas(), seed=3).to_dict() == r.to_dict()


def test_same_seed_same_report_other_seed_other_intervals():
    y, p, s = make_data(400, biased=True)
    a = fairness_report(y, p, s, seed=11, n_bootstrap=50).to_dict()
    assert fairness_report(y, p, s, seed=11, n_bootstrap=50).to_dict() == a
    b = fairness_report(y, p, s, seed=12, n_bootstrap=50).to_dict()
    assert [g["value"] for g in b["gaps"]] == [g["value"] for g in a["gaps"]]
    assert [g["ci_high"] for g in b["gaps"]] != [g["ci_high"] for g in a["gaps"]]


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"sensitive": pl.DataFrame({"g": ["a", "b"]})}, "lengths differ"),
    ({"sensitive": pl.DataFrame({"g": [None] * 3}, schema={"g": pl.String})}, "every value is missing"),
    ({"y_prob": [0.2, 1.5, 0.3]}, "outside \\[0, 1\\]"),
    ({"y_true": [0, 1]}, "lengths differ"),
    ({"sensitive": np.array(["a", "b", "a"])}, "polars or pandas DataFrame"),
    ({"thresholds": {"demographic_parity": 0.1}}, "Did you mean"),
    ({"min_slice_size": 0}, "min_slice_size"),
    ({"confidence_level": 95}, "confidence_level"),
])
def test_bad_inputs_raise_evaluation_error(kwargs, match):
    args = {"y_true": [0, 1, 1], "y_prob": [0.2, 0.8, 0.3], "sensitive": pl.DataFrame({"g": ["a", "b", "a"]}),
            **kwargs}
    with pytest.raises(EvaluationError, match=match) as info:
        fairness_report(args.pop("y_true"), args.pop("y_prob"), args.pop("sensitive"), **args)
    assert isinstance(info.value, WorkbenchError)


# ----------------------------------------------------------------------------------------------- report views
def test_report_views(biased, tmp_path):
    *_, r = biased
    rows = r.gaps_table()
    assert len(rows) == 9 and set(rows[0]) == {"feature", "metric", "value", "ci_low", "ci_high", "threshold",
                                               "verdict", "groups_used", "groups_insufficient",
                                               "value_all_groups", "ci_high_all_groups", "fairlearn_value"}
    assert json.loads(r.save(tmp_path / "fairness.json").read_text())["verdict"] == "exceeds threshold"
    html = r._repr_html_()
    assert "exceeds threshold" in html and "By group &amp; region" in html
    assert {"selection_rate_ci_low", "tpr_ci_high"} <= set(r.group_table("group")[0])
    assert r.summary()["worst_gaps"]["demographic_parity_ratio"]["bound"] == "ci_low"


def test_plot_marks_insufficient_groups():
    y, p, s = make_data(300, biased=False)
    r = fairness_report(y, p, relabel_first(s, "group", 10, "C"), min_slice_size=30, n_bootstrap=50)
    ax = r.plot("group")
    bars = ax.patches
    assert len(bars) == 3 and [b.get_hatch() for b in bars] == [None, None, "//"]
    assert r.plot("group & region", "tpr", ax=ax) is ax
    with pytest.raises(EvaluationError, match="Did you mean 'group'"):
        r.plot("grup")


def test_few_positives_excluded_from_equalized_odds_only():
    # B has 60 rows but 3 positives: enough for selection rate, too few for a TPR.
    y = np.r_[np.tile([1, 0], 30), np.r_[np.ones(3), np.zeros(57)]].astype(int)
    p = np.r_[np.where(np.tile([1, 0], 30) == 1, 0.9, 0.1), np.r_[np.full(3, 0.1), np.full(57, 0.2)]]
    s = pd.DataFrame({"g": ["A"] * 60 + ["B"] * 60})
    r = fairness_report(y, p, s, thresholds={"equalized_odds_difference": 0.2}, min_slice_size=20, n_bootstrap=50)
    b = next(row for row in r.groups["g"] if row["group"] == "B")
    assert b["evidence"] == "ok" and b["evidence_tpr_fpr"] == "insufficient evidence" and "3 positives" in b["note"]
    assert gap(r, "g", "demographic_parity_difference")["groups_used"] == ["A", "B"]
    eo = gap(r, "g", "equalized_odds_difference")
    # A finds 30 of 30 positives, B none of its 3: even from B's own (Wilson) interval the TPR gap is at least
    # 0.43 with 95% confidence (Newcombe's bound), past the 0.2 threshold, so B's small size does not save it.
    assert eo["groups_used"] == ["A"] and eo["verdict"] == "exceeds threshold"
    assert 0.35 < eo["ci_low_insufficient"] < 0.5
    assert eo["groups_insufficient"] == ["B"] and b["ci"]["tpr"][0] is not None  # B keeps its (wide) interval


def test_a_tiny_group_is_judged_on_its_own_interval_not_a_degenerate_bootstrap():
    # C has 3 positives and misses all of them: its bootstrap TPR interval is [0, 0], which would make any gap
    # with it "certain". Its Wilson interval [0, 0.56] does not: against A (TPR ~0.6) the gap's lower bound is
    # about 0, so the verdict is review, not fail.
    rng = np.random.default_rng(3)
    ya = (rng.random(1000) < 0.4).astype(int)
    pa = np.where(ya == 1, rng.random(1000) < 0.6, rng.random(1000) < 0.1) * 0.8 + 0.1
    yc = np.r_[np.ones(3), np.zeros(60)].astype(int)
    pc = np.full(63, 0.2)
    y, p = np.r_[ya, yc], np.r_[pa, pc]
    s = pd.DataFrame({"g": ["A"] * 1000 + ["C"] * 63})
    r = fairness_report(y, p, s, thresholds={"equalized_odds_difference": 0.3}, min_slice_size=20, n_bootstrap=100)
    c = next(row for row in r.groups["g"] if row["group"] == "C")
    assert c["ci"]["tpr"] == [0.0, 0.0]  # the degenerate bootstrap, still shown as measured
    eo = gap(r, "g", "equalized_odds_difference")
    assert eo["verdict"] == "insufficient evidence — review" and eo["ci_low_insufficient"] < 0.3
