"""Tier 3 at the edge: a real ``bentoml serve`` on 127.0.0.1 -- Python clients read the 413, stalled connections
are closed, the OpenAPI document holds under Schemathesis ``--checks all``, a full or read-only log folder never
answers a request it did not log, and with ``WORKBENCH_HOT_SWAP=0`` one server serves one model even after a pointer
change and a respawn (with hot swap, the default, it follows the pointer: tests/serving/test_deploy_live.py).

Every server is started by :func:`~tests.serving.test_server.bentoml_serve` (bounded wait, whole process tree
stopped in teardown); every load is bounded.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx
import psutil
import pytest

from .conftest import ROOT, stop_server
from .test_server import START_TIMEOUT, bentoml_serve, free_port, server_env

pytestmark = pytest.mark.serving

BENTO_DIR = ROOT / "bento"


def _post(url: str, body: bytes, **headers: str) -> httpx.Response:
    return httpx.post(f"{url}/predict", content=body, timeout=30.0,
                      headers={"Content-Type": "application/json", **headers})


@pytest.fixture(scope="module")
def edge_server(serving_package, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("edge")
    with bentoml_serve(serving_package.home, tmp / "serve.log", WORKBENCH_HEADER_TIMEOUT="2",
                       WORKBENCH_LOG_DIR=str(tmp / "log")) as url:
        yield url, tmp / "serve.log"


def test_python_clients_read_the_413_of_a_large_body(edge_server, serving_package):
    """http.client and urllib send the whole body before reading: the server drains it (bounded) and answers."""
    url, log = edge_server
    limit = serving_package.serving["limits"]["max_body_bytes"]
    body = b" " * (limit + 5 * (1 << 20))  # 15 MB
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=60)
    conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json",
                                                          "X-Request-ID": "big-413"})
    resp = conn.getresponse()
    payload = json.loads(resp.read())
    conn.close()
    assert resp.status == 413 and str(limit) in payload["error"]
    assert resp.getheader("X-Request-ID") == "big-413" == payload["request_id"]
    req = urllib.request.Request(f"{url}/predict", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=60)
    assert err.value.code == 413 and "limits.max_body_bytes" in json.loads(err.value.read())["error"]
    deadline = time.monotonic() + 10
    while "request_id=big-413" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert "status=413 request_id=big-413" in log.read_text()  # refusals are logged with their request id


def test_non_json_is_415_over_http(edge_server, serving_package):
    url, _ = edge_server
    r = httpx.post(f"{url}/predict", content=json.dumps(serving_package.records[0]), timeout=30,
                   headers={"Content-Type": "text/plain", "X-Request-ID": "plain-1"})
    assert r.status_code == 415 and r.json()["request_id"] == "plain-1" == r.headers["x-request-id"]


def test_stalled_connections_are_closed(edge_server):
    """Half a request head, then silence: closed after WORKBENCH_HEADER_TIMEOUT (2 s here), not held forever."""
    url, _ = edge_server
    host, port = url.removeprefix("http://").split(":")
    socks = []
    try:
        for _ in range(5):
            s = socket.create_connection((host, int(port)), timeout=10)
            s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: appl")
            socks.append(s)
        idle = socket.create_connection((host, int(port)), timeout=10)  # connects and sends nothing
        socks.append(idle)
        t0 = time.monotonic()
        for s in socks:
            assert s.recv(1024) == b""  # the server closed it (a timeout here would raise)
        assert time.monotonic() - t0 < 8
    finally:
        for s in socks:
            s.close()
    assert httpx.get(f"{url}/readyz", timeout=5).status_code == 200


def test_readyz_and_docs_page(edge_server):
    url, _ = edge_server
    r = httpx.get(f"{url}/readyz", timeout=5)
    assert r.status_code == 200 and r.text.strip() == "ready"
    page = httpx.get(f"{url}/", timeout=5).text
    assert "swagger-ui-bundle.js" in page and "googletagmanager" not in page and "github-corner" not in page
    doc = httpx.get(f"{url}/docs.json", timeout=5).json()
    assert doc["info"]["version"] != "None" and doc["info"]["title"]
    op = doc["paths"]["/predict"]["post"]
    assert op["requestBody"]["required"] is True
    assert set(op["responses"]) == {"200", "400", "413", "415", "422", "503"}
    assert op["responses"]["422"]["content"]["application/json"]["schema"]["title"] == "ErrorResponse"
    record, batch = op["requestBody"]["content"]["application/json"]["schema"]["oneOf"]
    assert batch["type"] == "array" and record["additionalProperties"] is False
    assert all(p["nullable"] for p in record["properties"].values())
    examples = op["requestBody"]["content"]["application/json"]["examples"]
    # "Try it out" with the example gives a sensible answer: the typical record, nothing flagged
    r = httpx.post(f"{url}/predict", json=examples["record"]["value"], timeout=10)
    assert r.status_code == 200 and r.json()["predictions"][0]["flags"] == {}, r.text
    assert httpx.post(f"{url}/predict", json=examples["batch"]["value"], timeout=10).status_code == 200


def test_schemathesis_all_checks_pass(edge_server, tmp_path):
    """Schemathesis --checks all against the live service: 0 failures (bounded: 200 examples, 240 s)."""
    url, _ = edge_server
    exe = Path(sys.executable).parent / "schemathesis"
    if not exe.exists():
        pytest.skip("schemathesis is not installed in the venv")
    proc = subprocess.run([str(exe), "run", f"{url}/docs.json", "--url", url, "--checks", "all",
                           "--max-examples", "200", "--seed", "1", "--request-timeout", "20",
                           "--generation-deterministic"],
                          capture_output=True, text=True, timeout=240, cwd=tmp_path,
                          env={**os.environ, "SCHEMATHESIS_HOOKS": "", "NO_COLOR": "1"})
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "No issues found" in out and "Tested: 5" in out, out[-3000:]  # /predict and the probes


# --------------------------------------------------------------------------------------------- the log
def _mount_tmpfs(path: Path, size: str) -> bool:
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True)
    return r.returncode == 0


def test_a_full_log_disk_answers_503_and_never_an_unlogged_200(serving_package, tmp_path):
    logdir = tmp_path / "full"
    if not _mount_tmpfs(logdir, "64k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    try:
        with bentoml_serve(serving_package.home, tmp_path / "serve.log", WORKBENCH_LOG_DIR=str(logdir)) as url:
            answered, refused = [], []
            body = json.dumps(serving_package.records[0]).encode()
            for i in range(400):
                r = _post(url, body, **{"X-Request-ID": f"req-{i}"})
                assert r.status_code in (200, 503), r.text
                (answered if r.status_code == 200 else refused).append(f"req-{i}")
                if len(refused) >= 5:
                    break
            assert refused, "the 64 KiB tmpfs never filled"
            r = _post(url, body)
            assert r.status_code == 503 and "prediction log" in r.json()["error"]
            assert str(logdir) not in r.text
            ready = httpx.get(f"{url}/readyz", timeout=5)
            assert ready.status_code == 503 and "prediction log unwritable" in ready.text
            metrics = httpx.get(f"{url}/metrics", timeout=5).text
            assert "workbench_prediction_log_failures_total" in metrics
            # space freed: ready again, and the next answers are logged in a new segment
            for seg in sorted(logdir.rglob("*.jsonl"))[:-1]:
                shutil.move(str(seg), tmp_path / seg.name)
            deadline = time.monotonic() + 20
            while httpx.get(f"{url}/readyz", timeout=5).status_code != 200:
                assert time.monotonic() < deadline, "not ready again after space was freed"
                time.sleep(0.3)
            r = _post(url, body, **{"X-Request-ID": "after"})
            assert r.status_code == 200
            answered.append("after")
        from workbench.monitoring.log import read_log

        keep = tmp_path / "all"
        keep.mkdir()
        model_dir = keep / "m"
        model_dir.mkdir()
        for seg in [*tmp_path.glob("*.jsonl"), *logdir.rglob("*.jsonl")]:
            shutil.copy(seg, model_dir / seg.name)
        stats: dict = {}
        df = read_log(keep, stats=stats)
        assert set(answered) <= set(df["request_id"].to_list())  # every 200 is in the log
        assert not set(refused) & set(df["request_id"].to_list())  # and no refused request is
    finally:
        subprocess.run(["umount", "-l", str(logdir)], capture_output=True)


def test_a_read_only_log_folder_starts_unavailable_with_the_reason(serving_package, tmp_path):
    logdir = tmp_path / "ro"
    logdir.mkdir()
    if os.geteuid() == 0:  # root ignores permissions: a read-only tmpfs instead
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(logdir)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a read-only tmpfs here")
    else:
        logdir.chmod(0o555)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "bentoml", "serve", "--host", "127.0.0.1", "--port",
                                 str(port)], cwd=BENTO_DIR, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True,
                                env=server_env(serving_package.home, WORKBENCH_LOG_DIR=str(logdir)))
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            assert proc.poll() is None, log.read_text()[-3000:]
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/livez", timeout=1).status_code == 200:
                    break
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        time.sleep(2)
        assert httpx.get(f"{url}/livez", timeout=5).status_code == 200
        r = httpx.get(f"{url}/readyz", timeout=5)
        assert r.status_code == 503 and "prediction log unwritable" in r.text and "Errno" in r.text
        r = _post(url, json.dumps(serving_package.records[0]).encode())
        assert r.status_code == 503 and str(logdir) not in r.text
        assert log.read_text().count("Application startup failed") == 0  # no crash loop
    finally:
        stop_server(proc)
        subprocess.run(["umount", "-l", str(logdir)], capture_output=True)
        with contextlib.suppress(OSError):
            logdir.chmod(0o755)


def test_log_on_failure_serve_keeps_answering_loudly(serving_package, tmp_path):
    logdir = tmp_path / "ro"
    logdir.mkdir()
    if os.geteuid() == 0:
        if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(logdir)],
                          capture_output=True).returncode != 0:
            pytest.skip("cannot mount a read-only tmpfs here")
    else:
        logdir.chmod(0o555)
    try:
        with bentoml_serve(serving_package.home, tmp_path / "serve.log", WORKBENCH_LOG_DIR=str(logdir),
                           WORKBENCH_LOG_ON_FAILURE="serve") as url:
            r = _post(url, json.dumps(serving_package.records[0]).encode())
            assert r.status_code == 200
            assert 'workbench_prediction_log_lost_total{model_version="' in httpx.get(f"{url}/metrics").text
        assert "WITHOUT its prediction log line" in (tmp_path / "serve.log").read_text()
    finally:
        subprocess.run(["umount", "-l", str(logdir)], capture_output=True)
        with contextlib.suppress(OSError):
            logdir.chmod(0o755)


# --------------------------------------------------------------------------------------------- one model
def _workers(arbiter: psutil.Process) -> list[psutil.Process]:
    out = []
    for c in arbiter.children(recursive=True):
        with contextlib.suppress(psutil.Error):
            if c.status() != psutil.STATUS_ZOMBIE and "--worker-id" in " ".join(c.cmdline()):
                out.append(c)
    return out


def test_without_hot_swap_one_model_per_server_after_a_pointer_change_and_a_respawn(serving_package,
                                                                                     multiclass_package, tmp_path):
    pointer = serving_package.home / "workbench" / "production.json"
    saved = pointer.read_text()
    body = json.dumps(serving_package.records[0]).encode()
    try:
        with bentoml_serve(serving_package.home, tmp_path / "serve.log", WORKBENCH_WORKERS="2",
                           WORKBENCH_HOT_SWAP="0") as url:
            first = {_post(url, body).json()["model_version"] for _ in range(10)}
            assert first == {serving_package.tag}
            # a promotion (or rollback) moves the pointer while the server runs ...
            pointer.write_text(json.dumps({"tag": multiclass_package.tag,
                                           "sha256": multiclass_package.serving["onnx_sha256"]}))
            # ... and a worker dies and is respawned by the arbiter
            port = int(url.rsplit(":", 1)[1])
            arbiter = next(p for p in psutil.process_iter(["cmdline"])
                           if "bentoml" in " ".join(p.info["cmdline"] or []) and "serve" in (p.info["cmdline"] or [])
                           and str(port) in (p.info["cmdline"] or []))
            workers = _workers(arbiter)
            assert len(workers) == 2
            workers[0].kill()
            deadline = time.monotonic() + START_TIMEOUT
            while True:
                alive = [c for c in _workers(arbiter) if c.pid != workers[0].pid]
                if len(alive) >= 2:
                    break
                assert time.monotonic() < deadline, "the worker was not respawned"
                time.sleep(0.3)
            time.sleep(3)  # the respawned worker loads its model
            replies = [_post(url, body) for _ in range(40)]
            # a worker serving the pointer's new (multiclass) model would refuse this binary record (422)
            assert [r.status_code for r in replies] == [200] * 40, [r.text[:200] for r in replies]
            assert {r.json()["model_version"] for r in replies} == {serving_package.tag}
    finally:
        pointer.write_text(saved)
