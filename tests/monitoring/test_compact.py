"""Log compaction: every task's log shape compacts to Parquet and reads back as the JSON-lines reader reads it;
torn lines are skipped and counted; a crash at any step leaves every row readable; active segments are left."""

from __future__ import annotations

import fcntl
import json
import os
import shutil

import numpy as np
import polars as pl
import pytest

from workbench.errors import DataError
from workbench.monitoring import compact as compact_mod
from workbench.monitoring.compact import compact_log, log_files, read_columns, read_segment
from workbench.monitoring.log import PredictionLog, read_log

CLASSES = ["a", "b", "c"]


def _write(root, task: str, n: int = 250, batch: int = 7, version: str = "m:1", **kw) -> PredictionLog:
    rng = np.random.default_rng(0)
    log = PredictionLog(version, root=root, retention_days=0, **kw)
    for i in range(0, n, batch):
        k = min(batch, n - i)
        x = [None if j % 11 == 0 else float(v) for j, v in enumerate(rng.normal(0, 1, k))]
        g = [None if j % 13 == 5 else str(v) for j, v in enumerate(rng.choice(["u", "v", "w"], k))]
        inputs = {"x": x, "g": g, "n_items": [int(v) for v in rng.integers(0, 5, k)]}
        flags = {j: {"x": "missing"} for j, v in enumerate(x) if v is None}
        if task == "binary_classification":
            p = rng.random(k)
            outputs = {"probability": p.tolist(), "label": ["yes" if v > 0.5 else "no" for v in p]}
        elif task == "multiclass_classification":
            z = rng.random((k, 3))
            z /= z.sum(1, keepdims=True)
            outputs = {"label": [CLASSES[j] for j in z.argmax(1)], "probabilities": z.tolist()}
        else:
            outputs = {"prediction": rng.normal(50, 10, k).tolist()}
        log.append_outputs(f"r{i:05d}", inputs, outputs, flags)
    return log


def _sorted(df: pl.DataFrame) -> pl.DataFrame:
    return df.sort(["request_id", "row"])


@pytest.mark.parametrize("task", ["binary_classification", "multiclass_classification", "regression"])
def test_every_task_compacts_and_reads_back_as_the_jsonl_reader(tmp_path, task):
    _write(tmp_path, task, max_segment_bytes=8_000).close()  # several rolled segments
    before = read_log(tmp_path, model_version="m:1")
    res = compact_log(tmp_path, "m:1", include_active=True)
    assert res.rows == before.height == 250 and res.torn_lines == 0 and not res.failed
    assert len(res.compacted) > 2 and res.bytes_out > 0
    folder = tmp_path / "m_1"
    assert not list(folder.glob("*.jsonl")) and len(list(folder.glob("*.parquet"))) == len(res.compacted)
    assert len(log_files(tmp_path, "m:1")) == len(res.compacted) and log_files(tmp_path, "other") == []
    after = read_columns(tmp_path, "m:1")
    assert after.columns == before.columns
    assert _sorted(after).equals(_sorted(before.with_columns(pl.col("n_items").cast(pl.Float64))))
    want = {"binary_classification": ["probability", "label"], "multiclass_classification": ["label", "probabilities"],
            "regression": ["prediction"]}[task]
    lean = read_columns(tmp_path, "m:1", ["ts", "x", "g", *want, "not_logged"])
    assert lean.columns == ["ts", "x", "g", *want]  # projection, in the order asked; unknown names left out
    assert lean.schema["x"] == pl.Float64 and lean.schema["g"] == pl.String
    if task == "multiclass_classification":
        assert lean.schema["probabilities"] == pl.List(pl.Float64)
    assert json.loads(json.dumps(res.to_dict()))["rows"] == 250 and "compacted" in res.summary()


