"""Observability against a real `bentoml serve`: the prediction log, /metrics, drift on replayed traffic,
feedback, and a SIGKILL in the middle of a load (answered requests must all be in the log)."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import threading
import time

import httpx
import numpy as np
import polars as pl
import pytest

from .conftest import ADULT_BRIEF, ROOT, frame_to_records
from .test_server import bentoml_serve, free_port, server_env

pytestmark = [pytest.mark.serving, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def held_out(serving_package):
    from workbench.brief import load_brief
    from workbench.data import DataContract, load_dataset
    b = load_brief(ADULT_BRIEF)
    test = load_dataset(b).test.sample(n=4000, seed=5)
    contract = DataContract.model_validate_json((serving_package.path / "contract.json").read_text())
    return test, contract


def _records(df, contract):
    from workbench.modeling import to_model_frame

    return frame_to_records(to_model_frame(df, contract), contract.categorical_features)


def _send(url, records, batch=100):
    ids = []
    with httpx.Client(base_url=url, timeout=30) as c:
        for i in range(0, len(records), batch):
            r = c.post("/predict", json=records[i:i + batch])
            assert r.status_code == 200, r.text
            ids.append(r.json()["request_id"])
    return ids


def _cli(*args, env):
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, cwd=ROOT,
                          env=env, timeout=300)


def test_replayed_traffic_drift_metrics_and_feedback(serving_package, held_out, tmp_path):
    test, contract = held_out
    logs = tmp_path / "log"
    env = server_env(serving_package.home, WORKBENCH_LOG_DIR=str(logs))
    with bentoml_serve(serving_package.home, tmp_path / "serve.log", WORKBENCH_LOG_DIR=str(logs)) as url:
        normal_ids = _send(url, _records(test, contract))
        metrics = httpx.get(f"{url}/metrics").text
        split = dt.datetime.now(dt.UTC).isoformat(timespec="microseconds")
        occ = test.get_column("occupation").to_numpy()
        occ = np.where(np.isin(occ, ["Prof-specialty", "Exec-managerial", "Adm-clerical"]), "Farming-fishing", occ)
        shifted = test.with_columns((pl.col("age") + 15).alias("age"), pl.Series("occupation", occ))
        _send(url, _records(shifted, contract))
    line = next(ln for ln in metrics.splitlines() if ln.startswith("workbench_predictions_total{"))
    assert serving_package.tag in line and float(line.split()[-1]) == 4000
    assert "workbench_flagged_inputs_total{" in metrics
    # BentoML's own request metrics still see /predict (answered by PredictRoute inside its middlewares)
    served = sum(float(ln.rsplit(" ", 1)[1]) for ln in metrics.splitlines()
                 if ln.startswith("bentoml_service_request_total{") and 'endpoint="/predict"' in ln
                 and 'http_response_code="200"' in ln)
    assert served == len(normal_ids) == 40

    from workbench.monitoring.log import read_log

    logged = read_log(logs)
    assert logged.height == 8000 and set(normal_ids) <= set(logged["request_id"].to_list())

    env_cli = {**env, "WORKBENCH_LOG_DIR": str(logs)}
    whole = _cli("drift", "--model", serving_package.tag, "--out", str(tmp_path / "d1"), env=env_cli)
    df = logged.filter(pl.col("ts") < split)
    assert df.height == 4000
    # Re-run drift in-process on each window for exact assertions, then the CLI for exit codes.
    from workbench.monitoring.drift import drift_report

    profile = json.loads((serving_package.path / "reference_profile.json").read_text())
    r_normal = drift_report(df, profile)
    assert r_normal.severity == "ok", r_normal.summary()
    r_shift = drift_report(logged.filter(pl.col("ts") >= split), profile)
    assert r_shift.severity == "critical" and set(r_shift.flagged("warning")) == {"age", "occupation"}
    assert whole.returncode == 20  # the whole log contains the shifted half
    after = _cli("drift", "--model", serving_package.tag, "--since", split, "--out", str(tmp_path / "d2"), env=env_cli)
    assert after.returncode == 20 and "retrain within 24h" in after.stdout
    assert (tmp_path / "d2" / "drift.html").is_file() and (tmp_path / "d2" / "drift.json").is_file()

    # Feedback: ground truth for the held-out requests, joined by request id and row.
    y = test.get_column("income").to_list()
    rows = []
    for k, rid in enumerate(normal_ids):
        for j in range(100):
            rows.append({"request_id": rid, "row": j, "income": y[k * 100 + j]})
    labels = tmp_path / "labels.csv"
    pl.DataFrame(rows).write_csv(labels)
    fb = _cli("feedback", str(labels), "--model", serving_package.tag, "--out", str(tmp_path / "fb"), env=env_cli)
    assert fb.returncode in (0, 10), fb.stdout + fb.stderr
    assert "4000 labelled rows" in fb.stdout
    bad = tmp_path / "bad.csv"
    pl.DataFrame({"request_id": ["nope"], "row": [0], "income": [">50K"]}).write_csv(bad)
    out = _cli("feedback", str(bad), "--model", serving_package.tag, env=env_cli)
    assert out.returncode == 2 and "not in the prediction log" in out.stderr


def test_sigkill_mid_load_loses_no_answered_request(serving_package, held_out, tmp_path):
    test, contract = held_out
    records = _records(test.head(50), contract)
    logs = tmp_path / "log"
    port = free_port()
    env = server_env(serving_package.home, WORKBENCH_LOG_DIR=str(logs))
    proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "--host", "127.0.0.1", "--port", str(port)],
                            cwd=ROOT / "bento", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    answered: list[str] = []
    stop = threading.Event()
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        def load():
            with httpx.Client(base_url=url, timeout=5) as c:
                i = 0
                while not stop.is_set() and i < 5000:
                    try:
                        r = c.post("/predict", json=records[i % 50])
                    except httpx.HTTPError:
                        return
                    if r.status_code == 200:
                        answered.append(r.json()["request_id"])
                    i += 1
        threads = [threading.Thread(target=load) for _ in range(4)]
        for t in threads:
            t.start()
        while len(answered) < 300 and time.monotonic() < deadline + 60:
            time.sleep(0.01)
        # The whole server, arbiter and workers, with no chance to clean up. BentoML's workers run in sessions
        # of their own, so the process group alone would leave them serving as orphans.
        import psutil

        workers = psutil.Process(proc.pid).children(recursive=True)
        os.killpg(proc.pid, signal.SIGKILL)
        for w in workers:
            with contextlib.suppress(psutil.NoSuchProcess):
                w.kill()
        stop.set()
        for t in threads:
            t.join(timeout=10)
    finally:
        stop.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    assert not [w for w in workers if w.is_running() and w.status() != psutil.STATUS_ZOMBIE], "orphaned workers"
    from workbench.monitoring.log import read_log

    logged = set(read_log(logs)["request_id"].to_list())
    assert len(answered) >= 300
    missing = set(answered) - logged
    assert not missing, f"{len(missing)} answered requests are not in the log"
