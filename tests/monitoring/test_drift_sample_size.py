"""Drift that does not cry wolf: a minimum sample per window ("not enough data", exit 0) and PSI levels that
count only when the difference is significant at the window's size -- for every task's predictions."""

from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from workbench.monitoring.compact import compact_log
from workbench.monitoring.drift import NOT_ENOUGH_DATA, drift_from_log, drift_report, drift_settings
from workbench.monitoring.log import PredictionLog
from workbench.monitoring.profile import build_profile

CLASSES = ["a", "b", "c"]
RARE = [f"r{i:02d}" for i in range(100)]  # 100 categories of 0.5% each: PSI alone is noisy on small windows


def _features(n: int, rng: np.random.Generator, shift: float = 0.0) -> pl.DataFrame:
    common = rng.random(n) < 0.5 + shift / 4
    g = np.where(common, "common", rng.choice(RARE, n))
    return pl.DataFrame({"x": rng.normal(shift, 1.0, n), "g": g})


def _scores(task: str, n: int, rng: np.random.Generator, shift: float = 0.0) -> np.ndarray:
    if task == "binary_classification":
        return 1 / (1 + np.exp(-rng.normal(shift * 2, 1.0, n)))
    if task == "multiclass_classification":
        z = rng.normal(0, 1, (n, 3)) + np.array([2 * shift, 0.0, 0.0])
        return np.exp(z) / np.exp(z).sum(1, keepdims=True)
    return rng.normal(50 + 10 * shift, 10, n)


def _outputs(task: str, s: np.ndarray) -> dict:
    if task == "binary_classification":
        return {"probability": s.tolist(), "label": ["yes" if v > 0.5 else "no" for v in s]}
    if task == "multiclass_classification":
        return {"label": [CLASSES[k] for k in s.argmax(1)], "probabilities": s.tolist()}
    return {"prediction": s.tolist()}


@pytest.fixture(scope="module", params=["binary_classification", "multiclass_classification", "regression"])
def task_profile(request):
    task = request.param
    rng = np.random.default_rng(0)
    kw = {"probabilities": _scores(task, 20_000, rng), "threshold": 0.5} if task == "binary_classification" else \
        {"scores": _scores(task, 20_000, rng), "classes": CLASSES if task == "multiclass_classification" else None}
    prof = build_profile(_features(20_000, rng), features=["x", "g"], numeric=["x"], task=task, seed=0, **kw)
    return task, prof


def _log(root, task: str, n: int, seed: int, shift: float = 0.0, batch: int = 100) -> None:
    rng = np.random.default_rng(seed)
    df, s = _features(n, rng, shift), _scores(task, n, rng, shift)
    log = PredictionLog("m:1", root=root, retention_days=0)
    for i in range(0, n, batch):
        log.append_outputs(f"r{i}", {"x": df["x"][i:i + batch].to_list(), "g": df["g"][i:i + batch].to_list()},
                           _outputs(task, s[i:i + batch]))
    log.close()


MON = {"psi_warning": 0.1, "psi_critical": 0.25, "ks_alpha": 0.01}  # a monitoring.json without min_rows


def test_one_logged_row_is_not_enough_data_and_exit_0(task_profile, tmp_path):
    task, prof = task_profile
    _log(tmp_path, task, 1, seed=1, shift=3.0)  # even a wildly shifted row
    r = drift_from_log(prof, MON, log_dir=tmp_path, model_version="m:1")
    assert r.severity == NOT_ENOUGH_DATA and r.exit_code == 0 and r.rows == 1 and r.min_rows == 300
    assert {f["severity"] for f in r.features} == {NOT_ENOUGH_DATA} and r.prediction["severity"] == NOT_ENOUGH_DATA
    assert "1 logged row(s) in the window, 300 needed" in r.headline()
    assert r.to_dict()["enough_data"] is False and "indicative only" in r._repr_html_()
    r.plot()
    quiet = drift_from_log(prof, MON, log_dir=tmp_path, model_version="m:1", since="2999-01-01")
    assert quiet.severity == NOT_ENOUGH_DATA and quiet.rows == 0 and quiet.exit_code == 0
    quiet._repr_html_(), quiet.plot()  # noqa: B018


def test_ten_thousand_reference_rows_are_ok(task_profile, tmp_path):
    task, prof = task_profile
    _log(tmp_path, task, 10_000, seed=2)
    compact_log(tmp_path, include_active=True)  # read from Parquet, as after `workbench log compact`
    r = drift_from_log(prof, MON, log_dir=tmp_path, model_version="m:1")
    assert r.severity == "ok" and r.exit_code == 0 and r.rows == 10_000, r.summary()
    assert r.prediction["severity"] == "ok"


