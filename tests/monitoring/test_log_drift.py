from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from testkit import ADULT_BRIEF
from workbench.brief import load_brief
from workbench.data import infer_contract, load_dataset
from workbench.errors import DataError
from workbench.monitoring.drift import drift_report, psi
from workbench.monitoring.log import PredictionLog, read_log
from workbench.monitoring.profile import build_profile


@pytest.fixture(scope="module")
def adult():
    b = load_brief(ADULT_BRIEF)
    d = load_dataset(b)
    c = infer_contract(d.train, b)
    rng = np.random.default_rng(0)
    # A stand-in for the model's probabilities: a monotone function of two features, so shifts move it too.
    def proba(df):
        z = 0.04 * (df["age"].to_numpy() - 38) + 0.3 * (df["education_num"].to_numpy() - 10)
        return 1 / (1 + np.exp(-(z - 1.2)))
    prof = build_profile(d.train, features=c.features, numeric=c.numeric_features, probabilities=proba(d.test),
                         threshold=0.5, seed=0)
    return b, d, c, prof, proba, rng


def test_psi_basics():
    a = np.array([0.25, 0.25, 0.5])
    assert psi(a, a) == pytest.approx(0.0)
    assert psi(a, np.array([0.5, 0.25, 0.25])) > 0.25
    assert np.isfinite(psi(np.array([1.0, 0.0]), np.array([0.0, 1.0])))


def test_held_out_data_raises_no_alert(adult):
    b, d, c, prof, proba, _ = adult
    live = d.test.with_columns(pl.Series("probability", proba(d.test)))
    r = drift_report(live, prof)
    assert r.severity == "ok" and r.exit_code == 0, r.summary()
    assert all(f["psi"] < 0.1 for f in r.features)


def test_shifted_data_is_critical_on_shifted_features_only(adult):
    b, d, c, prof, proba, rng = adult
    occ = d.test.get_column("occupation").to_numpy()
    occ = np.where(np.isin(occ, ["Prof-specialty", "Exec-managerial", "Adm-clerical"]), "Farming-fishing", occ)
    shifted = d.test.with_columns((pl.col("age") + 15).alias("age"), pl.Series("occupation", occ))
    live = shifted.with_columns(pl.Series("probability", proba(shifted)))
    r = drift_report(live, prof)
    assert r.severity == "critical" and r.exit_code == 20
    assert set(r.flagged("critical")) == {"age", "occupation"}
    assert set(r.flagged("warning")) == {"age", "occupation"}
    assert "retrain within 24h" in r.action
    by = {f["feature"]: f for f in r.features}
    assert by["age"]["ks_stat"] > 0.3
    assert r.prediction["psi"] > 0.1  # predictions moved with age


def test_missing_feature_and_empty(adult):
    b, d, c, prof, proba, _ = adult
    with pytest.raises(DataError, match="lacks profiled features: age"):
        drift_report(d.test.drop("age").with_columns(pl.lit(0.1).alias("probability")), prof)
    with pytest.raises(DataError, match="no live rows"):
        drift_report(d.test.head(0), prof)


def test_log_append_read_and_torn_line(tmp_path):
    log = PredictionLog("workbench-x:abc", root=tmp_path)
    log.append("r1", {"age": [30, None], "sex": ["Male", None]}, [0.2, 0.7], ["<=50K", ">50K"],
               [[], ["missing:age"]])
    log.append("r2", {"age": [41], "sex": ["Female"]}, [0.4], ["<=50K"], [[]])
    log.close()
    seg = next((tmp_path / "workbench-x_abc").glob("*.jsonl"))
    with open(seg, "ab") as fh:  # a crash mid-write leaves half a line
        fh.write(b'{"request_id":"r3","row":0,"inp')
    df = read_log(tmp_path, model_version="workbench-x:abc")
    assert df.height == 3 and df["request_id"].to_list() == ["r1", "r1", "r2"]
    assert df["age"].to_list() == [30, None, 41] and df["flags"][1].to_list() == ["missing:age"]
    assert df["model_version"].unique().to_list() == ["workbench-x:abc"]


def test_empty_log_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="prediction log is empty"):
        read_log(tmp_path)


def test_log_rollover_and_retention(tmp_path):
    log = PredictionLog("m:1", root=tmp_path, max_segment_bytes=400, retention_days=1)
    for i in range(10):
        log.append(f"r{i}", {"x": [i]}, [0.5], ["a"])
    log.close()
    segs = sorted((tmp_path / "m_1").glob("*.jsonl"))
    assert len(segs) > 1
    old = segs[0]
    os.utime(old, (0, 0))
    log2 = PredictionLog("m:1", root=tmp_path, retention_days=1)
    log2.append("new", {"x": [1]}, [0.5], ["a"])
    log2.close()
    assert not old.exists()


