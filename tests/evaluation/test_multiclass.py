"""workbench.evaluation.multiclass: metrics against scikit-learn, a missing class, fairness slices and intervals."""

from __future__ import annotations

import json

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import polars as pl
import pytest
from sklearn.metrics import (
    accuracy_score,
    average_precision_score,
    balanced_accuracy_score,
    confusion_matrix,
    f1_score,
    log_loss,
    precision_recall_fscore_support,
)

from workbench.errors import EvaluationError
from workbench.evaluation import (
    MULTICLASS_GREATER_IS_BETTER,
    MULTICLASS_METRICS,
    MulticlassFairnessReport,
    MulticlassReport,
    evaluate_multiclass,
    multiclass_fairness_report,
)

CLASSES = ["bird", "cat", "dog"]


def make_data(n: int = 1800, *, k: int = 3, biased: bool = False, seed: int = 0):
    """Noisy but informative probabilities; when biased, group B's ``cat`` rows are mostly predicted as
    ``bird`` (recall of cat collapses for B)."""
    rng = np.random.default_rng(seed)
    group = rng.choice(["A", "B"], n, p=[0.55, 0.45])
    region = rng.choice(["north", "south"], n)
    y = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), y] += 1.8
    if biased:
        hit = (group == "B") & (y == 1)
        logits[hit, 0] += 4.0
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True), pl.DataFrame({"group": group, "region": region})


def test_metrics_equal_scikit_learn():
    y, p, _ = make_data()
    r = evaluate_multiclass(y, p, classes=CLASSES)
    yhat = p.argmax(axis=1)
    expected = {"macro_f1": f1_score(y, yhat, average="macro"), "weighted_f1": f1_score(y, yhat, average="weighted"),
                "accuracy": accuracy_score(y, yhat), "balanced_accuracy": balanced_accuracy_score(y, yhat),
                "log_loss": log_loss(y, p, labels=[0, 1, 2])}
    assert r.metrics == pytest.approx(expected, rel=1e-12) and r.primary_value == r.metrics["macro_f1"]
    assert not MULTICLASS_GREATER_IS_BETTER["log_loss"] and MULTICLASS_GREATER_IS_BETTER["macro_f1"]
    prec, rec, f1, sup = precision_recall_fscore_support(y, yhat, labels=[0, 1, 2])
    for j, row in enumerate(r.per_class):
        assert row["class"] == CLASSES[j] and row["support"] == sup[j]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((prec[j], rec[j], f1[j]))
        assert row["pr_auc"] == pytest.approx(average_precision_score(y == j, p[:, j]))
        assert 0 <= row["ece"] < 0.5
    assert r.confusion == confusion_matrix(y, yhat).tolist()
    assert r.macro_ece == pytest.approx(np.mean([c["ece"] for c in r.calibration.values()]))


def test_a_class_absent_from_y_true_gives_nan_not_an_error():
    y, p, _ = make_data(600, k=4)
    keep = y != 2
    y, p = y[keep], p[keep]
    r = evaluate_multiclass(y, p, classes=["a", "b", "c", "d"], primary="log_loss")
    c = r.per_class[2]
    assert c["support"] == 0 and c["recall"] is None and c["pr_auc"] is None and c["ece"] is None
    assert c["predicted"] > 0 and c["precision"] == 0.0  # predicted but never right
    assert r.calibration["c"]["prob_pred"] == [] and any("'c' is absent" in n for n in r.notes)
    assert r.metrics["log_loss"] == pytest.approx(log_loss(y, p, labels=[0, 1, 2, 3]))
    assert r.metrics["macro_f1"] == pytest.approx(f1_score(y, p.argmax(1), average="macro", zero_division=0))
    assert np.isfinite(list(r.metrics.values())).all()
    present = evaluate_multiclass(*make_data(600, k=4)[:2], classes=["a", "b", "c", "d"])
    assert all(row["recall"] is not None for row in present.per_class)
    json.loads(r.to_json())
    r.plot_calibration()
    plt.close("all")


