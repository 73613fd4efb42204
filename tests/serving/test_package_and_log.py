"""The model package verified whole (package.json), the pin of one model per server, derived date features,
and the predictor's answer when the prediction log cannot record it (in-process)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from workbench.monitoring.log import LogWriteError, PredictionLog, read_log
from workbench.serving import ModelVerificationError, Predictor, Unavailable, load_predictor
from workbench.serving.predictor import PIN_ENV, ModelRef, resolve_model


def _sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def _write_manifest(d) -> str:
    files = {p.relative_to(d).as_posix(): _sha(p.read_bytes()) for p in sorted(d.rglob("*"))
             if p.is_file() and p.name not in ("package.json", "model.yaml")}
    raw = json.dumps({"format": 1, "files": files}, indent=2).encode()
    (d / "package.json").write_bytes(raw)
    return _sha(raw)


@pytest.fixture
def pkg(serving_package, tmp_path):
    """A copy of the package with a package.json written here (the registration side is another module's)."""
    d = tmp_path / "pkg"
    shutil.copytree(serving_package.path, d)
    return d, _write_manifest(d)


def test_a_whole_package_loads_and_its_certificate_is_checked(pkg):
    d, sha = pkg
    p = Predictor.load(d, package_certified={"the model store metadata": sha})
    assert p.ready and p.package_verified
    with pytest.raises(ModelVerificationError, match="package.json has sha256 .* model store metadata certifies"):
        Predictor.load(d, package_certified={"the model store metadata": "0" * 64})


def test_an_edited_serving_json_is_refused(pkg):
    """Issue 11 #4: threshold 0.5 -> 0.01 used to give /readyz 200 and changed answers."""
    d, sha = pkg
    cfg = json.loads((d / "serving.json").read_text())
    cfg["threshold"] = 0.01
    (d / "serving.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelVerificationError, match="serving.json has sha256 .* package.json certifies"):
        Predictor.load(d)
    # and re-signing package.json does not help while the store's certificate names the original
    _write_manifest(d)
    with pytest.raises(ModelVerificationError, match="package.json has sha256"):
        Predictor.load(d, package_certified={"the model store metadata": sha})


@pytest.mark.parametrize("name", ["reference_profile.json", "monitoring.json", "contract.json"])
def test_every_listed_file_is_covered(pkg, name):
    d, _ = pkg
    (d / name).write_bytes((d / name).read_bytes() + b" ")
    with pytest.raises(ModelVerificationError, match=f"{name} has sha256"):
        Predictor.load(d)


def test_an_unlisted_file_is_refused_and_model_yaml_is_not(pkg):
    d, _ = pkg
    (d / "model.yaml").write_text("bentoml: own\n")
    assert Predictor.load(d).ready
    (d / "extra.py").write_text("print('hi')\n")
    with pytest.raises(ModelVerificationError, match=r"does not list: \['extra.py'\]"):
        Predictor.load(d)


def test_a_removed_package_json_is_refused_when_certified_and_old_packages_still_load(pkg):
    d, sha = pkg
    (d / "package.json").unlink()
    with pytest.raises(ModelVerificationError, match="package.json is missing"):
        Predictor.load(d, package_certified={"the production pointer": sha})
    assert Predictor.load(d).ready and not Predictor.load(d).package_verified  # an old package: ONNX sha256


def test_manifest_paths_outside_the_package_are_refused(pkg):
    d, _ = pkg
    doc = json.loads((d / "package.json").read_text())
    doc["files"]["../../etc/passwd"] = "0" * 64
    (d / "package.json").write_text(json.dumps(doc))
    with pytest.raises(ModelVerificationError, match="outside the package"):
        Predictor.load(d)


def test_unavailable_reasons_show_no_internal_paths(pkg):
    d, _ = pkg
    (d / "model.onnx").write_bytes(b"\0")
    ref = ModelRef(tag="m:1", path=d, source="test")
    served = load_predictor(ref)
    assert isinstance(served, Unavailable)
    reply = served.handle(b"{}")
    assert reply.status == 503 and str(d).encode() not in reply.body and b"model.onnx" in reply.body
    ready, why = served.readiness()
    assert not ready and "model.onnx" in why


# --------------------------------------------------------------------------------------------- the pin
PIN_CHILD = """
import json, os, sys
sys.argv += ["--worker-id", "1"]  # what a bentoml serve worker's command line holds
from workbench.serving.predictor import resolve_model
ref = resolve_model(pin=True)
print(json.dumps({"tag": ref.tag, "source": ref.source}))
"""


def test_the_pin_survives_a_pointer_change_in_children_only(serving_package, multiclass_package, monkeypatch):
    monkeypatch.delenv("WORKBENCH_MODEL_TAG", raising=False)
    monkeypatch.delenv(PIN_ENV, raising=False)
    ref = resolve_model(pin=True)
    assert ref.tag == serving_package.tag and json.loads(os.environ[PIN_ENV])["pid"] == os.getpid()
    pointer = serving_package.home / "workbench" / "production.json"
    saved = pointer.read_text()
    try:
        pointer.write_text(json.dumps({"tag": multiclass_package.tag}))
        # a child (a worker, respawned after the pointer moved) serves what its ancestor pinned
        out = subprocess.run([sys.executable, "-c", PIN_CHILD], capture_output=True, text=True, timeout=120,
                             env=os.environ.copy())
        assert out.returncode == 0, out.stderr[-2000:]
        assert json.loads(out.stdout.strip().splitlines()[-1])["tag"] == serving_package.tag
        # this process re-resolving (a re-import, a test) follows the pointer: the pin binds descendants only
        assert resolve_model(pin=True).tag == multiclass_package.tag
        # a pin that is not an ancestor's (a stale variable from another process) is ignored
        gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True,
                              text=True, timeout=60)
        env = dict(os.environ, **{PIN_ENV: json.dumps({"tag": serving_package.tag, "pid": int(gone.stdout)})})
        out = subprocess.run([sys.executable, "-c", PIN_CHILD], capture_output=True, text=True, timeout=120, env=env)
        assert out.returncode == 0, out.stderr[-2000:]
        assert json.loads(out.stdout.strip().splitlines()[-1])["tag"] == multiclass_package.tag
    finally:
        pointer.write_text(saved)
        os.environ.pop(PIN_ENV, None)


# --------------------------------------------------------------------------------------------- the log
class _FailingLog:
    healthy = True
    last_error = ""

    def __init__(self):
        self.fail = True
        self.lines = 0

    def append_outputs(self, *a, **k):
        if self.fail:
            self.healthy, self.last_error = False, "[Errno 28] No space left on device"
            raise LogWriteError(28, "the prediction log is unwritable: [Errno 28] No space left on device")
        self.healthy = True
        self.lines += 1

    def check(self):
        return not self.fail


def test_an_unlogged_answer_is_a_503_and_readiness_says_why(serving_package):
    p = Predictor.load(serving_package.path, tag=serving_package.tag)
    p.log = _FailingLog()
    seen = []
    p.on_log_failure = lambda exc, policy: seen.append(policy)
    body = json.dumps(serving_package.records[0]).encode()
    r = p.handle(body)
    out = json.loads(r.body)
    assert r.status == 503 and out["errors"][0]["type"] == "prediction_log_unwritable"
    assert "No space left" in out["error"] and seen == ["refuse"]
    assert p.readiness() == (False, "prediction log unwritable: [Errno 28] No space left on device")
    p.log.fail = False  # space freed: the probe succeeds, ready again, answers logged
    assert p.readiness() == (True, "")
    assert p.handle(body).status == 200 and p.log.lines == 1
    p.log.fail, p.log_policy = True, "serve"  # the opt-in: answered, counted, loud
    assert p.handle(body).status == 200 and seen[-1] == "serve"
    assert p.readiness()[0]


def test_the_one_record_path_refuses_what_a_real_log_cannot_record(serving_package, tmp_path, monkeypatch):
    """The format path (one clean record) writes its line with the log's own write: a failed write answers 503
    (or, opted in, 200 counted as unlogged), and only the answers given under "refuse" are in the log."""
    import workbench.monitoring.log as logmod

    p = Predictor.load(serving_package.path, tag=serving_package.tag)
    p.log = PredictionLog(p.tag, root=tmp_path)
    seen = []
    p.on_log_failure = lambda exc, policy: seen.append(policy)
    rec = next(r for r in serving_package.records if not p.guard.check_one(p._get_numeric(r), p._get_categorical(r)))
    body = json.dumps(rec).encode()
    assert p.handle(body, request_id="ok-1").status == 200
    real = os.write

    def enospc(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(logmod.os, "write", enospc)
    r = p.handle(body, request_id="refused")
    out = json.loads(r.body)
    assert r.status == 503 and out["errors"][0]["type"] == "prediction_log_unwritable" and seen == ["refuse"]
    assert "No space left" in out["error"] and not p.log.healthy
    p.log_policy = "serve"
    assert p.handle(body, request_id="unlogged").status == 200 and seen == ["refuse", "serve"]
    monkeypatch.setattr(logmod.os, "write", real)
    p.log_policy = "refuse"
    assert p.handle(body, request_id="ok-2").status == 200 and p.log.healthy
    p.log.close()
    assert read_log(tmp_path)["request_id"].to_list() == ["ok-1", "ok-2"]


def test_json_template_writes_what_to_json_writes():
    from pydantic_core import to_json

    from workbench.monitoring.log import hole, json_template

    obj = {"a%b": [hole("x"), {'k"%s': hole("y")}], "z": hole("w"), "t": "100% \u20ac"}
    values = {"w": 1e-7, "x": 'q"%s\\ \u20ac,', "y": [1, None, 2.5]}
    filled = {"a%b": [values["x"], {'k"%s': values["y"]}], "z": values["w"], "t": "100% \u20ac"}
    for names in (["w", "x", "y"], ["x", "y", "w"]):
        fmt, order = json_template(obj, names)
        args = tuple(to_json(values[n]) for n in names)
        assert fmt % (args if order is None else order(args)) == to_json(filled)
    assert json_template(obj, ["x", "y", "w"])[1] is None  # the holes' own order: nothing to reorder
    with pytest.raises(ValueError, match="not named"):
        json_template(obj, ["x", "y"])
    with pytest.raises(ValueError, match="2 times"):
        json_template([hole("x"), hole("x")], ["x"])


def test_log_timestamps_and_whole_lines(tmp_path):
    from datetime import datetime

    log = PredictionLog("m:1", root=tmp_path)
    for ts in (log._now(), json.loads(log.ts_json())):
        parsed = datetime.fromisoformat(ts)
        assert parsed.utcoffset().total_seconds() == 0 and parsed.isoformat(timespec="microseconds") == ts
        assert abs(parsed.timestamp() - __import__("time").time()) < 60
    with pytest.raises(ValueError, match="newline"):
        log.write_line(b'{"request_id":"r"}', 1)
    assert log.write_line(b'{"request_id":"r","n":1}\n', 1) == 1 and log.rows_written == 1
    log.close()


def test_short_writes_are_completed(tmp_path, monkeypatch):
    import workbench.monitoring.log as logmod

    real = os.write
    calls = []

    def short(fd, data):
        calls.append(len(data))
        return real(fd, bytes(data[: max(1, len(data) // 3)]))  # writes a third each time

    log = PredictionLog("m:1", root=tmp_path)
    monkeypatch.setattr(logmod.os, "write", short)
    log.append("r1", {"x": [1.5]}, [0.5], ["a"])
    monkeypatch.setattr(logmod.os, "write", real)
    log.close()
    assert len(calls) > 1
    df = read_log(tmp_path)
    assert df["request_id"].to_list() == ["r1"]


def test_a_failed_write_never_leaves_a_torn_tail_to_append_to(tmp_path, monkeypatch):
    import workbench.monitoring.log as logmod

    real = os.write
    log = PredictionLog("m:1", root=tmp_path)
    log.append("ok1", {"x": [1.0]}, [0.5], ["a"])
    state = {"n": 0}

    def half_then_enospc(fd, data):
        state["n"] += 1
        if state["n"] == 1:
            return real(fd, bytes(data[:10]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(logmod.os, "write", half_then_enospc)
    with pytest.raises(LogWriteError, match="No space left"):
        log.append("lost", {"x": [2.0]}, [0.5], ["a"])
    assert not log.healthy and "Errno 28" in log.last_error
    monkeypatch.setattr(logmod.os, "ftruncate", lambda fd, n: (_ for _ in ()).throw(OSError(1, "EPERM")))
    monkeypatch.setattr(logmod.os, "write", real)
    log.append("ok2", {"x": [3.0]}, [0.5], ["a"])
    log.close()
    assert log.healthy
    segs = sorted((tmp_path / "m_1").glob("*.jsonl"))
    assert len(segs) == 2  # a new segment after the failure
    stats: dict = {}
    df = read_log(tmp_path, stats=stats)
    assert df["request_id"].to_list() == ["ok1", "ok2"]


def test_readers_skip_and_count_a_torn_line_anywhere(tmp_path):
    log = PredictionLog("m:1", root=tmp_path)
    for i in range(3):
        log.append(f"r{i}", {"x": [float(i)]}, [0.5], ["a"])
    log.close()
    seg = next((tmp_path / "m_1").glob("*.jsonl"))
    lines = seg.read_bytes().splitlines(keepends=True)
    # a torn line glued to the next one (what an append after a torn tail did), in the middle of the segment
    seg.write_bytes(lines[0] + lines[1][:25] + lines[2] + b'{"request_id":"cut')
    stats: dict = {}
    df = read_log(tmp_path, stats=stats)
    assert df["request_id"].to_list() == ["r0"] and stats["torn_lines"] == 2
    df = read_log(tmp_path, input_kinds={"x": "numeric"}, stats=stats)
    assert df.height == 1 and stats["torn_lines"] == 2


def test_an_unwritable_folder_is_reported_not_raised(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    log = PredictionLog("m:1", root=blocker)  # creating it touches nothing
    assert log.check() is False and "Errno" in log.last_error and str(tmp_path) not in log.last_error
    with pytest.raises(LogWriteError):
        log.append("r", {"x": [1.0]}, [0.5], ["a"])


# --------------------------------------------------------------------------------------------- derive
def test_derived_date_features_are_computed_in_serving(multiclass_package, tmp_path):
    """serving.json derive/date_inputs: the request carries the date, the predictor derives the model input."""
    d = tmp_path / "pkg"
    shutil.copytree(multiclass_package.path, d)
    (d / "package.json").unlink(missing_ok=True)
    cfg = json.loads((d / "serving.json").read_text())
    # the graph's "size" input becomes a derived feature: the month of "signed_on"
    cfg["derive"] = [{"name": "size", "part": "month", "column": "signed_on"}]
    cfg["date_inputs"] = ["signed_on"]
    (d / "serving.json").write_text(json.dumps(cfg))
    p = Predictor.load(d)
    rec = {k: v for k, v in multiclass_package.records[0].items() if k != "size"}
    out = p.predict(dict(rec, signed_on="2024-11-03"))
    direct = p.predict(dict(rec, signed_on=None))
    assert out["predictions"][0]["probabilities"] != direct["predictions"][0]["probabilities"]
    assert direct["predictions"][0]["flags"]["size"] == "missing"
    ref = Predictor.load(multiclass_package.path).predict(dict(rec, size=11.0))
    np.testing.assert_allclose(list(out["predictions"][0]["probabilities"].values()),
                               list(ref["predictions"][0]["probabilities"].values()), atol=1e-7)
    body = json.dumps([dict(rec, signed_on="2024-11-03"), dict(rec, signed_on="not a date")]).encode()
    r = p.handle(body)
    assert r.status == 200, r.body
    r = p.handle(json.dumps(dict(rec, size=3.0, signed_on=None)).encode())  # the derived input is not a field
    assert r.status == 422 and b"'size'" in r.body
