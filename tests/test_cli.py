"""The `workbench` command as a user and a script see it: at 80 and 120 columns ids are whole, bracketed text from
data or help is shown as written, `show` gives the headline for every task, exit codes follow the README."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from workbench import cli
from workbench.config import resolve_brief_path
from workbench.errors import BriefError

ROOT = Path(__file__).resolve().parents[1]
RUN_IDS = {"regression": "20261201-201544-wage-mid-atlantic-with-a-long-name",
           "multiclass_classification": "20261201-201603-penguins-species",
           "binary_classification": "20261201-194545-adult-income"}
BOARDS = {"regression": ("ridge", "mae", 23.61, "rule", 25.94, 25.0),
          "multiclass_classification": ("logreg", "macro_f1", 0.98, "rule", 0.72, 0.95),
          "binary_classification": ("hgb", "pr_auc", 0.825, "rule", 0.425, 0.7)}


def _manifest(task: str, *, brief_name: str = "b") -> dict:
    sel, metric, value, base, base_value, threshold = BOARDS[task]
    return {"run_id": RUN_IDS[task], "status": "succeeded", "started_at": "2026-12-01T20:15:44.000+00:00",
            "duration_s": 14.2, "phases": ["discovery", "prototype"], "seed": 42,
            "brief": {"name": brief_name, "sha256": "ab" * 32,
                      "content": {"task": task, "success": {"metric": metric, "threshold": threshold}}},
            "git": {"commit": "a5f5cd879e00", "dirty": False},
            "notebooks": [{"phase": "discovery", "status": "succeeded", "duration_s": 4.4, "kernel_start_s": 0.7,
                           "output": "01_discovery.ipynb"}],
            "results": {"audit": {"quality_score": 24, "quality_verdict": "proceed", "quality_dimensions": {}},
                        "leaderboard": {"primary_metric": metric, "best_baseline": base, "baseline_value": base_value,
                                        "selected": sel, "primary_value": value},
                        "fairness": {"fairness_verdict": "within threshold"}},
            "gates": {"data_quality": {"passed": True, "value": 24, "threshold": 18},
                      "kill_criteria": {"passed": True, "value": [], "threshold": "none triggered"}},
            "report": {"path": "report.html", "error": None}, "error": None}


@pytest.fixture
def env(tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    for task in RUN_IDS:
        d = runs / RUN_IDS[task]
        d.mkdir(parents=True)
        name = "[succeeded] brief" if task == "binary_classification" else f"{task}-brief"
        (d / "manifest.json").write_text(json.dumps(_manifest(task, brief_name=name)))
        (d / "report.html").write_text("<p>report</p>")
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(runs))
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    monkeypatch.setenv("WORKBENCH_HOME", str(ROOT))
    return tmp_path


def invoke(args: list[str], columns: int = 80):
    return CliRunner().invoke(cli.app, args, env={"COLUMNS": str(columns)})


@pytest.mark.parametrize("columns", [80, 120])
def test_runs_shows_every_id_whole_on_one_line(env, columns):
    r = invoke(["runs"], columns)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert max(len(line) for line in lines) <= columns
    for run_id in RUN_IDS.values():
        assert any(run_id in line for line in lines), (run_id, r.output)
    assert "…" not in r.output


def test_runs_for_scripts(env):
    r = invoke(["runs", "--plain"])
    rows = [line.split("\t") for line in r.output.splitlines()]
    assert {row[0] for row in rows} == set(RUN_IDS.values()) and all(row[1] == "succeeded" for row in rows)
    data = json.loads(invoke(["runs", "--json"]).output)
    assert {m["run_id"] for m in data} == set(RUN_IDS.values())


@pytest.mark.parametrize("task", list(RUN_IDS))
def test_show_gives_the_headline_for_every_task(env, task):
    sel, metric, value, base, base_value, threshold = BOARDS[task]
    r = invoke(["show", RUN_IDS[task]])
    assert r.exit_code == 0, r.output
    out = r.output
    assert f"selected model: {sel}" in out
    lower = "lower" if task == "regression" else "higher"
    assert f"held-out {metric}: {value:g} vs best baseline {base} {base_value:g} ({lower} is better)" in out
    assert "gate data_quality: pass" in out and "gate kill_criteria: pass" in out
    assert f"not promoted yet (workbench promote {RUN_IDS[task]})" in out
    assert re.search(r"report: .*report\.html", out)
    head = json.loads(invoke(["show", RUN_IDS[task], "--json"]).output)
    assert head["task"] == task and head["selected"] == sel and head["primary_value"] == value
    assert head["greater_is_better"] is (task != "regression") and head["report"].endswith("report.html")
    plain = dict(line.split("\t", 1) for line in invoke(["show", RUN_IDS[task], "--plain"]).output.splitlines())
    assert plain["selected"] == sel and plain["promotion"].startswith("not promoted")


def test_show_does_not_swallow_bracketed_text(env):
    out = invoke(["show", RUN_IDS["binary_classification"]]).output
    assert "(succeeded)" in out and "[succeeded] brief" in out


def test_show_reads_the_promotion_from_the_ledger(env):
    led = env / "bentoml" / "workbench"
    led.mkdir(parents=True)
    rid = RUN_IDS["regression"]
    lines = [{"at": "2026-12-01T21:00:00", "action": "refused", "run_id": rid, "failed_gates": ["latency"]},
             {"at": "2026-12-01T22:00:00", "action": "promote", "run_id": rid, "tag": "wage_ridge:abc123"}]
    (led / "ledger.jsonl").write_text("".join(json.dumps(e) + "\n" for e in lines))
    (led / "production.json").write_text(json.dumps({"tag": "wage_ridge:abc123"}))
    assert "promoted as wage_ridge:abc123 (in production)" in invoke(["show", rid]).output
    (led / "production.json").write_text(json.dumps({"tag": "other:1"}))
    assert "certified, not in production" in invoke(["show", rid]).output
    (led / "ledger.jsonl").write_text(json.dumps(lines[0]) + "\n")
    assert "refused 2026-12-01T21:00:00 (failed: latency)" in invoke(["show", rid]).output


@pytest.mark.parametrize("command", [["show", "no-such-run"], ["promote", "no-such-run"]])
def test_a_run_that_does_not_exist_is_bad_input(env, command):
    r = invoke(command)
    assert r.exit_code == 2, r.output
    assert "no-such-run" in r.output and "workbench runs" in r.output


def test_help_is_shown_as_written(env):
    helps = {c: invoke([*c.split(), "--help"], 80).output for c in ("", "run", "runs", "show", "feedback", "drift")}
    assert "[row,]" in helps["feedback"]
    assert "[default: 0]" not in helps["run"] and "[default: 1800]" in helps["run"]
    assert "WORKBENCH_CELL_TIMEOUT" in helps["run"]
    for name, text in helps.items():
        assert "<bool>" not in text, name
    assert "a cell past its time limit marks the run failed" in " ".join(helps["run"].split())


def test_run_progress_keeps_the_phase_in_brackets(env, monkeypatch):
    from workbench import runs

    class Result:
        manifest = {"duration_s": 1.0, "results": {}, "gates": {}}
        run_dir = env / "runs" / "x"
        status = "succeeded"

    def fake(**kw):
        ev = kw["on_event"]
        ev("run_start", {"run_id": "x", "run_dir": "/tmp/[x]"})
        ev("notebook_start", {"phase": "discovery", "notebook": "01_discovery.ipynb", "cells": 3})
        ev("cell_start", {"phase": "discovery", "cell": 1, "cells": 3})
        ev("notebook_end", {"phase": "discovery", "status": "succeeded", "duration_s": 1.0})
        assert kw["cell_timeout"] == 1800 and kw["kernel_timeout"] == 120
        return Result()

    monkeypatch.setattr(runs, "execute_run", fake)
    r = invoke(["run", "--brief", str(ROOT / "briefs" / "adult.yaml")])
    assert r.exit_code == 0, r.output
    assert "[discovery] cell 1/3" in r.output and "/tmp/[x]" in r.output
    assert invoke(["run", "--cell-timeout", "0"]).exit_code == 2


def test_drift_without_a_log_names_the_folder_as_on_disk(env, monkeypatch):
    pkg = env / "pkg"
    pkg.mkdir()
    (pkg / "reference_profile.json").write_text(json.dumps({"features": {}}))
    (pkg / "monitoring.json").write_text(json.dumps({"psi_warning": 0.1, "psi_critical": 0.25}))
    monkeypatch.setattr(cli, "_package", lambda model: ("adult_income:abc123", pkg))
    logs = env / "logs"
    (logs / "other_model_v1").mkdir(parents=True)
    r = invoke(["drift", "--log-dir", str(logs)])
    assert r.exit_code == 2, r.output
    text = " ".join(r.output.split())
    assert str(logs / "adult_income_abc123") in text and "adult_income:abc123/" not in text
    assert "other_model_v1" in text


def test_resolve_brief_path_from_the_root_the_notebooks_folder_and_elsewhere(tmp_path, monkeypatch):
    adult = (ROOT / "briefs" / "adult.yaml").resolve()
    monkeypatch.chdir(ROOT)
    assert resolve_brief_path("../briefs/adult.yaml", root=ROOT) == adult  # the notebooks' default, from the root
    assert resolve_brief_path("briefs/adult.yaml", root=ROOT) == adult
    monkeypatch.chdir(ROOT / "notebooks")
    assert resolve_brief_path("../briefs/adult.yaml", root=ROOT) == adult  # as JupyterLab runs it
    monkeypatch.chdir(tmp_path)
    assert resolve_brief_path("briefs/adult.yaml", root=ROOT) == adult
    (tmp_path / "mine.yaml").write_text("name: x\n")
    assert resolve_brief_path("mine.yaml", root=ROOT) == (tmp_path / "mine.yaml").resolve()  # the current folder wins
    assert resolve_brief_path(adult) == adult
    with pytest.raises(BriefError, match="does not exist") as info:
        resolve_brief_path("nope.yaml", root=ROOT)
    assert str(ROOT / "notebooks" / "nope.yaml") in info.value.hint