@pytest.mark.parametrize(("change", "match"), [
    (lambda y, p: (y, p[:, :2]), "argument 'proba': expected shape"),
    (lambda y, p: (y, p * 1.1), "argument 'proba': .*(outside|sum to 1)"),
    (lambda y, p: (y + 1, p), "argument 'y_true': .* not class codes 0..2"),
    (lambda y, p: (np.array(CLASSES)[y], p), "argument 'y_true': expected int class codes"),
    (lambda y, p: (y[:-1], p), "lengths differ"),
])
def test_bad_inputs_raise(change, match):
    y, p, _ = make_data(50)
    with pytest.raises(EvaluationError, match=match):
        evaluate_multiclass(*change(y, p), classes=CLASSES)


def test_bad_options_raise():
    y, p, _ = make_data(50)
    with pytest.raises(EvaluationError, match="argument 'classes'.*use evaluate_binary|argument 'classes'"):
        evaluate_multiclass(y, p, classes=["a", "b"])
    with pytest.raises(EvaluationError, match="argument 'primary': unknown value 'f1'"):
        evaluate_multiclass(y, p, classes=CLASSES, primary="f1")
    assert set(MULTICLASS_METRICS) == {"macro_f1", "weighted_f1", "accuracy", "balanced_accuracy", "log_loss"}


def test_report_round_trip_html_and_plots(tmp_path):
    y, p, _ = make_data(400)
    r = evaluate_multiclass(y, p, classes=CLASSES)
    d = json.loads(r.to_json())
    assert d["task"] == "multiclass_classification" and d["classes"] == CLASSES
    again = MulticlassReport.from_dict(json.loads(r.save(tmp_path / "m.json").read_text()))
    assert again.to_dict() == r.to_dict()
    html = r._repr_html_()
    assert "Confusion counts" in html and "dog" in html
    ax = r.plot_confusion()
    assert len(ax.texts) == 9 and ax.get_xlabel() == "predicted"
    assert r.plot_confusion(normalize=True).texts[0].get_text().startswith("0.")
    assert len(r.plot_calibration().lines) == 4
    plt.close("all")


# ---------------------------------------------------------------------------------------------- fairness
def _gap(report, feature, metric):
    return next(g for g in report.gaps if g["feature"] == feature and g["metric"] == metric)


def _group(report, feature, group):
    return next(r for r in report.groups[feature] if r["group"] == group)


def test_group_figures_match_numpy():
    y, p, s = make_data(biased=True)
    r = multiclass_fairness_report(y, p, s, classes=CLASSES, thresholds=None, n_bootstrap=50)
    yhat, labels = p.argmax(1), s["group"].to_numpy()
    for g in ("A", "B"):
        row, m = _group(r, "group", g), labels == g
        assert row["accuracy"] == pytest.approx(np.mean(y[m] == yhat[m]))
        for j, c in enumerate(CLASSES):
            assert row[f"recall[{c}]"] == pytest.approx(np.mean(yhat[m & (y == j)] == j))
            assert row[f"selection_rate[{c}]"] == pytest.approx(np.mean(yhat[m] == j))
            assert row["class_counts"][c] == np.sum(m & (y == j))
        lo, hi = row["ci"]["accuracy"]
        assert lo <= row["accuracy"] <= hi
    assert r.overall["accuracy"] == pytest.approx(np.mean(y == yhat))


def test_planted_recall_gap_names_the_class_and_exceeds():
    y, p, s = make_data(biased=True)
    th = {"recall_difference": 0.2, "accuracy_difference": 0.5}
    r = multiclass_fairness_report(y, p, s, classes=CLASSES, thresholds=th)
    gap = _gap(r, "group", "recall_difference")
    assert gap["class"] == "cat" and gap["verdict"] == "exceeds threshold" and gap["ci_low"] > 0.5
    assert gap["max_group"] == "A" and gap["min_group"] == "B"
    assert gap["per_class"]["cat"] == gap["value"] and gap["groups_used_by_class"]["cat"] == ["A", "B"]
    sel = _gap(r, "group", "selection_rate_difference")
    assert sel["class"] in ("bird", "cat") and sel["verdict"] == "no threshold"
    assert r.verdict == "exceeds threshold"
    fair = multiclass_fairness_report(*make_data(biased=False), classes=CLASSES, thresholds=th)
    assert _gap(fair, "group", "recall_difference")["verdict"] == "within threshold"


