"""Serving fixtures: a real model package (logistic regression on an Adult sample) in a throwaway BentoML home.

:func:`build_serving_package` is the reusable helper: fit a candidate on a 3000-row Adult sample, export it to
ONNX, write the model package into the BentoML model store of ``home`` and point ``production.json`` at it --
what ``workbench promote`` does, minus the gates. The session fixture :func:`serving_package` builds it once
(about 2 s) and points ``BENTOML_HOME`` at it for the whole session, in this process (the store is patched into
BentoML's container, which caches the home it saw first) and in the subprocesses tests start.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[2]
ADULT_BRIEF = ROOT / "briefs" / "adult.yaml"


@dataclass
class ServingPackage:
    """A registered model package and what the tests compare the service with."""

    home: Path                 # BENTOML_HOME
    tag: str                   # "<name>:<version>"
    path: Path                 # the model's folder in the store
    serving: dict              # serving.json
    sha256: str                # of model.onnx
    pipeline: Any              # the fitted scikit-learn pipeline (the in-process reference)
    X_test: pd.DataFrame       # model frame of a test sample (NaN / "" for missing)
    records: list[dict] = field(default_factory=list)   # X_test as JSON records (null for missing)

    def reference_proba(self, X: pd.DataFrame | None = None) -> np.ndarray:
        """The scikit-learn pipeline's positive-class probability (what the service must reproduce)."""
        return self.pipeline.predict_proba(self.X_test if X is None else X)[:, 1]

    @property
    def threshold(self) -> float:
        return float(self.serving["threshold"])


def frame_to_records(X: pd.DataFrame, categorical: list[str]) -> list[dict]:
    """Model-frame rows as JSON-ready records: NaN and the missing category ``""`` become None (JSON null)."""
    out = []
    cat = set(categorical)
    for row in X.to_dict(orient="records"):
        rec = {}
        for k, v in row.items():
            if k in cat:
                rec[k] = None if v == "" else v
            else:
                rec[k] = None if v != v else float(v)  # NaN != NaN
        out.append(rec)
    return out


@contextlib.contextmanager
def bentoml_home(home: Path) -> Iterator[None]:
    """Use ``home`` as BentoML's home in this process and in child processes, then restore both.

    BentoML resolves ``$BENTOML_HOME`` once per process (a cached singleton), so setting the variable is not
    enough once another test has touched the store: the model store is patched in its DI container too.
    """
    from bentoml._internal.configuration.containers import BentoMLContainer
    from bentoml._internal.models import ModelStore

    (home / "models").mkdir(parents=True, exist_ok=True)
    old = os.environ.get("BENTOML_HOME")
    os.environ["BENTOML_HOME"] = str(home)
    try:
        with BentoMLContainer.bentoml_home.patch(str(home)), \
                BentoMLContainer.model_store.patch(ModelStore(str(home / "models"))):
            yield
    finally:
        if old is None:
            os.environ.pop("BENTOML_HOME", None)
        else:
            os.environ["BENTOML_HOME"] = old


