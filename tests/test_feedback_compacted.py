"""Feedback over a compacted prediction log: the same report as over the JSON lines, for every task."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from workbench.feedback import feedback_report, join_labels, read_logged
from workbench.monitoring.compact import compact_log
from workbench.monitoring.log import PredictionLog, read_log

CLASSES = ["cat", "dog", "fish"]
FAIRNESS = {"thresholds": {}, "min_slice_size": 20, "bootstrap_samples": 30}


def _log(root, task: str, n: int = 300):
    rng = np.random.default_rng(0)
    group = rng.choice(["x", "y"], n)
    log = PredictionLog("m:1", root=root, max_segment_bytes=10_000, retention_days=0)
    if task == "multiclass_classification":
        y = rng.integers(0, 3, n)
        z = np.exp(rng.normal(0, 1, (n, 3)) + 2.5 * np.eye(3)[y])
        proba = z / z.sum(1, keepdims=True)
        labels = [CLASSES[k] for k in y]
        for i in range(0, n, 10):
            log.append_outputs(f"r{i}", {"group": group[i:i + 10].tolist()},
                               {"label": [CLASSES[k] for k in proba[i:i + 10].argmax(1)],
                                "probabilities": proba[i:i + 10].tolist()})
        lab = pl.DataFrame({"request_id": [f"r{i - i % 10}" for i in range(n)], "row": [i % 10 for i in range(n)],
                            "target": labels})
        mon = {"task": task, "classes": CLASSES, "primary_metric": "macro_f1", "certified_value": 0.8}
    elif task == "regression":
        y = rng.normal(100, 15, n)
        for i in range(n):
            log.append_outputs(f"r{i}", {"group": [group[i]]}, {"prediction": [y[i] + rng.normal(0, 3)]})
        lab = pl.DataFrame({"request_id": [f"r{i}" for i in range(n)], "target": y})
        mon = {"task": task, "primary_metric": "mae", "certified_value": 2.5, "metric_tolerance": 0.5}
    else:
        y = rng.integers(0, 2, n)
        p = np.clip(0.25 + 0.5 * y + rng.normal(0, 0.2, n), 0.01, 0.99)
        for i in range(n):
            log.append(f"r{i}", {"group": [group[i]]}, [p[i]], ["yes" if p[i] > 0.5 else "no"])
        lab = pl.DataFrame({"request_id": [f"r{i}" for i in range(n)], "target": ["yes" if v else "no" for v in y]})
        mon = {"primary_metric": "pr_auc", "certified_value": 0.8, "positive_label": "yes", "threshold": 0.5}
    log.close()
    mon.update(sensitive_features=["group"], target="target", fairness=FAIRNESS)
    return lab, mon


@pytest.mark.parametrize("task", ["binary_classification", "multiclass_classification", "regression"])
def test_feedback_reads_compacted_logs(tmp_path, task):
    labels, mon = _log(tmp_path, task)
    before = feedback_report(join_labels(read_log(tmp_path, model_version="m:1"), labels, label_column="target"),
                             mon, seed=0)
    res = compact_log(tmp_path, "m:1", include_active=True)
    assert res.rows == 300 and not list((tmp_path / "m_1").glob("*.jsonl"))
    after = feedback_report(join_labels(read_logged(tmp_path, model_version="m:1"), labels, label_column="target"),
                            mon, seed=0)
    assert after.rows == before.rows == 300
    assert after.live_value == pytest.approx(before.live_value, abs=1e-12)
    assert after.fairness_verdict == before.fairness_verdict and after.concept_drift == before.concept_drift