def test_intervals_are_seeded_and_per_feature():
    y, p, s = make_data(900, biased=True)
    kw = {"classes": CLASSES, "thresholds": None, "n_bootstrap": 60, "seed": 5}
    one = multiclass_fairness_report(y, p, s.select("group"), **kw)
    two = multiclass_fairness_report(y, p, s, **kw)
    assert multiclass_fairness_report(y, p, s.select("group"), **kw).to_dict() == one.to_dict()
    assert two.groups["group"] == one.groups["group"]
    assert [g for g in two.gaps if g["feature"] == "group"] == one.gaps
    other = multiclass_fairness_report(y, p, s.select("group"), **{**kw, "seed": 6})
    assert other.groups["group"] != one.groups["group"]


def test_small_groups_and_rare_classes_are_left_out():
    y, p, s = make_data(600)
    # group B keeps only every tenth "cat" row (about 20): too few to compare its recall of cat
    group = np.where((y == 1) & (np.arange(600) % 10 != 0), "A", s["group"].to_numpy())
    group[:10] = "C"
    r = multiclass_fairness_report(y, p, pl.DataFrame({"group": group}), classes=CLASSES,
                                   thresholds={"accuracy_difference": 0.3})
    c, b = _group(r, "group", "C"), _group(r, "group", "B")
    assert c["evidence"] == "insufficient evidence"
    assert _gap(r, "group", "accuracy_difference")["groups_excluded"] == ["C"]
    assert b["evidence"] == "ok" and b["class_counts"]["cat"] < 30 and b["evidence_recall"]["cat"] != "ok"
    assert "cat" in b["note"] and b["evidence_recall"]["dog"] == "ok"
    rec = _gap(r, "group", "recall_difference")
    assert rec["groups_used_by_class"]["cat"] == ["A"] and rec["groups_used_by_class"]["dog"] == ["A", "B"]
    assert rec["per_class"]["cat"] is None and rec["groups_used"] == ["A", "B"] and rec["groups_excluded"] == ["C"]


def test_fairness_errors_views_and_round_trip(tmp_path):
    y, p, s = make_data(600, biased=True)
    with pytest.raises(EvaluationError, match="argument 'thresholds': recall_difference"):
        multiclass_fairness_report(y, p, s, classes=CLASSES, thresholds={"recall_difference": 2.0})
    with pytest.raises(EvaluationError, match="argument 'thresholds': unknown value 'mae_difference'"):
        multiclass_fairness_report(y, p, s, classes=CLASSES, thresholds={"mae_difference": 0.1})
    with pytest.raises(EvaluationError, match="argument 'sensitive'"):
        multiclass_fairness_report(y, p, s.head(10), classes=CLASSES, thresholds=None)
    r = multiclass_fairness_report(y, p, s, classes=CLASSES, thresholds={"recall_difference": 0.2}, n_bootstrap=40)
    d = json.loads(r.to_json())
    assert d["task"] == "multiclass_classification" and d["classes"] == CLASSES
    assert MulticlassFairnessReport.from_dict(json.loads(r.save(tmp_path / "f.json").read_text())).to_dict() == d
    assert "recall[cat]" in r._repr_html_() and r.summary()["worst_gaps"]["recall_difference"]["ci_high"] > 0.2
    ax = r.plot("group", "recall[cat]")
    assert len(ax.patches) == 2
    assert r.plot("region").get_ylabel() == "accuracy"
    plt.close("all")