def build_serving_package(home: Path, *, rows: int = 3000, test_rows: int = 300, model: str = "logreg",
                          threshold: float = 0.5, limits: dict | None = None, seed: int = 0) -> ServingPackage:
    """Fit ``model`` on an Adult sample, register its ONNX package in ``home``'s store and make it production.

    Must run inside :func:`bentoml_home` (``home``'s store active).
    """
    from workbench.brief import load_brief
    from workbench.data import infer_contract, load_dataset
    from workbench.data.io import target_vector
    from workbench.export import export_onnx
    from workbench.modeling import fit_model, to_model_frame
    from workbench.registry.store import model_name_for, save_model_package, serving_config
    from workbench.serving.pointer import pointer_path

    brief = load_brief(ADULT_BRIEF)
    data = load_dataset(brief, sample_rows=rows, seed=seed)
    contract = infer_contract(data.train, brief)
    X = to_model_frame(data.train, contract)
    fitted = fit_model(model, X, target_vector(data.train, brief), seed=seed, contract=contract)
    export = export_onnx(fitted.model, features=contract.features, numeric=contract.numeric_features)
    name = model_name_for(brief.name)
    serving = serving_config(contract=contract.to_dict(), inputs=export.inputs, onnx_sha256=export.sha256,
                             threshold=threshold, run_id="test-run", model_name=name, limits=limits)
    from workbench.monitoring.profile import build_profile

    full = load_dataset(brief)  # the drift reference describes the population, as promotion's does
    X_ref_test = to_model_frame(full.test, contract)
    profile = build_profile(full.train, features=contract.features, numeric=contract.numeric_features,
                            probabilities=fitted.model.predict_proba(X_ref_test)[:, 1], threshold=threshold, seed=seed)
    monitoring = {**brief.monitoring.model_dump(), "primary_metric": "pr_auc", "certified_value": 0.75,
                  "sensitive_features": brief.sensitive_features, "target": brief.target.column,
                  "positive_label": str(brief.target.positive_label), "threshold": threshold,
                  "fairness": brief.fairness.model_dump()}
    tag = save_model_package({"model.onnx": export.model_bytes, "serving.json": serving,
                              "contract.json": contract.to_dict(), "reference_profile.json": profile,
                              "monitoring.json": monitoring},
                             name=name, labels={"stage": "certified"},
                             metadata={"run_id": "test-run", "onnx_sha256": export.sha256})
    p = pointer_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    p.write_text(json.dumps({"tag": tag, "sha256": export.sha256, "run_id": "test-run", "brief": brief.name}))
    import bentoml

    X_test = to_model_frame(data.test.head(test_rows), contract)
    return ServingPackage(home=home, tag=tag, path=Path(bentoml.models.get(tag).path), serving=serving,
                          sha256=export.sha256, pipeline=fitted.model, X_test=X_test,
                          records=frame_to_records(X_test, contract.categorical_features))


@pytest.fixture(scope="session")
def serving_home(tmp_path_factory) -> Iterator[Path]:
    """The serving suite's BentoML home: ``BENTOML_HOME`` points at its store for the whole session."""
    home = tmp_path_factory.mktemp("bentoml_home")
    saved_tag = os.environ.pop("WORKBENCH_MODEL_TAG", None)
    with bentoml_home(home):
        yield home
    if saved_tag is not None:
        os.environ["WORKBENCH_MODEL_TAG"] = saved_tag


@pytest.fixture(scope="session")
def serving_package(serving_home) -> ServingPackage:
    """One real model package for the whole serving suite (the production model of :func:`serving_home`)."""
    return build_serving_package(serving_home)


def stop_server(proc: subprocess.Popen, known: Iterable[Any] = ()) -> None:
    """Stop a server started with ``start_new_session=True`` (BentoML's arbiter and workers, or uvicorn's) and
    every process of its tree: what ``workbench release`` does with its rehearsal server
    (:func:`workbench.registry.rehearsal.stop_process_tree`)."""
    from workbench.registry.rehearsal import stop_process_tree

    stop_process_tree(proc, list(known))


def changed_record(serving_package: ServingPackage, **changes: Any) -> dict:
    """The package's first record with ``changes`` applied (a value of ``...`` removes the field)."""
    r = dict(serving_package.records[0])
    for k, v in changes.items():
        if v is ...:
            r.pop(k)
        else:
            r[k] = v
    return r


