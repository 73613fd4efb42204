"""Feedback with a challenger beside the champion: labels joined with both models' logged rows (shadow: the same
request ids; canary: each model's own), each model's primary metric by the task's own evaluation, and the metric
rule (:func:`workbench.serving.deploy.judge_metric`) -- for binary, multiclass and regression models. The logs are
written by :class:`~workbench.monitoring.log.PredictionLog` with the fields the two-model service adds (``role``,
``answered_by``, ``latency_ms``); the end-to-end path (the CLI, the ledger, a running Deployment) is in
tests/serving/test_deploy.py."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from workbench.errors import DataError
from workbench.feedback import (
    challenger_feedback,
    check_labels,
    join_labels_pair,
    labelled_metrics,
    read_logged,
    save_labels,
    stored_labels,
)
from workbench.monitoring.log import PredictionLog
from workbench.serving.deploy import Rules

CLASSES = ["cat", "dog", "fish"]
RULES = Rules(metric_drop=0.05, min_labels=50)
CHAMP, CHALL = "m:champion", "m:challenger"


def _truth(task: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if task == "regression":
        return rng.normal(100, 15, n)
    if task == "multiclass_classification":
        return rng.integers(0, 3, n)
    return rng.integers(0, 2, n)


def _outputs(task: str, y: np.ndarray, noise: float, rng: np.random.Generator) -> dict:
    """One row's logged outputs for a model whose answers are as good as ``noise`` lets them be."""
    if task == "regression":
        return {"prediction": [float(y + rng.normal(0, noise))]}
    if task == "multiclass_classification":
        z = np.exp(rng.normal(0, noise, 3) + 2.0 * np.eye(3)[int(y)])
        p = z / z.sum()
        return {"label": [CLASSES[int(p.argmax())]], "probabilities": [p.tolist()]}
    p = float(np.clip(0.5 + (0.3 if y else -0.3) + rng.normal(0, noise), 0.01, 0.99))
    return {"probability": [p], "label": ["yes" if p >= 0.5 else "no"]}


def _label(task: str, y) -> object:
    return float(y) if task == "regression" else CLASSES[int(y)] if task == "multiclass_classification" else (
        "yes" if y else "no")


def _monitoring(task: str) -> dict:
    base = {"sensitive_features": [], "fairness": {"thresholds": {}, "bootstrap_samples": 20}}
    if task == "regression":
        return {**base, "task": task, "primary_metric": "mae", "certified_value": 3.0}
    if task == "multiclass_classification":
        return {**base, "task": task, "classes": CLASSES, "primary_metric": "macro_f1", "certified_value": 0.6}
    return {**base, "primary_metric": "pr_auc", "certified_value": 0.8, "positive_label": "yes", "threshold": 0.5}


NOISE = {"regression": (2.0, 12.0), "multiclass_classification": (0.8, 3.0), "binary_classification": (0.15, 0.6)}


def _serve(root, task: str, *, mode: str, n: int = 240, worse: bool, seed: int = 0):
    """Log ``n`` one-record requests as the two-model service logs them (plain values: ``validated``); returns
    both logs and the labels of every request."""
    rng = np.random.default_rng(seed)
    good, bad = NOISE[task]
    champ, chall = PredictionLog(CHAMP, root=root), PredictionLog(CHALL, root=root)
    labels = []
    for i in range(n):
        y = _truth(task, 1, rng)[0]
        rid = f"r{i}"
        inputs = {"x": [float(i)]}
        if mode == "shadow" or i % 2:  # the champion answers (every request in shadow mode, half in canary)
            champ.append_outputs(rid, inputs, {**_outputs(task, y, good, rng), "role": ["champion"],
                                               "answered_by": [CHAMP], "latency_ms": [0.1]}, validated=True)
        if mode == "shadow" or not i % 2:
            role = ["shadow"] if mode == "shadow" else ["canary"]
            chall.append_outputs(rid, inputs, {**_outputs(task, y, bad if worse else good, rng), "role": role,
                                               "answered_by": [CHAMP if mode == "shadow" else CHALL],
                                               "latency_ms": [0.1]}, validated=True)
        labels.append({"request_id": rid, "row": 0, "label": str(_label(task, y))})
    champ.close()
    chall.close()
    return read_logged(root, model_version=CHAMP), read_logged(root, model_version=CHALL), pl.DataFrame(labels)


