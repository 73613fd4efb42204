"""LightGBM and XGBoost candidates convert to ONNX and pass the parity certificate on every task; skops can
save and load them with an explicit trusted-type list."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from workbench.export.onnx import export_onnx, register_gbm_converters
from workbench.export.parity import parity_certificate
from workbench.modeling import fit_model


def _frame(n, seed):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": np.round(rng.uniform(0, 100, size=n)),
                      "c": pd.Series(rng.choice(["u", "v", "w", ""], size=n), dtype=object)})
    X.loc[::17, "a"] = np.nan
    z = np.nan_to_num(X["a"].to_numpy()) + X["b"].to_numpy() / 50 + (X["c"] == "u") + rng.normal(scale=0.5, size=n)
    return X, z


@pytest.mark.parametrize("family", ["lgbm", "xgb"])
@pytest.mark.parametrize("task", ["binary_classification", "multiclass_classification", "regression"])
def test_gbm_candidate_is_certified(family, task):
    X, z = _frame(800, 0)
    Xt, zt = _frame(300, 1)
    if task == "regression":
        y = z
    elif task == "multiclass_classification":
        y = np.digitize(z, np.quantile(z, [1 / 3, 2 / 3])).astype(np.int64)
    else:
        y = (z > np.median(z)).astype(np.int64)
    f = fit_model(family, X, y, seed=0, task=task, params={"n_estimators": 60})
    exp = export_onnx(f.model, features=["a", "b", "c"], numeric=["a", "b"], task=task)
    cert = parity_certificate(f.model, exp, Xt, task=task, threshold=0.5 if task == "binary_classification" else None,
                              classes=["x", "y", "z"] if task == "multiclass_classification" else None,
                              target_std=float(np.std(y)) if task == "regression" else None)
    d = cert.to_dict()
    assert d["passed"], d["failures"]


def test_registration_is_idempotent():
    assert register_gbm_converters() == register_gbm_converters()
    assert any("WorkbenchLGBMClassifier" in n for n in register_gbm_converters())


@pytest.mark.parametrize("family", ["lgbm", "xgb"])
def test_skops_round_trip_with_explicit_trusted_types(tmp_path, family):
    skops_io = pytest.importorskip("skops.io")
    X, z = _frame(300, 0)
    f = fit_model(family, X, (z > 0).astype(np.int64), seed=0, params={"n_estimators": 20})
    path = tmp_path / "m.skops"
    skops_io.dump(f.model, path)
    untrusted = skops_io.get_untrusted_types(file=path)
    model = skops_io.load(path, trusted=untrusted)
    np.testing.assert_allclose(model.predict_proba(X), f.model.predict_proba(X))
    print(family, untrusted)