def test_sigkill_after_answer_loses_nothing(tmp_path):
    # A child process appends 200 requests, reports each as answered, then is SIGKILLed.
    code = (
        "import sys, os, signal\n"
        "from workbench.monitoring.log import PredictionLog\n"
        f"log = PredictionLog('m:1', root={str(tmp_path)!r})\n"
        "for i in range(200):\n"
        "    log.append(f'r{i}', {'x': [i, i]}, [0.1, 0.9], ['a', 'b'])\n"
        "    print(f'r{i}', flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    answered = out.stdout.split()
    assert out.returncode == -9 and len(answered) == 200
    df = read_log(tmp_path)
    assert set(df["request_id"].to_list()) == set(answered) and df.height == 400


def test_feedback_join_and_errors(tmp_path):
    from workbench.feedback import feedback_report, join_labels

    log = PredictionLog("m:1", root=tmp_path)
    rng = np.random.default_rng(0)
    n = 400
    sex = rng.choice(["Male", "Female"], n)
    y = rng.random(n) < 0.3
    p = np.clip(np.where(y, 0.7, 0.2) + rng.normal(0, 0.15, n), 0, 1)
    for i in range(n):
        log.append(f"r{i}", {"sex": [sex[i]]}, [p[i]], [">50K" if p[i] > 0.5 else "<=50K"])
    log.close()
    logged = read_log(tmp_path)
    labels = pl.DataFrame({"request_id": [f"r{i}" for i in range(n)],
                           "income": np.where(y, ">50K", "<=50K")})
    mon = {"positive_label": ">50K", "primary_metric": "pr_auc", "threshold": 0.5, "certified_value": 0.80,
           "metric_tolerance": 0.05, "sensitive_features": ["sex"], "target": "income",
           "fairness": {"thresholds": {"equalized_odds_difference": 0.3}, "min_slice_size": 30,
                        "bootstrap_samples": 50}}
    joined = join_labels(logged, labels, label_column="income")
    rep = feedback_report(joined, mon)
    assert rep.rows == n and not rep.concept_drift and rep.exit_code in (0, 10)
    from sklearn.metrics import average_precision_score

    assert rep.live_value == pytest.approx(average_precision_score(y, p))
    flipped = labels.with_columns(pl.Series("income", np.where(~y, ">50K", "<=50K")))
    rep2 = feedback_report(join_labels(logged, flipped, label_column="income"), mon)
    assert rep2.concept_drift and rep2.exit_code == 20
    with pytest.raises(DataError, match="2 labelled request ids are not in the prediction log"):
        join_labels(logged, pl.concat([labels, pl.DataFrame({"request_id": ["zz1", "zz2"],
                                                               "income": [">50K", "<=50K"]})]), label_column="income")
    with pytest.raises(DataError, match="no label column 'income'"):
        join_labels(logged, labels.rename({"income": "truth"}), label_column="income")


def test_read_log_with_input_kinds_parses_only_what_drift_needs(tmp_path):
    log = PredictionLog("m:1", root=tmp_path)
    log.append("r1", {"age": [30, None], "sex": ["Male", None], "extra": ["x", "y"]}, [0.2, 0.7], ["a", "b"])
    log.close()
    full = read_log(tmp_path)
    lean = read_log(tmp_path, input_kinds={"age": "numeric", "sex": "categorical"})
    assert set(lean.columns) == {"row", "ts", "age", "sex", "probability"}
    assert lean["age"].to_list() == [30.0, None] and lean["sex"].to_list() == ["Male", None]
    assert lean["probability"].to_list() == full["probability"].to_list()


def test_validated_append_writes_the_same_lines_and_iso_times(tmp_path):
    """The service's fast append (plain values, no normalisation) writes what the general one writes, and the
    once-a-second cached time prefix still gives ``isoformat(timespec="microseconds")`` UTC times."""
    import datetime as dt
    import json

    cols = {"age": (30, None), "hours": (40.5, 12.0), "sex": ("Male", None)}
    lines = []
    for validated in (False, True):
        log = PredictionLog("m:v", root=tmp_path / str(validated))
        before = dt.datetime.now(dt.UTC)
        log.append("r1", cols, [0.25, 0.75], ["no", "yes"], {1: {"age": "missing"}}, validated=validated)
        after = dt.datetime.now(dt.UTC)
        log.close()
        line = json.loads(next((tmp_path / str(validated) / "m_v").glob("*.jsonl")).read_text())
        ts = dt.datetime.fromisoformat(line.pop("ts"))
        assert before - dt.timedelta(microseconds=1) <= ts <= after and ts.utcoffset() == dt.timedelta(0)
        lines.append(line)
    assert lines[0] == lines[1]
    assert lines[1]["inputs"] == {"age": [30, None], "hours": [40.5, 12.0], "sex": ["Male", None]}
    assert lines[1]["flags"] == [[], ["age:missing"]]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}\+00:00", PredictionLog("m:v", root=tmp_path)._now())