def load_service_module(name: str):
    """Import ``bento/service.py`` afresh as module ``name`` (it resolves the model at import, from the
    BentoML home active now)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(name, ROOT / "bento" / "service.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


# --------------------------------------------------------------------------------------------- new tasks
TASK_CLASSES = ["bronze", "gold", "silver"]  # sorted class strings: code k is TASK_CLASSES[k]
TASK_NUMERIC = ["size", "weight"]
TASK_CATEGORICAL = ["colour", "region"]


def task_frame(n: int, seed: int = 0, *, shift: float = 0.0) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """A synthetic model frame (NaN / "" for missing), int class codes and a numeric target from the same
    features. ``shift`` moves ``size`` (drift tests)."""
    rng = np.random.default_rng(seed)
    size = rng.normal(10 + shift, 3, n)
    weight = rng.gamma(2.0, 5.0, n)
    colour = rng.choice(["red", "green", "blue"], n, p=[0.5, 0.3, 0.2])
    region = rng.choice(["north", "south"], n)
    z = np.stack([0.6 * (size - 10), 0.15 * (weight - 10) + np.where(colour == "red", 1.0, 0.0),
                  np.where(region == "north", 0.8, -0.2)], axis=1)
    p = np.exp(z) / np.exp(z).sum(axis=1, keepdims=True)
    codes = np.array([rng.choice(3, p=row) for row in p])
    y = 3.0 * size - 0.5 * weight + np.where(colour == "red", 4.0, 0.0) + rng.normal(0, 2.0, n)
    X = pd.DataFrame({"size": size.astype(np.float64), "weight": weight, "colour": colour, "region": region})
    X.loc[rng.random(n) < 0.03, "size"] = np.nan
    X.loc[rng.random(n) < 0.03, "colour"] = ""
    return X, codes, y


def _task_pipeline(task: str, seed: int, model: str = "linear") -> Any:
    """``linear``: scaled numerics + one-hot categoricals into a logistic regression / ridge; ``hgb``: ordinal
    categoricals into histogram gradient boosting (the promoted model's kind; benchmarks)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    if model == "hgb":
        prep = ColumnTransformer([
            ("num", SimpleImputer(strategy="median"), TASK_NUMERIC),
            ("cat", Pipeline([("impute", SimpleImputer(missing_values="", strategy="constant",
                                                       fill_value="__missing__")),
                              ("encode", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))]),
             TASK_CATEGORICAL)], remainder="drop", sparse_threshold=0.0)
        est = HistGradientBoostingRegressor if task == "regression" else HistGradientBoostingClassifier
        return Pipeline([("prep", prep), ("model", est(categorical_features=None, random_state=seed))])
    prep = ColumnTransformer([
        ("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]), TASK_NUMERIC),
        ("cat", Pipeline([("impute", SimpleImputer(missing_values="", strategy="constant", fill_value="__missing__")),
                          ("encode", OneHotEncoder(handle_unknown="ignore", sparse_output=False))]), TASK_CATEGORICAL),
    ], remainder="drop", sparse_threshold=0.0)
    model = LogisticRegression(max_iter=1000, random_state=seed) if task != "regression" else Ridge(alpha=1.0)
    return Pipeline([("prep", prep), ("model", model)])


def task_onnx(pipeline: Any, task: str) -> bytes:
    """skl2onnx straight from the pipeline: zipmap off; a regressor's ``variable`` output renamed ``prediction``."""
    import warnings

    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    types = [(c, FloatTensorType([None, 1])) for c in TASK_NUMERIC] + \
            [(c, StringTensorType([None, 1])) for c in TASK_CATEGORICAL]
    final = pipeline.steps[-1][1]
    options = {id(final): {"zipmap": False}} if task != "regression" else None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        onx = to_onnx(pipeline, initial_types=types, options=options)
    if task == "regression":
        old = onx.graph.output[0].name
        for node in onx.graph.node:
            node.output[:] = ["prediction" if o == old else o for o in node.output]
        onx.graph.output[0].name = "prediction"
    return onx.SerializeToString()


@dataclass
class TaskPackage:
    """A registered multiclass or regression model package (in the session's store; not production)."""

    home: Path                 # BENTOML_HOME
    task: str
    tag: str
    path: Path
    serving: dict
    monitoring: dict
    profile: dict
    pipeline: Any
    onnx: bytes
    X_test: pd.DataFrame
    y_test: np.ndarray         # class codes (multiclass) or values (regression)
    records: list[dict] = field(default_factory=list)

    def session_scores(self, X: pd.DataFrame | None = None) -> np.ndarray:
        """A bare onnxruntime session's answer for the model frame: multiclass probabilities renormalised in
        float64 ``(n, K)``, regression predictions ``(n,)``."""
        import onnxruntime as ort

        X = self.X_test if X is None else X
        sess = ort.InferenceSession(self.onnx, providers=["CPUExecutionProvider"])
        feeds = {c: X[c].to_numpy(np.float32).reshape(-1, 1) for c in TASK_NUMERIC}
        feeds.update({c: X[c].to_numpy(object).reshape(-1, 1) for c in TASK_CATEGORICAL})
        if self.task == "regression":
            return sess.run(["prediction"], feeds)[0].reshape(-1).astype(np.float64)
        p = sess.run(["probabilities"], feeds)[0].astype(np.float64)
        return p / p.sum(axis=1, keepdims=True)


def build_task_package(task: str, *, rows: int = 1500, test_rows: int = 200, seed: int = 0,
                       model: str = "linear") -> TaskPackage:
    """Fit a small multiclass or regression pipeline on synthetic data, convert it with skl2onnx and register
    the package (serving.json, monitoring.json, reference profile) in the active BentoML store. Must run inside
    :func:`bentoml_home`; does not touch the production pointer (serve it with ``WORKBENCH_MODEL_TAG``)."""
    import hashlib

    import polars as pl

    from workbench.monitoring.profile import build_profile
    from workbench.registry.store import save_model_package

    X, codes, y = task_frame(rows + test_rows, seed)
    X_train, X_test = X.iloc[:rows].reset_index(drop=True), X.iloc[rows:].reset_index(drop=True)
    target = codes if task == "multiclass_classification" else y
    pipeline = _task_pipeline(task, seed, model).fit(X_train, target[:rows])
    onnx = task_onnx(pipeline, task)
    sha = hashlib.sha256(onnx).hexdigest()
    inputs = [{"name": c, "kind": "numeric", "nullable": True, "categories": None,
               "min": float(np.nanmin(X_train[c])), "max": float(np.nanmax(X_train[c]))} for c in TASK_NUMERIC]
    inputs += [{"name": c, "kind": "categorical", "nullable": c == "colour",
                "categories": sorted(set(X_train[c]) - {""}), "min": None, "max": None} for c in TASK_CATEGORICAL]
    name = f"workbench-test-{task.split('_')[0]}"
    serving = {"model_name": name, "run_id": "test-run", "task": task, "onnx_file": "model.onnx",
               "onnx_sha256": sha, "inputs": inputs, "target": "grade" if task != "regression" else "price",
               "limits": {"max_batch_rows": 10_000, "max_body_bytes": 10 * 1024 * 1024}}
    train_pl = pl.from_pandas(X_train.replace({"": None})).with_columns(
        pl.col("size").fill_nan(None))
    if task == "multiclass_classification":
        serving["classes"] = TASK_CLASSES
        ref = pipeline.predict_proba(X_test)
        profile = build_profile(train_pl, features=TASK_NUMERIC + TASK_CATEGORICAL, numeric=TASK_NUMERIC,
                                task=task, scores=ref, classes=TASK_CLASSES, seed=seed)
        monitoring = {"task": task, "classes": TASK_CLASSES, "primary_metric": "macro_f1", "certified_value": 0.5,
                      "metric_tolerance": 0.05}
    else:
        serving["target_std"] = float(np.std(y[:rows]))
        ref = pipeline.predict(X_test)
        profile = build_profile(train_pl, features=TASK_NUMERIC + TASK_CATEGORICAL, numeric=TASK_NUMERIC,
                                task=task, scores=ref, seed=seed)
        monitoring = {"task": task, "primary_metric": "mae", "certified_value": 2.0, "metric_tolerance": 0.3}
    monitoring.update({"psi_warning": 0.1, "psi_critical": 0.25, "ks_alpha": 0.01, "target": serving["target"],
                       "sensitive_features": ["region"],
                       "fairness": {"thresholds": {}, "min_slice_size": 20, "bootstrap_samples": 50}})
    tag = save_model_package({"model.onnx": onnx, "serving.json": serving, "reference_profile.json": profile,
                              "monitoring.json": monitoring}, name=name, labels={"stage": "certified"},
                             metadata={"run_id": "test-run", "onnx_sha256": sha})
    import bentoml

    return TaskPackage(home=Path(os.environ["BENTOML_HOME"]), task=task, tag=tag, path=Path(bentoml.models.get(tag).path), serving=serving,
                       monitoring=monitoring, profile=profile, pipeline=pipeline, onnx=onnx, X_test=X_test,
                       y_test=target[rows:], records=frame_to_records(X_test, TASK_CATEGORICAL))


@pytest.fixture(scope="session")
def multiclass_package(serving_home) -> TaskPackage:
    """A multiclass package in the serving suite's store (not the production model)."""
    return build_task_package("multiclass_classification")


@pytest.fixture(scope="session")
def regression_package(serving_home) -> TaskPackage:
    """A regression package in the serving suite's store (not the production model)."""
    return build_task_package("regression")