@pytest.mark.parametrize("task", ["binary_classification", "multiclass_classification", "regression"])
@pytest.mark.parametrize("mode", ["shadow", "canary"])
def test_a_worse_challenger_trips_the_metric_rule_and_an_equal_one_does_not(tmp_path, task, mode):
    mon = _monitoring(task)
    for worse in (True, False):
        a, b, labels = _serve(tmp_path / f"{worse}", task, mode=mode, worse=worse)
        pair = join_labels_pair(a, b, labels, mode=mode)
        if mode == "shadow":  # paired: the very same requests
            assert sorted(pair.champion["request_id"]) == sorted(pair.challenger["request_id"])
            assert pair.champion.height == 240
        else:  # each model's own answered requests
            assert set(pair.champion["request_id"]).isdisjoint(pair.challenger["request_id"])
            assert pair.champion.height == pair.challenger.height == 120
        rep = challenger_feedback(pair, champion=CHAMP, challenger=CHALL, champion_monitoring=mon,
                                  challenger_monitoring=mon, rules=RULES)
        v = rep.values
        assert rep.primary == mon["primary_metric"] and set(rep.metrics["champion"]) == set(rep.metrics["challenger"])
        if worse:
            assert rep.trigger == "metric" and rep.exit_code == 20 and mon["primary_metric"] in rep.reason
            # in the metric's direction: a higher MAE, a lower PR-AUC / macro F1
            assert (v["challenger"] > v["champion"]) if task == "regression" else (v["challenger"] < v["champion"])
        else:
            assert rep.trigger is None and rep.exit_code == 0, (v, rep.reason)
        assert "champion" in rep._repr_html_() and rep.to_dict()["rows"] == rep.rows


def test_not_judged_below_min_labels_and_only_rows_logged_beside_the_challenger(tmp_path):
    a, b, labels = _serve(tmp_path, "regression", mode="canary", worse=True)
    pair = join_labels_pair(a, b, labels.head(60), mode="canary")  # about 30 labelled rows each
    rep = challenger_feedback(pair, champion=CHAMP, challenger=CHALL, champion_monitoring=_monitoring("regression"),
                              challenger_monitoring=_monitoring("regression"), rules=RULES)
    assert rep.trigger is None and max(rep.rows.values()) < RULES.min_labels and "not judged yet" in rep.headline()
    # rows the champion logged alone (no role: before the challenger; a segment of their own, as a server started
    # before the challenger writes) never enter the comparison
    alone = PredictionLog(CHAMP, root=tmp_path)
    alone.append_outputs("before", {"x": [1.0]}, {"prediction": [100.0]})
    alone.close()
    a2 = read_logged(tmp_path, model_version=CHAMP)
    extra = pl.concat([labels, pl.DataFrame({"request_id": ["before"], "row": [0], "label": ["100.0"]})])
    assert "before" not in join_labels_pair(a2, b, extra, mode="canary").champion["request_id"].to_list()
    # the wrong mode for the rows: nothing to compare
    assert join_labels_pair(a, b, labels, mode="shadow").challenger.height == 0
    with pytest.raises(ValueError, match="shadow or canary"):
        join_labels_pair(a, b, labels, mode="blue-green")


def test_labels_are_checked_against_both_logs_and_kept(tmp_path):
    a, b, labels = _serve(tmp_path / "log", "binary_classification", mode="canary", n=40, worse=False)
    file = labels.rename({"label": "outcome"}).drop("row")
    check_labels(file, [a, b], label_column="outcome")  # canary ids are in one log or the other: fine
    with pytest.raises(DataError, match="not in the prediction log") as err:
        check_labels(file, [a], label_column="outcome")  # the canary's requests are not in the champion's log
    assert err.value.column == "request_id"
    with pytest.raises(DataError, match="no label column 'target'"):
        check_labels(file, [a, b], label_column="target")
    # kept in the label store: a second batch adds up, a label given twice counts once (the latest)
    store = tmp_path / "labels"
    save_labels(file.head(25), label_column="outcome", root=store)
    save_labels(file.tail(20).with_columns(pl.lit("yes").alias("outcome")), label_column="outcome", root=store)
    kept = stored_labels(store)
    assert kept.height == 40 and kept.columns == ["request_id", "row", "label"]
    assert kept.filter(pl.col("request_id") == "r39")["label"].item() == "yes"
    assert stored_labels(tmp_path / "nothing").height == 0


def test_labelled_metrics_for_compare(tmp_path):
    mon = _monitoring("multiclass_classification")
    a, b, labels = _serve(tmp_path, "multiclass_classification", mode="shadow", worse=True)
    m = labelled_metrics(CHAMP, CHALL, logs=(a, b), labels=labels, monitoring=(mon, mon))
    assert m["labelled_rows"] == {"champion": 240, "challenger": 240}
    assert m["champion"]["macro_f1"] > m["challenger"]["macro_f1"] and "accuracy" in m["champion"]
    assert labelled_metrics(CHAMP, CHALL, logs=(a, b), labels=labels.clear(), monitoring=(mon, mon)) is None
