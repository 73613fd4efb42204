"""Runs executed for real through papermill: the discovery notebook, failures, timeouts, another dataset."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from notebooks.make_fixtures import write as write_fixture
from testkit import ADULT_BRIEF, ROOT
from workbench.config import Settings
from workbench.errors import DataError, ParameterError
from workbench.runs import execute_run, list_runs, read_manifest, resolve_run

pytestmark = [pytest.mark.notebook, pytest.mark.timeout(300)]

MANIFEST_KEYS = {
    "run_id", "status", "created_at", "started_at", "finished_at", "duration_s", "phases", "notebooks",
    "parameters", "seed", "brief", "data", "git", "lock", "python", "packages", "results", "gates", "error",
}


@pytest.fixture(scope="module")
def adult_runs(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    os.environ["WORKBENCH_RUNS_DIR"] = str(runs)
    try:
        cfg = Settings(root=ROOT)
        r1 = execute_run(brief_path=ADULT_BRIEF, phases=["discovery"], params={"sample_rows": "3000"}, cfg=cfg)
        r2 = execute_run(brief_path=ADULT_BRIEF, phases=["discovery"], params={"sample_rows": "3000"}, cfg=cfg)
    finally:
        del os.environ["WORKBENCH_RUNS_DIR"]
    return r1, r2


def test_discovery_run_writes_a_complete_run_folder(adult_runs):
    r, _ = adult_runs
    assert r.status == "succeeded" and r.exit_code == 0
    m = json.loads((r.run_dir / "manifest.json").read_text())
    assert set(m) >= MANIFEST_KEYS
    assert m["status"] == "succeeded" and "pid" not in m
    assert m["parameters"]["discovery"]["sample_rows"] == 3000 and m["seed"] == 42
    assert m["data"]["train"]["sha256"] == "691304af6845965dcab5d442c1979260f58d991274cc22e5365b3d275bf3c348"
    assert m["brief"]["name"] == "adult-income" and len(m["brief"]["sha256"]) == 64
    assert len(m["lock"]["sha256"]) == 64 and m["git"]["commit"]
    assert m["packages"]["papermill"] and m["python"]["version"].startswith("3.11")
    nb = m["notebooks"][0]
    assert nb["status"] == "succeeded" and nb["duration_s"] > 0 and nb["kernel_start_s"] > 0
    assert m["results"]["audit"]["quality_verdict"] == "proceed"
    assert m["gates"]["data_quality"]["passed"] is True
    for rel in ["01_discovery.ipynb", "params.yaml", "reports/audit.json", "reports/audit.html",
                "reports/contract.json", "figures/missingness.png", "figures/target_by_group.png",
                "figures/distributions.png"]:
        assert (r.run_dir / rel).is_file(), rel
    executed = json.loads((r.run_dir / "01_discovery.ipynb").read_text())
    assert any("injected-parameters" in c["metadata"].get("tags", []) for c in executed["cells"])


def test_same_parameters_give_identical_audit(adult_runs):
    r1, r2 = adult_runs
    assert r1.run_id != r2.run_id
    for rel in ["reports/audit.json", "reports/contract.json"]:
        assert (r1.run_dir / rel).read_bytes() == (r2.run_dir / rel).read_bytes(), rel


def test_runs_listing_and_latest(adult_runs):
    r1, r2 = adult_runs
    runs = list_runs(r1.run_dir.parent)
    assert [m["run_id"] for m in runs][:2] == sorted([r1.run_id, r2.run_id], reverse=True)
    assert resolve_run("latest", r1.run_dir.parent) == r1.run_dir.parent / max(r1.run_id, r2.run_id)


def _fixture_project(tmp_path: Path, kind: str) -> Settings:
    write_fixture(kind, tmp_path / "proj" / "notebooks" / "01_discovery.ipynb")
    return Settings(root=tmp_path / "proj")


def test_failing_cell_marks_run_failed_and_keeps_notebook(tmp_path, runs_dir):
    r = execute_run(brief_path=ADULT_BRIEF, phases=["discovery"], cfg=_fixture_project(tmp_path, "failing"))
    assert r.status == "failed" and r.exit_code == 1
    m = read_manifest(r.run_dir)
    assert m["status"] == "failed"
    assert m["error"]["ename"] == "ZeroDivisionError" and m["error"]["cell"] is not None
    assert "cell" in r.error.message and "ZeroDivisionError" in r.error.message
    assert (r.run_dir / "01_discovery.ipynb").is_file()
    assert m["notebooks"][0]["status"] == "failed"


def test_dead_kernel_fails_instead_of_hanging(tmp_path, runs_dir):
    r = execute_run(brief_path=ADULT_BRIEF, phases=["discovery"], cfg=_fixture_project(tmp_path, "dead_kernel"),
                    cell_timeout=60)
    assert r.status == "failed"
    assert "kernel died" in r.error.message
    assert read_manifest(r.run_dir)["status"] == "failed"


def test_hung_cell_hits_the_time_limit(tmp_path, runs_dir):
    r = execute_run(brief_path=ADULT_BRIEF, phases=["discovery"], cfg=_fixture_project(tmp_path, "hang"),
                    cell_timeout=3)
    assert r.status == "failed"
    assert "time limit" in r.error.message and "--cell-timeout" in r.error.hint


def test_crashed_run_never_looks_finished(runs_dir):
    d = runs_dir / "20260101-000000-x"
    d.mkdir(parents=True)
    proc = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(proc.stdout)
    import platform

    (d / "manifest.json").write_text(json.dumps({"run_id": d.name, "status": "running", "pid": dead_pid,
                                                 "host": platform.node()}))
    assert list_runs(runs_dir)[0]["status"] == "crashed"
    with pytest.raises(Exception, match="no succeeded run"):
        resolve_run("latest", runs_dir)


def test_bad_data_fails_before_any_run_folder(tmp_path, runs_dir):
    from testkit import make_churn, write_brief

    make_churn(100).drop("Churned").write_csv(tmp_path / "c.csv")
    brief = write_brief(tmp_path / "b.yaml", "c.csv")
    with pytest.raises(DataError, match="target column 'churned'"):
        execute_run(brief_path=brief, phases=["discovery"], cfg=Settings(root=ROOT))
    assert not runs_dir.exists() or not any(runs_dir.iterdir())


def test_unknown_and_invalid_parameters_are_refused(runs_dir):
    cfg = Settings(root=ROOT)
    with pytest.raises(ParameterError, match="(?s)'sample_size'.*known parameters"):
        execute_run(brief_path=ADULT_BRIEF, phases=["discovery"], params={"sample_size": "10"}, cfg=cfg)
    with pytest.raises(ParameterError, match="'sample_rows'"):
        execute_run(brief_path=ADULT_BRIEF, phases=["discovery"], params={"sample_rows": "-5"}, cfg=cfg)
    with pytest.raises(ParameterError, match="set by the runner"):
        execute_run(brief_path=ADULT_BRIEF, phases=["discovery"], params={"run_dir": "/tmp/x"}, cfg=cfg)


def test_another_dataset_runs_unchanged_through_the_cli(churn_project, runs_dir):
    env = {**os.environ, "WORKBENCH_RUNS_DIR": str(runs_dir)}
    cmd = [sys.executable, "-m", "workbench", "run", "--brief", str(churn_project), "--phase", "discovery",
           "-p", "seed=7"]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env, timeout=240)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "run succeeded" in out.stdout and "data quality" in out.stdout
    run_dir = next(runs_dir.iterdir())
    m = read_manifest(run_dir)
    assert m["brief"]["name"] == "churn-demo" and m["seed"] == 7
    contract = json.loads((run_dir / "reports" / "contract.json").read_text())
    assert contract["target"] == "churned"
    roles = {c["name"]: c["role"] for c in contract["columns"]}
    assert roles["customer_id"] == "excluded" and roles["region"] == "feature"
    # a wide terminal: this test is about the run, not the 80-column layout (tests/test_cli.py checks that)
    listing = subprocess.run([sys.executable, "-m", "workbench", "runs"], capture_output=True, text=True, cwd=ROOT,
                             env={**env, "COLUMNS": "200"}, timeout=120)
    assert m["run_id"] in listing.stdout and "succeeded" in listing.stdout, listing.stdout


def test_cli_bad_param_exit_code(churn_project, runs_dir):
    env = {**os.environ, "WORKBENCH_RUNS_DIR": str(runs_dir)}
    out = subprocess.run([sys.executable, "-m", "workbench", "run", "--brief", str(churn_project), "-p", "bogus=1"],
                         capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)
    assert out.returncode == 2
    assert "bogus" in out.stderr and "known parameters" in out.stderr


# ----------------------------------------------------------------------------------------------- runs of briefs
def _fake_run(runs_dir: Path, run_id: str, brief: str, status: str = "succeeded", selected: str | None = "logreg",
              phases=("discovery", "prototype"), started_at: str | None = None) -> None:
    d = runs_dir / run_id
    d.mkdir(parents=True)
    results = {"prototype": {"selected": selected}} if selected else {}
    error = {"message": "gate 'kill_criteria' failed after the prototype phase"} if status == "stopped" else None
    (d / "manifest.json").write_text(json.dumps({"run_id": run_id, "status": status, "brief": {"name": brief},
                                                 "results": results, "phases": list(phases), "error": error,
                                                 **({"started_at": started_at} if started_at else {})}))


def test_latest_resolves_within_the_brief_skipping_unpromotable_runs(runs_dir):
    from workbench.errors import RunError
    from workbench.runs import choose_run

    _fake_run(runs_dir, "20260101-000001-a", "a")
    _fake_run(runs_dir, "20260101-000002-b", "b")
    _fake_run(runs_dir, "20260101-000003-a", "a", status="stopped")
    _fake_run(runs_dir, "20260101-000004-a", "a", selected=None, phases=("discovery",))
    with pytest.raises(RunError, match=r"runs of 2 briefs \(a, b\)") as e:
        choose_run("latest", runs_dir)
    assert e.value.exit_code == 2
    c = choose_run("latest", runs_dir, brief="a")
    assert c.run_id == "20260101-000001-a"
    assert [rid for rid, _ in c.skipped] == ["20260101-000004-a", "20260101-000003-a"]
    assert "discovery only" in c.note() and "stopped" in c.note()
    assert resolve_run("latest", runs_dir, brief="a", promotable=True) == runs_dir / "20260101-000001-a"
    assert choose_run("latest", runs_dir, brief="b").run_id == "20260101-000002-b"
    with pytest.raises(RunError, match="no run of brief 'c'") as e:
        choose_run("latest", runs_dir, brief="c")
    assert e.value.exit_code == 2


def test_named_runs_that_do_not_exist_or_cannot_be_promoted(runs_dir):
    from workbench.errors import RunError
    from workbench.runs import choose_run

    _fake_run(runs_dir, "20260101-000003-a", "a", status="stopped")
    _fake_run(runs_dir, "20260101-000004-a", "a", status="failed")
    _fake_run(runs_dir, "20260101-000005-a", "a", selected=None, phases=("discovery",))
    with pytest.raises(RunError, match="not found") as e:
        resolve_run("20990101-nope", runs_dir)
    assert e.value.exit_code == 2
    with pytest.raises(RunError, match="cannot be promoted: stopped") as e:
        choose_run("20260101-000003-a", runs_dir)
    assert e.value.exit_code == 3
    for rid in ("20260101-000004-a", "20260101-000005-a"):
        with pytest.raises(RunError, match="cannot be promoted") as e:
            choose_run(rid, runs_dir)
        assert e.value.exit_code == 2
    with pytest.raises(RunError, match="belongs to brief 'a', not 'b'"):
        choose_run("20260101-000003-a", runs_dir, brief="b")
    with pytest.raises(RunError, match="none promotable; the newest, 20260101-000005-a, is discovery only") as e:
        choose_run("latest", runs_dir)
    assert e.value.exit_code == 2
    assert resolve_run("20260101-000004-a", runs_dir) == runs_dir / "20260101-000004-a"  # not promotable: still shown


def test_each_kernel_gets_its_own_ipc_socket_folder():
    # jupyter_client's default IPC socket prefix is "kernel-ipc" in the working folder: two runs started at once in
    # one checkout could bind the same sockets and read each other's messages. Each kernel gets a private folder.
    from workbench import runs

    cls = runs._kernel_manager_class()
    a, b = cls(), cls()
    assert a.transport == b.transport == "ipc"
    assert a.ip != b.ip and Path(a.ip).parent.is_dir() and Path(b.ip).parent.is_dir()
    runs._remove_kernel_dirs()
    assert not Path(a.ip).parent.exists() and not Path(b.ip).parent.exists()


def test_latest_is_the_newest_by_start_time_not_by_folder_name(runs_dir):
    """A run named with --run-id ("zz-try") that started before a timestamped run is not the latest."""
    from workbench.runs import choose_run

    _fake_run(runs_dir, "zz-try", "a", started_at="2026-12-01T20:29:00.699+00:00")
    _fake_run(runs_dir, "20261201-225936-a", "a", started_at="2026-12-01T22:59:36.777+00:00")
    assert [m["run_id"] for m in list_runs(runs_dir)] == ["20261201-225936-a", "zz-try"]
    assert choose_run("latest", runs_dir, brief="a").run_id == "20261201-225936-a"
    assert resolve_run("latest", runs_dir) == runs_dir / "20261201-225936-a"
