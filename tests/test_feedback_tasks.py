"""The feedback loop for multiclass (class-string labels) and regression (numeric labels) models."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from workbench.errors import DataError
from workbench.feedback import feedback_report, join_labels
from workbench.monitoring.log import PredictionLog, read_log

CLASSES = ["cat", "dog", "fish"]
FAIRNESS = {"thresholds": {}, "min_slice_size": 20, "bootstrap_samples": 30}


def _mc_log(root, n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    logits = rng.normal(0, 1, (n, 3)) + 2.5 * np.eye(3)[y]
    proba = np.exp(logits) / np.exp(logits).sum(1, keepdims=True)
    group = rng.choice(["x", "y"], n)
    log = PredictionLog("mc:1", root=root)
    for i in range(0, n, 10):
        log.append_outputs(f"r{i}", {"group": group[i:i + 10].tolist()},
                           {"label": [CLASSES[k] for k in proba[i:i + 10].argmax(1)],
                            "probabilities": proba[i:i + 10].tolist()})
    log.close()
    labels = pl.DataFrame({"request_id": [f"r{i - i % 10}" for i in range(n)], "row": [i % 10 for i in range(n)],
                           "species": [CLASSES[k] for k in y]})
    return read_log(root), labels, y, proba


def _mc_monitoring(certified=0.8):
    return {"task": "multiclass_classification", "classes": CLASSES, "primary_metric": "macro_f1",
            "certified_value": certified, "metric_tolerance": 0.05, "sensitive_features": ["group"],
            "target": "species", "fairness": FAIRNESS}


def test_multiclass_feedback(tmp_path):
    from sklearn.metrics import f1_score

    logged, labels, y, proba = _mc_log(tmp_path)
    rep = feedback_report(join_labels(logged, labels, label_column="species"), _mc_monitoring())
    assert rep.rows == 300 and rep.primary == "macro_f1"
    assert rep.live_value == pytest.approx(f1_score(y, proba.argmax(1), average="macro"))
    assert not rep.concept_drift and rep.exit_code in (0, 10)
    assert {g["feature"] for g in rep.fairness["gaps"]} == {"group"}
    assert "macro_f1" in rep._repr_html_()
    # labels rotated by one class: the model is now mostly wrong -> concept drift
    rotated = labels.with_columns(pl.Series("species", [CLASSES[(k + 1) % 3] for k in y]))
    bad = feedback_report(join_labels(logged, rotated, label_column="species"), _mc_monitoring())
    assert bad.concept_drift and bad.exit_code == 20
    # log_loss is a loss: rising counts as the drop
    ll = feedback_report(join_labels(logged, rotated, label_column="species"),
                         {**_mc_monitoring(certified=0.3), "primary_metric": "log_loss"})
    assert ll.live_value > 1.0 and ll.concept_drift


def test_multiclass_labels_must_be_classes(tmp_path):
    logged, labels, _, _ = _mc_log(tmp_path)
    wrong = labels.with_columns(pl.when(pl.col("row") == 0).then(pl.lit("hamster")).otherwise(pl.col("species"))
                                .alias("species"))
    with pytest.raises(DataError, match=r"\['hamster'\] are not classes"):
        feedback_report(join_labels(logged, wrong, label_column="species"), _mc_monitoring())


def _reg_log(root, n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(100, 15, n)
    yhat = y + rng.normal(0, 3, n)
    group = rng.choice(["x", "y"], n)
    log = PredictionLog("reg:1", root=root)
    for i in range(n):
        log.append_outputs(f"r{i}", {"group": [group[i]]}, {"prediction": [yhat[i]]})
    log.close()
    return read_log(root), pl.DataFrame({"request_id": [f"r{i}" for i in range(n)], "price": y}), y, yhat


def _reg_monitoring(certified=2.5):
    return {"task": "regression", "primary_metric": "mae", "certified_value": certified, "metric_tolerance": 0.5,
            "sensitive_features": ["group"], "target": "price", "fairness": FAIRNESS}


def test_regression_feedback(tmp_path):
    logged, labels, y, yhat = _reg_log(tmp_path)
    rep = feedback_report(join_labels(logged, labels, label_column="price"), _reg_monitoring())
    assert rep.live_value == pytest.approx(np.mean(np.abs(y - yhat)))
    assert not rep.concept_drift  # MAE ~2.4 vs certified 2.5: within tolerance
    worse = labels.with_columns(pl.col("price") + 5.0)
    drifted = feedback_report(join_labels(logged, worse, label_column="price"), _reg_monitoring())
    assert drifted.concept_drift and drifted.exit_code == 20 and drifted.live_value > 4.5
    r2 = feedback_report(join_labels(logged, labels, label_column="price"),
                         {**_reg_monitoring(certified=0.9), "primary_metric": "r2"})
    assert r2.live_value > 0.9 and not r2.concept_drift  # greater is better for r2


def test_regression_labels_must_be_numbers(tmp_path):
    logged, labels, _, _ = _reg_log(tmp_path)
    text = labels.with_columns(pl.col("price").cast(pl.String))
    text = text.with_columns(pl.when(pl.col("request_id") == "r3").then(pl.lit("expensive"))
                             .otherwise(pl.col("price")).alias("price"))
    with pytest.raises(DataError, match="1 regression labels are not numbers"):
        feedback_report(join_labels(logged, text, label_column="price"), _reg_monitoring())
    ok = feedback_report(join_labels(logged, labels.with_columns(pl.col("price").cast(pl.String)),
                                     label_column="price"), _reg_monitoring())
    assert ok.rows == 300  # numbers given as text (a CSV column read as strings) are fine


def test_the_log_must_hold_the_task_outputs(tmp_path):
    logged, labels, _, _ = _reg_log(tmp_path)
    joined = join_labels(logged, labels, label_column="price")
    with pytest.raises(DataError, match="no 'probabilities' column"):
        feedback_report(joined.with_columns(pl.lit("cat").alias("__label__")), _mc_monitoring())
