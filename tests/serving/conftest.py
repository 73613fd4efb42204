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
import signal
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
def serving_package(tmp_path_factory) -> Iterator[ServingPackage]:
    """One real model package for the whole serving suite; ``BENTOML_HOME`` points at its store meanwhile."""
    home = tmp_path_factory.mktemp("bentoml_home")
    saved_tag = os.environ.pop("WORKBENCH_MODEL_TAG", None)
    with bentoml_home(home):
        yield build_serving_package(home)
    if saved_tag is not None:
        os.environ["WORKBENCH_MODEL_TAG"] = saved_tag


def stop_server(proc: subprocess.Popen, known: Iterable[Any] = ()) -> None:
    """Stop a server started with ``start_new_session=True`` (BentoML's arbiter and workers, or uvicorn's).

    SIGTERM its process group and wait; then terminate, and kill if need be, by pid, every process of its tree
    still alive (BentoML's workers run in sessions of their own, so the group signal alone can miss them, and a
    SIGKILLed arbiter orphans them). ``known``: psutil processes of the tree seen earlier, stopped too.
    """
    import psutil

    try:
        tree = psutil.Process(proc.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        tree = []
    procs = {p.pid: p for p in [*known, *tree] if p.pid != proc.pid}
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
    for p in procs.values():
        with contextlib.suppress(psutil.NoSuchProcess):
            if p.is_running():
                p.terminate()
    _, alive = psutil.wait_procs(list(procs.values()), timeout=10)
    for p in alive:
        with contextlib.suppress(psutil.NoSuchProcess):
            p.kill()


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
