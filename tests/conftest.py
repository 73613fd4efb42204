"""Shared fixtures: tiny datasets written to tmp folders, briefs for them, an isolated runs folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from testkit import make_churn, write_brief


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