def test_mixed_compacted_and_active_segments_read_together(tmp_path):
    log = _write(tmp_path, "binary_classification", max_segment_bytes=8_000)  # still open: its newest is active
    res = compact_log(tmp_path)  # every model version, only closed segments
    assert res.active == [str(p.relative_to(tmp_path)) for p in (tmp_path / "m_1").glob("*.jsonl")]
    assert len(res.active) == 1 and res.compacted
    log.append("late", {"x": [1.0], "g": ["u"], "n_items": [1]}, [0.9], ["yes"])  # the writer keeps appending
    log.close()
    df = read_columns(tmp_path, "m:1", ["request_id", "probability"])
    assert df.height == 251 and df["request_id"].n_unique() == len(set(df["request_id"]))
    assert "late" in df["request_id"].to_list()
    first = read_columns(tmp_path, "m:1", ["ts"])["ts"].sort()
    since = first[100]
    assert read_columns(tmp_path, "m:1", ["ts"], since=since).height == (first >= since).sum()


def test_torn_lines_anywhere_are_skipped_and_counted(tmp_path):
    _write(tmp_path, "regression", n=30, batch=1).close()
    seg = next((tmp_path / "m_1").glob("*.jsonl"))
    lines = seg.read_bytes().split(b"\n")[:-1]
    # a torn line in the middle (a full disk cut it; the next line was appended onto it) and a torn tail
    # a torn line in the middle (a full disk cut it; the next line was appended onto it), a whole line whose
    # newline was lost (the next one glued onto it), a blank line and a torn tail
    broken = lines[:10] + [lines[10][:57] + lines[11]] + lines[12:20] + [lines[20] + lines[21], b""] + lines[22:]
    seg.write_bytes(b"\n".join(broken) + b"\n" + lines[0][:40])
    assert read_segment(seg).height == 26
    res = compact_log(tmp_path, include_active=True)
    assert res.rows == 26 and res.torn_lines == 3 and "3 torn line(s) skipped" in res.summary()
    got = set(read_columns(tmp_path, "m:1", ["request_id"])["request_id"])
    assert not got & {"r00010", "r00011", "r00020", "r00021"} and len(got) == 26


def test_a_crash_before_the_rename_leaves_the_jsonl(tmp_path, monkeypatch):
    _write(tmp_path, "binary_classification").close()
    seg = next((tmp_path / "m_1").glob("*.jsonl"))

    def crash(*_a, **_k):
        raise OSError("simulated crash")

    monkeypatch.setattr(compact_mod.os, "replace", crash)
    res = compact_log(tmp_path, include_active=True)
    assert res.failed and "simulated crash" in res.failed[0]["error"] and not res.compacted
    assert seg.exists() and [p.name for p in seg.parent.iterdir()] == [seg.name]  # no Parquet, no temporary file
    assert read_columns(tmp_path, "m:1", ["request_id"]).height == 250


def test_a_parquet_that_does_not_read_back_is_not_trusted(tmp_path, monkeypatch):
    _write(tmp_path, "multiclass_classification").close()
    real = pl.read_parquet
    monkeypatch.setattr(compact_mod.pl, "read_parquet", lambda p, *a, **k: real(p, *a, **k).head(3))
    res = compact_log(tmp_path, include_active=True)
    assert res.failed and "does not read back" in res.failed[0]["error"]
    assert list((tmp_path / "m_1").glob("*.jsonl")) and not list((tmp_path / "m_1").glob("*.parquet"))


def test_a_crash_after_the_rename_reads_each_row_once_and_heals(tmp_path):
    _write(tmp_path, "binary_classification").close()
    seg = next((tmp_path / "m_1").glob("*.jsonl"))
    keep = seg.read_bytes()
    compact_log(tmp_path, include_active=True)
    seg.write_bytes(keep)  # as if the process died between the rename and removing the JSONL
    (tmp_path / "m_1" / f".{seg.stem}.parquet.tmp-1").write_bytes(b"PAR1 half a file")  # and a stray temporary
    assert read_columns(tmp_path, "m:1", ["request_id"]).height == 250
    res = compact_log(tmp_path, include_active=True)
    assert res.rows == 250 and not seg.exists()
    assert read_columns(tmp_path, "m:1", ["request_id"]).height == 250


