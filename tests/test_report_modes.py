"""Files written atomically get the mode the umask gives (0644 under 0022), not the temporary file's 0600: a
teammate can read a run, a service running as another user can read the production pointer."""

from __future__ import annotations

import json
import os
import stat
import threading

import pytest

from workbench._report import _umask, atomic_write_bytes, atomic_write_text


@pytest.fixture
def umask():
    """Set the process umask for one test and restore it afterwards."""
    saved = os.umask(0o022)
    os.umask(saved)

    def set_(mask: int) -> None:
        os.umask(mask)

    yield set_
    os.umask(saved)


def _mode(p) -> int:
    return stat.S_IMODE(os.stat(p).st_mode)


@pytest.mark.parametrize(("mask", "expected"), [(0o022, 0o644), (0o027, 0o640), (0o077, 0o600), (0o002, 0o664)])
def test_atomic_write_gives_the_umask_mode(tmp_path, umask, mask, expected):
    umask(mask)
    p = atomic_write_text(tmp_path / "manifest.json", "{}\n")
    assert _mode(p) == expected
    assert p.read_text() == "{}\n"
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"


def test_replacing_a_file_keeps_the_umask_mode_and_never_leaves_a_temporary(tmp_path, umask):
    umask(0o022)
    p = tmp_path / "production.json"
    p.write_text("old")
    os.chmod(p, 0o600)  # written by an older workbench
    atomic_write_bytes(p, b"new")
    assert p.read_bytes() == b"new" and _mode(p) == 0o644
    assert sorted(x.name for x in tmp_path.iterdir()) == ["production.json"]


def test_reading_the_umask_does_not_change_it(umask):
    umask(0o027)
    assert _umask() == 0o027
    assert _umask() == 0o027
    cur = os.umask(0o027)
    assert cur == 0o027


def test_concurrent_writers_all_get_the_mode(tmp_path, umask):
    umask(0o022)
    errors = []

    def write(i: int) -> None:
        try:
            atomic_write_text(tmp_path / f"f{i}.json", json.dumps({"i": i}))
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert {_mode(p) for p in tmp_path.glob("f*.json")} == {0o644}


def test_run_files_and_production_pointer_are_readable_by_others(tmp_path, umask, monkeypatch):
    """The writers the issue names: the run manifest, a report's HTML and the production pointer."""
    umask(0o022)
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    from workbench.registry.ledger import set_production
    from workbench.runs import _write_manifest
    from workbench.serving.pointer import pointer_path

    set_production("m:v1", sha256="0" * 64, run_id="r", brief="b")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    _write_manifest(run_dir, {"run_id": "r", "status": "succeeded"})

    class R:
        title = "t"

        def _repr_html_(self):
            return "<p>x</p>"

    from workbench._report import Report

    Report.save_html(R(), run_dir / "report.html")
    for p in (pointer_path(), run_dir / "manifest.json", run_dir / "report.html"):
        assert _mode(p) == 0o644, p
