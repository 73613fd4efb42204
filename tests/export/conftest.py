"""Shared fixtures of the export tests: one BLAS/OpenMP thread, and Adult samples with their contract."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from threadpoolctl import threadpool_limits

from workbench.brief import Brief
from workbench.data import infer_contract
from workbench.data.io import target_vector
from workbench.modeling import to_model_frame

ADULT = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """OpenMP reads OMP_NUM_THREADS once; HGB's spinning threads can slow a fit tenfold on a busy machine."""
    with threadpool_limits(limits=1):
        yield


def _adult_sample(rows: int, train_rows: int, seed: int):
    brief = Brief.model_validate({
        "name": "adult", "objective": "test", "data": {"train": str(ADULT / "adult_train.parquet")},
        "target": {"column": "income", "positive_label": ">50K"}, "features": {"exclude": ["fnlwgt"]},
        "sensitive_features": ["sex", "race"], "success": {"metric": "pr_auc", "threshold": 0.7},
        "latency_budget_ms": 10,
    })
    df = pl.read_parquet(ADULT / "adult_train.parquet").sample(n=rows, seed=seed, shuffle=True)
    train, test = df.head(train_rows), df.tail(rows - train_rows)
    contract = infer_contract(train, brief)
    X, X_test = to_model_frame(train, contract), to_model_frame(test, contract)
    return contract, X, target_vector(train, brief), X_test


@pytest.fixture(scope="module")
def adult_sample():
    """``adult_sample(rows, train_rows, seed) -> (contract, X, y, X_test)`` from the bundled Adult train file."""
    return _adult_sample
