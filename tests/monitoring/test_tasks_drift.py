"""Reference profiles, the prediction log and drift for multiclass and regression models (synthetic scores)."""

from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from workbench.errors import DataError
from workbench.monitoring.drift import drift_report
from workbench.monitoring.log import PredictionLog, log_task, read_log
from workbench.monitoring.profile import build_profile, profile_task

CLASSES = ["a", "b", "c"]


def _frame(n: int, rng: np.random.Generator, shift: float = 0.0) -> pl.DataFrame:
    return pl.DataFrame({"x": rng.normal(shift, 1.0, n), "g": rng.choice(["u", "v"], n)})


def _proba(n: int, rng: np.random.Generator, tilt: float = 0.0) -> np.ndarray:
    z = rng.normal(0, 1, (n, 3)) + np.array([tilt, 0.0, 0.0])
    return np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)


@pytest.fixture(scope="module")
def profiles():
    rng = np.random.default_rng(0)
    train = _frame(5000, rng)
    mc = build_profile(train, features=["x", "g"], numeric=["x"], task="multiclass_classification",
                       scores=_proba(4000, rng), classes=CLASSES, seed=0)
    reg = build_profile(train, features=["x", "g"], numeric=["x"], task="regression",
                        scores=rng.normal(50, 10, 4000), seed=0)
    return mc, reg


def test_profiles_per_task(profiles):
    mc, reg = profiles
    assert profile_task(mc) == "multiclass_classification" and profile_task(reg) == "regression"
    p = mc["prediction"]
    assert p["classes"] == CLASSES and sum(p["shares"].values()) == pytest.approx(1.0)
    assert sum(p["mean_probabilities"].values()) == pytest.approx(1.0)
    r = reg["prediction"]
    assert len(r["edges"]) == 9 and r["mean"] == pytest.approx(50, abs=1) and r["std"] == pytest.approx(10, abs=1)
    assert len(r["sample"]) == 4000 and r["null_fraction"] == 0.0
    json.dumps(mc), json.dumps(reg)  # noqa: B018 - saved as JSON


def test_binary_profile_is_unchanged_and_has_no_task_key():
    rng = np.random.default_rng(1)
    prof = build_profile(_frame(500, rng), features=["x"], numeric=["x"], probabilities=rng.random(500),
                         threshold=0.5)
    assert "task" not in prof and profile_task(prof) == "binary_classification"
    assert set(prof["prediction"]) == {"edges", "shares", "rows", "mean", "threshold", "positive_rate", "sample"}


def test_profile_refuses_scores_that_do_not_fit_the_task():
    df = pl.DataFrame({"x": [1.0, 2.0]})
    with pytest.raises(ValueError, match="needs the classes"):
        build_profile(df, features=["x"], numeric=["x"], task="multiclass_classification", scores=np.ones((2, 3)))
    with pytest.raises(ValueError, match=r"\(n, 3\)"):
        build_profile(df, features=["x"], numeric=["x"], task="multiclass_classification",
                      scores=np.ones((2, 4)) / 4, classes=CLASSES)
    with pytest.raises(ValueError, match="threshold"):
        build_profile(df, features=["x"], numeric=["x"], probabilities=np.array([0.1, 0.9]))


def _log_multiclass(root, proba: np.ndarray, df: pl.DataFrame, batch: int = 100) -> None:
    log = PredictionLog("mc:1", root=root)
    for i in range(0, len(proba), batch):
        rows = proba[i:i + batch]
        log.append_outputs(f"r{i}", {"x": df["x"][i:i + batch].to_list(), "g": df["g"][i:i + batch].to_list()},
                           {"label": [CLASSES[k] for k in rows.argmax(1)], "probabilities": rows.tolist()})
    log.close()


def _log_regression(root, yhat: np.ndarray, df: pl.DataFrame, batch: int = 100) -> None:
    log = PredictionLog("reg:1", root=root)
    for i in range(0, len(yhat), batch):
        log.append_outputs(f"r{i}", {"x": df["x"][i:i + batch].to_list(), "g": df["g"][i:i + batch].to_list()},
                           {"prediction": yhat[i:i + batch]})
    log.close()


