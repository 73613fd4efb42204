"""The BentoML model store as workbench uses it: one model per brief (``workbench-<brief name>``), one version per
promotion, holding a *model package*:

``model.onnx``        the exported model
``serving.json``      what the service needs (see :func:`serving_config`)
``contract.json``     the data contract of the run
``parity.json``       the parity certificate
``model_card.md/.html``
``gates.json``        the gate report that admitted it
plus anything else promotion adds (e.g. the reference profile for drift), and
``package.json``      ``{"format": 1, "files": {"<relative path>": "<sha256>"}}`` over every other file; its own
                      sha256 is the model metadata's ``package_sha256`` (and the production pointer's).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

__all__ = ["model_name_for", "model_store", "list_models", "get_model", "save_model_package", "serving_config",
           "load_package_file", "package_bytes", "sha256_bytes"]

DEFAULT_LIMITS = {"max_batch_rows": 10_000, "max_body_bytes": 10 * 1024 * 1024}


def model_store() -> Any:
    """The BentoML model store under ``$BENTOML_HOME`` *as it is now* (bentoml itself resolves it once per
    process, which would ignore a changed ``BENTOML_HOME``)."""
    from bentoml._internal.models.model import ModelStore

    from ..serving.pointer import bentoml_home

    path = bentoml_home() / "models"
    path.mkdir(parents=True, exist_ok=True)
    return ModelStore(str(path))


def list_models() -> list:
    import bentoml

    return bentoml.models.list(_model_store=model_store())


def get_model(tag: str) -> Any:
    import bentoml

    return bentoml.models.get(tag, _model_store=model_store())


def model_name_for(brief_name: str) -> str:
    return f"workbench-{brief_name}".lower().replace("_", "-").replace(".", "-")


def serving_config(*, contract: dict, inputs: list[dict], onnx_sha256: str, threshold: float | None, run_id: str,
                   model_name: str, limits: dict | None = None, task: str = "binary_classification",
                   classes: list[str] | None = None, target_std: float | None = None, title: str | None = None,
                   description: str | None = None) -> dict:
    """The service's whole configuration, derived from the data contract and the ONNX export.

    Each input carries the contract's facts: kind, nullable (seen missing in training), the allowed categories
    and the training range (used to flag, not refuse, unseen categories and out-of-range values).
    """
    specs = {c["name"]: c for c in contract["columns"]}
    rows = []
    for i in inputs:
        c = specs[i["name"]]
        rows.append({"name": i["name"], "kind": i["kind"], "nullable": bool(c["nullable"]),
                     "categories": c.get("categories") if i["kind"] == "categorical" else None,
                     "min": c.get("min") if i["kind"] == "numeric" else None,
                     "max": c.get("max") if i["kind"] == "numeric" else None})
    out = {"model_name": model_name, "run_id": run_id, "task": task, "onnx_file": "model.onnx",
           "onnx_sha256": onnx_sha256, "inputs": rows, "target": contract["target"],
           "limits": {**DEFAULT_LIMITS, **(limits or {})}}
    if title:
        out["title"] = title
    if description:
        out["description"] = description
    if contract.get("derive"):  # derived date features: the request carries the raw dates, the service derives
        out["derive"] = list(contract["derive"])
        dates: list[str] = []
        for d in contract["derive"]:
            for col in d.get("days_between") or [d.get("column")]:
                if col and col not in dates:
                    dates.append(col)
        out["date_inputs"] = dates
    from ..tasks import get_task

    out.update(get_task(task).serving_fields(contract=contract, threshold=threshold, classes=classes,
                                             target_std=target_std))
    return out


def save_model_package(files: dict[str, bytes | str | dict], *, name: str, labels: dict[str, str],
                       metadata: dict[str, Any]) -> str:
    """Create a new version of ``name`` in the BentoML model store holding ``files``; return its tag.

    ``bentoml.models.create`` writes into a temporary folder and only registers it when the block ends
    without an error, so a failed save leaves nothing behind.
    """
    import bentoml

    from ..artifacts import ModelPackage

    blobs = package_bytes(files)
    manifest = ModelPackage.manifest_bytes(blobs)
    blobs[ModelPackage.PACKAGE] = manifest
    metadata = {**metadata, "package_sha256": sha256_bytes(manifest)}
    with bentoml.models.create(name, labels=labels, metadata=_metadata_safe(metadata),
                               _model_store=model_store()) as model:
        root = Path(model.path)
        for rel, content in blobs.items():
            dest = root / rel
            dest.parent.mkdir(parents=True, exist_ok=True)
            dest.write_bytes(content)
        tag = str(model.tag)
    return tag


def package_bytes(files: dict[str, bytes | str | dict]) -> dict[str, bytes]:
    """The bytes each file of a package is written as (dicts as indented JSON, text as UTF-8).

    Raises
    ------
    ValueError
        ``files`` names ``package.json`` or BentoML's ``model.yaml`` (both are written by the store).
    """
    from ..artifacts import ModelPackage

    out = {}
    for rel, content in files.items():
        if rel == ModelPackage.PACKAGE or rel in ModelPackage.BENTOML_OWN:
            raise ValueError(f"{rel} is written by the model store, not by the caller")
        if isinstance(content, dict):
            content = json.dumps(content, indent=2) + "\n"
        out[rel] = content.encode("utf-8") if isinstance(content, str) else bytes(content)
    return out


def _metadata_safe(value: Any) -> Any:
    """BentoML metadata takes basic types only: drop None-valued keys, stringify None in lists."""
    if isinstance(value, dict):
        return {str(k): _metadata_safe(v) for k, v in value.items() if v is not None}
    if isinstance(value, list | tuple):
        return ["null" if v is None else _metadata_safe(v) for v in value]
    return value


def load_package_file(model_path: str | Path, rel: str) -> bytes:
    return (Path(model_path) / rel).read_bytes()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()
