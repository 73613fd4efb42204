"""Calibration: decided on CV predictions, kept only when Brier and log-loss improve and parity passes."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from workbench.modeling import fit_model
from workbench.modeling.calibration import calibrate, expected_calibration_error


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with threadpool_limits(limits=1):
        yield


def _data(n=600, seed=0):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                      "c": pd.Series(rng.choice(["u", "v"], size=n), dtype=object)})
    y = ((X["a"] + rng.normal(scale=1.0, size=n)) > 0).astype(np.int64).to_numpy()
    return X, y


def test_ece_of_a_perfectly_calibrated_score_is_small():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=20000)
    y = (rng.uniform(size=p.size) < p).astype(int)
    assert expected_calibration_error(y, p) < 0.02
    assert expected_calibration_error(y, np.clip(p * 0.5, 0, 1)) > 0.2


def test_within_tolerance_is_kept_uncalibrated():
    X, y = _data()
    f = fit_model("logreg", X, y, seed=0)
    new, rep = calibrate(f, X, y, task="binary_classification", seed=0, cv_folds=3, ece_tolerance=1.0)
    assert new is f and not rep.applied and "within" in rep.decision
    assert rep.reliability["before"]["prob_pred"]


def test_overconfident_model_is_calibrated_and_certified():
    X, y = _data()
    f = fit_model("xgb", X, y, seed=0, params={"n_estimators": 300, "learning_rate": 0.3, "max_depth": 8})
    new, rep = calibrate(f, X, y, task="binary_classification", seed=0, cv_folds=3, ece_tolerance=0.0,
                         threshold=0.5)
    assert rep.cv["uncalibrated"]["ece"] > 0
    if rep.applied:
        assert rep.parity["passed"] and new is not f
        assert type(new.model.named_steps["model"]).__name__ == "CalibratedClassifierCV"
        assert rep.cv[rep.method]["brier"] < rep.cv["uncalibrated"]["brier"]
        assert rep.cv[rep.method]["log_loss"] < rep.cv["uncalibrated"]["log_loss"]
    else:
        assert new is f
    assert rep.plot() is not None and rep.to_json()


def test_regression_has_nothing_to_calibrate():
    X, y = _data()
    f = fit_model("ridge", X, y.astype(float), seed=0, task="regression")
    new, rep = calibrate(f, X, y, task="regression", seed=0)
    assert new is f and not rep.applied