def test_multiclass_log_and_drift(profiles, tmp_path):
    mc, _ = profiles
    rng = np.random.default_rng(2)
    _log_multiclass(tmp_path / "ok", _proba(3000, rng), _frame(3000, rng))
    full = read_log(tmp_path / "ok")
    assert full.schema["probabilities"] == pl.List(pl.Float64) and full["label"].dtype == pl.String
    assert full.height == 3000 and "probability" not in full.columns
    kinds = {"x": "numeric", "g": "categorical"}
    lean = read_log(tmp_path / "ok", input_kinds=kinds)
    assert set(lean.columns) == {"row", "ts", "x", "g", "label"}
    ok = drift_report(lean, mc)
    assert ok.severity == "ok", ok.summary()
    assert ok.prediction["kind"] == "predicted class" and ok.prediction["bins"] == [*CLASSES, "(unseen)"]
    assert ok.prediction["chi2_p"] > 0.001 and ok.prediction["ks_stat"] is None
    with_means = drift_report(full, mc).prediction
    assert sum(with_means["mean_probabilities_live"].values()) == pytest.approx(1.0)
    # predictions tilted towards class "a", inputs unchanged: prediction drift alone -> verify labels
    _log_multiclass(tmp_path / "tilt", _proba(3000, rng, tilt=1.5), _frame(3000, rng))
    tilted = drift_report(read_log(tmp_path / "tilt", input_kinds=kinds), mc)
    assert tilted.prediction["severity"] == "critical" and tilted.prediction["chi2_p"] < 1e-6
    assert tilted.flagged() == [] and "verify labels" in tilted.action
    assert "Predicted classes: PSI" in tilted._repr_html_()
    tilted.plot()


def test_regression_log_and_drift(profiles, tmp_path):
    _, reg = profiles
    rng = np.random.default_rng(3)
    _log_regression(tmp_path / "ok", rng.normal(50, 10, 3000), _frame(3000, rng))
    kinds = {"x": "numeric", "g": "categorical"}
    lean = read_log(tmp_path / "ok", input_kinds=kinds)
    assert set(lean.columns) == {"row", "ts", "x", "g", "prediction"}
    ok = drift_report(lean, reg)
    assert ok.severity == "ok", ok.summary()
    assert ok.prediction["task"] == "regression" and ok.prediction["ks_stat"] < 0.1
    _log_regression(tmp_path / "shift", rng.normal(60, 10, 3000), _frame(3000, rng, shift=1.0))
    shifted = drift_report(read_log(tmp_path / "shift", input_kinds=kinds), reg)
    assert shifted.severity == "critical" and shifted.prediction["severity"] == "critical"
    assert shifted.prediction["ks_stat"] > 0.3 and shifted.prediction["live_mean"] == pytest.approx(60, abs=1)
    assert shifted.flagged("critical") == ["x"]
    html = shifted._repr_html_()
    assert "Predictions: PSI" in html and f"-> {shifted.prediction['live_mean']:.4g}" in html


def test_drift_names_the_missing_prediction_column(profiles):
    mc, reg = profiles
    live = pl.DataFrame({"x": [0.1, 0.2], "g": ["u", "v"], "probability": [0.2, 0.3]})
    with pytest.raises(DataError, match="no 'label' column"):
        drift_report(live, mc)
    with pytest.raises(DataError, match="no 'prediction' column"):
        drift_report(live, reg)


def test_old_binary_segments_read_unchanged(tmp_path):
    """A segment written before multiclass and regression existed (the round-1 line format, byte for byte)."""
    d = tmp_path / "m_1"
    d.mkdir()
    line = {"request_id": "r1", "ts": "2026-01-01T00:00:00.000001+00:00", "model_version": "m:1", "n": 2,
            "inputs": {"age": [30, None], "sex": ["Male", None]}, "probability": [0.25, 0.75],
            "label": ["no", "yes"], "flags": [[], ["age:missing"]]}
    (d / "20260101T000000000000-1.jsonl").write_text(json.dumps(line) + "\n")
    assert log_task(json.dumps(line)) == "binary_classification"
    full = read_log(tmp_path)
    assert full.columns == ["request_id", "row", "ts", "model_version", "age", "sex", "probability", "label", "flags"]
    assert full["probability"].to_list() == [0.25, 0.75] and full["label"].to_list() == ["no", "yes"]
    lean = read_log(tmp_path, input_kinds={"age": "numeric", "sex": "categorical"})
    assert set(lean.columns) == {"row", "ts", "age", "sex", "probability"}


def test_binary_append_writes_the_round1_line(tmp_path):
    log = PredictionLog("m:1", root=tmp_path)
    log.append("r1", {"age": [30]}, [0.25], ["no"], {0: {"age": "out_of_range"}})
    log.close()
    line = json.loads(next((tmp_path / "m_1").glob("*.jsonl")).read_text())
    assert list(line) == ["request_id", "ts", "model_version", "n", "inputs", "probability", "label", "flags"]
    assert line["flags"] == [["age:out_of_range"]]
