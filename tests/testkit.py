"""Helpers shared by test modules: paths and small non-Adult datasets with their briefs.

Test modules import these from here (``from testkit import ...``), never from ``conftest``: several
folders have a conftest.py, and which one answers to the name ``conftest`` depends on collection order.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

import numpy as np
import polars as pl
import yaml

ROOT = Path(__file__).resolve().parents[1]
ADULT_BRIEF = ROOT / "briefs" / "adult.yaml"


def make_churn(n: int = 600, seed: int = 0) -> pl.DataFrame:
    """A small non-Adult dataset: other column names (messy ones too), a 0/1 target named 'Churned'."""
    rng = np.random.default_rng(seed)
    tenure = rng.integers(1, 72, n)
    plan = rng.choice(["basic", "plus", "pro"], n, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south", "east", "west"], n)
    charges = np.round(rng.normal(60, 20, n), 2)
    logit = -1.0 - 0.04 * tenure + 0.02 * (charges - 60) + np.where(plan == "basic", 0.8, 0.0)
    churn = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    df = pl.DataFrame({
        "Customer ID": [f"C{i:05d}" for i in range(n)],
        "Tenure Months": tenure,
        "Plan Type": plan,
        "Region": region,
        "MonthlyCharges": charges,
        "Churned": churn,
    })
    return df


def write_brief(path: Path, data_file: str, **overrides) -> Path:
    brief = {
        "name": "churn-demo",
        "objective": "Predict which customers churn next month.",
        "data": {"train": data_file, "collected": "2026-01-01"},
        "target": {"column": "Churned", "positive_label": 1},
        "sensitive_features": ["Region"],
        "success": {"metric": "pr_auc", "threshold": 0.3},
        "latency_budget_ms": 20,
        "fairness": {"min_slice_size": 20},
    }
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(brief.get(key), dict):
            brief[key] = {**brief[key], **value}
        else:
            brief[key] = value
    path.write_text(yaml.safe_dump(brief, sort_keys=False))
    return path


@contextlib.contextmanager
def isolated_workbench(base: Path, *, log: bool = False):
    """Point runs, the BentoML home, promotions (and, with ``log``, the prediction log) at folders under ``base``
    while the block runs, with no pinned model tag; the environment is restored afterwards."""
    keys = ("WORKBENCH_RUNS_DIR", "BENTOML_HOME", "WORKBENCH_MODEL_TAG", "WORKBENCH_PROMOTIONS_DIR",
            "WORKBENCH_LOG_DIR")
    saved = {k: os.environ.get(k) for k in keys}
    os.environ["WORKBENCH_RUNS_DIR"] = str(base / "runs")
    os.environ["BENTOML_HOME"] = str(base / "bentoml")
    os.environ["WORKBENCH_PROMOTIONS_DIR"] = str(base / "promotions")
    if log:
        os.environ["WORKBENCH_LOG_DIR"] = str(base / "log")
    os.environ.pop("WORKBENCH_MODEL_TAG", None)
    try:
        yield base
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