def _dead_pid() -> int:
    for pid in range(4_000_000, 4_000_100):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return pid
        except PermissionError:
            continue
    pytest.skip("no free pid found")


def test_which_segments_count_as_active(tmp_path):
    log = _write(tmp_path, "regression", n=20, batch=1)
    log.close()
    own = next((tmp_path / "m_1").glob("*.jsonl"))
    dead = own.with_name(f"{own.stem.split('-')[0]}-{_dead_pid()}.jsonl")
    shutil.copy(own, dead)
    older = own.with_name(f"{int(own.stem.split('-')[0][:8]) - 1}T000000000000-{os.getpid()}-1.jsonl")
    shutil.copy(own, older)  # an older segment of ours (a roll-over; "-1": the writer's name on a clash)
    res = compact_log(tmp_path)  # our own newest segment: active; a rolled one and a dead writer's: compacted
    assert res.active == [str(own.relative_to(tmp_path))]
    assert sorted(c["segment"] for c in res.compacted) == sorted(str(p.relative_to(tmp_path)) for p in (dead, older))
    fd = os.open(own, os.O_RDONLY)  # a writer that holds an flock on its segment
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        assert compact_log(tmp_path, include_active=True).active == [str(own.relative_to(tmp_path))]
    finally:
        os.close(fd)
    assert compact_log(tmp_path, include_active=True).rows == 20
    assert read_columns(tmp_path, "m:1", ["request_id"]).height == 60


def test_empty_logs_and_windows(tmp_path):
    with pytest.raises(DataError, match="prediction log is empty"):
        read_columns(tmp_path, "m:1", ["ts"])
    _write(tmp_path, "regression", n=5, batch=1).close()
    compact_log(tmp_path, include_active=True)
    with pytest.raises(DataError, match="no rows since"):
        read_columns(tmp_path, "m:1", ["ts"], since="2999-01-01")
    assert read_columns(tmp_path, "m:1", ["ts"], since="2999-01-01", allow_empty=True).height == 0
    (tmp_path / "m_2").mkdir()
    (tmp_path / "m_2" / "20260101T000000000000-1.jsonl").write_bytes(b'{"request_id": "x", "n"')
    assert compact_log(tmp_path, "m:2", include_active=True).empty == ["m_2/20260101T000000000000-1.jsonl"]
    with pytest.raises(DataError, match="holds no rows"):
        read_columns(tmp_path, "m:2", None)


def test_a_segment_where_a_challenger_arrives_mid_way_reads_every_row(tmp_path):
    """A champion's segment spanning a challenger's arrival: lines without role / answered_by / latency_ms, then
    lines with them (one per row, batches included). Every row reads back, the early ones with nulls there."""
    log = PredictionLog("m:1", root=tmp_path, retention_days=0)
    for i in range(6):
        k = 1 + i % 3
        outputs = {"probability": [0.25] * k, "label": ["no"] * k}
        if i >= 3:
            outputs |= {"role": ["champion"] * k, "answered_by": ["m:1"] * k, "latency_ms": [0.1] * k}
        log.append_outputs(f"r{i}", {"x": [1.0] * k, "g": ["u"] * k}, outputs, validated=True)  # as the service
    log.close()
    for reader in (read_columns(tmp_path, "m:1"), read_log(tmp_path, model_version="m:1")):
        df = reader.sort(["request_id", "row"])
        assert df.height == 12 and df.get_column("request_id").n_unique() == 6
        assert df.filter(pl.col("request_id").is_in(["r0", "r1", "r2"])).get_column("role").null_count() == 6
        assert df.filter(pl.col("request_id").is_in(["r3", "r4", "r5"])).get_column("answered_by").to_list() == ["m:1"] * 6
    res = compact_log(tmp_path, "m:1", include_active=True)
    assert res.rows == 12 and not res.failed and read_columns(tmp_path, "m:1").height == 12
