"""Shared fixtures: tiny datasets written to tmp folders, briefs for them, an isolated runs folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testkit import make_churn, write_brief

# Test folders whose modules share package-scoped fixtures (real runs promoted through the gates, ~15-25 s each):
# `make test` distributes work by module (`--dist loadscope`), which would build those fixtures once per worker
# that gets one of the folder's modules. Each folder here is one unit of work instead: one worker, one build.
SHARED_FIXTURE_FOLDERS = ("tests/app/",)


def pytest_xdist_make_scheduler(config, log):
    """With ``--dist loadscope``: modules are units of work, except that each of :data:`SHARED_FIXTURE_FOLDERS`
    is one unit (documented pytest-xdist hook; other modes keep xdist's own scheduler)."""
    if config.getoption("dist", None) != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class FolderScopes(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            for folder in SHARED_FIXTURE_FOLDERS:
                if nodeid.startswith(folder):
                    return folder
            return super()._split_scope(nodeid)

    return FolderScopes(config, log)


@pytest.fixture(autouse=True)
def _quiet_threads(monkeypatch):
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))


@pytest.fixture
def runs_dir(tmp_path, monkeypatch) -> Path:
    d = tmp_path / "runs"
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(d))
    return d


@pytest.fixture
def churn_project(tmp_path) -> Path:
    """A folder with churn.csv and churn.yaml (the brief)."""
    make_churn().write_csv(tmp_path / "churn.csv")
    return write_brief(tmp_path / "churn.yaml", "churn.csv")