def test_ten_thousand_shifted_rows_are_critical(task_profile, tmp_path):
    task, prof = task_profile
    _log(tmp_path, task, 10_000, seed=3, shift=1.0)
    r = drift_from_log(prof, MON, log_dir=tmp_path, model_version="m:1")  # from the JSON lines (not compacted)
    assert r.severity == "critical" and r.exit_code == 20, r.summary()
    assert r.prediction["severity"] == "critical" and r.prediction["significant"]
    assert set(r.flagged("critical")) == {"x", "g"}


def test_prediction_drift_alone_on_ten_thousand_rows(task_profile):
    task, prof = task_profile
    rng = np.random.default_rng(4)
    live = _features(10_000, rng).with_columns(pl.Series(*_pred_column(task, _scores(task, 10_000, rng, 1.0))))
    r = drift_report(live, prof, min_rows=300)
    assert r.prediction["severity"] == "critical" and r.flagged() == [] and "verify labels" in r.action


def _pred_column(task: str, s: np.ndarray) -> tuple[str, list]:
    if task == "multiclass_classification":
        return "label", [CLASSES[k] for k in s.argmax(1)]
    return ("probability" if task == "binary_classification" else "prediction"), s.tolist()


def test_psi_noise_on_a_small_window_is_not_a_verdict(task_profile):
    """300 rows from the reference: PSI on the 100 rare categories passes the critical level by chance (the old
    rule paged someone); the chi-square test at that size finds nothing, so the verdict is ok."""
    _task, prof = task_profile
    rng = np.random.default_rng(5)
    g = drift_report(_features(300, rng).with_columns(pl.Series(*_pred_column(_task, _scores(_task, 300, rng)))),
                     prof, min_rows=300)
    row = next(f for f in g.features if f["feature"] == "g")
    assert row["psi"] >= 0.25 and row["psi_level"] == "critical"
    assert not row["significant"] and row["severity"] == "ok" and g.severity == "ok", g.summary()


def test_a_real_shift_on_a_small_window_is_still_caught(task_profile):
    _task, prof = task_profile
    rng = np.random.default_rng(6)
    live = _features(400, rng, shift=1.5)
    live = live.with_columns(pl.Series(*_pred_column(_task, _scores(_task, 400, rng, 1.5))))
    r = drift_report(live, prof, min_rows=300)
    assert r.severity == "critical" and "x" in r.flagged("critical")


def test_settings_come_from_monitoring_json_with_defaults():
    assert drift_settings({}) == {"psi_warning": 0.1, "psi_critical": 0.25, "ks_alpha": 0.01, "min_rows": 300}
    assert drift_settings({"min_rows": 50, "psi_warning": 0.2})["min_rows"] == 50
    st = drift_settings({"psi_warning": 0.2, "psi_critical": 0.3}, psi_warning=0.0, psi_critical=0.4)
    assert st["psi_warning"] == 0.2 and st["psi_critical"] == 0.4  # 0 = no CLI override
    assert drift_settings(None, min_rows=10)["min_rows"] == 10


def test_the_same_report_from_jsonl_compacted_and_mixed_logs(task_profile, tmp_path):
    from workbench.monitoring.log import read_log

    task, prof = task_profile
    _log(tmp_path, task, 3_000, seed=7, shift=0.3)
    kinds = {f: r["kind"] for f, r in prof["features"].items()}
    live = read_log(tmp_path, model_version="m:1", input_kinds=kinds)
    want = drift_report(live, prof, min_rows=300, model_version="m:1").to_dict()
    seg = next((tmp_path / "m_1").glob("*.jsonl"))
    lines = seg.read_bytes().splitlines(keepends=True)
    seg.write_bytes(b"".join(lines[:10]))  # split the segment in two: one compacted, one left as JSON lines
    (tmp_path / "m_1" / "29990101T000000000000-1.jsonl").write_bytes(b"".join(lines[10:]))
    compact_log(tmp_path, include_active=True)
    tail = tmp_path / "m_1" / "29990101T000000000000-1.jsonl"
    tail.write_bytes(b"".join(lines[10:]))  # "not yet compacted" again
    (tmp_path / "m_1" / "29990101T000000000000-1.parquet").unlink()
    got = drift_from_log(prof, MON, log_dir=tmp_path, model_version="m:1").to_dict()
    assert got["rows"] == want["rows"] == 3_000 and got["severity"] == want["severity"]
    assert {f["feature"]: f["psi"] for f in got["features"]} == {f["feature"]: f["psi"] for f in want["features"]}
    assert got["prediction"]["psi"] == want["prediction"]["psi"]
