"""Which registered model is in production: a small JSON pointer beside the BentoML model store.

``$BENTOML_HOME/workbench/production.json`` holds ``{"tag": "<name>:<version>", "sha256": "<onnx sha256>",
"package_sha256": ..., "challenger"?: {"tag", "package_sha256", "mode", "percent"}}``. Promotion, release and
rollback (:mod:`workbench.registry`) replace it atomically (a new inode); a service serving it watches it and
swaps models without a restart (:mod:`workbench.serving.deploy`; ``WORKBENCH_HOT_SWAP=0``: read once at start-up).
``WORKBENCH_MODEL_TAG`` overrides it (serve a specific version, pinned).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

__all__ = ["bentoml_home", "pointer_path", "production_pointer", "production_tag"]


def bentoml_home() -> Path:
    return Path(os.environ.get("BENTOML_HOME") or Path.home() / "bentoml")


def pointer_path() -> Path:
    return bentoml_home() / "workbench" / "production.json"


def production_pointer() -> dict | None:
    """The production pointer, or None when nothing has been promoted."""
    p = pointer_path()
    if not p.exists():
        return None
    return json.loads(p.read_text())


def production_tag() -> str:
    """The tag to serve: ``$WORKBENCH_MODEL_TAG``, else the production pointer.

    Raises
    ------
    LookupError
        Nothing is promoted (run ``workbench promote latest`` first).
    """
    env = os.environ.get("WORKBENCH_MODEL_TAG")
    if env:
        return env
    ptr = production_pointer()
    if not ptr:
        raise LookupError(f"no production model: {pointer_path()} does not exist; run `workbench promote latest`")
    return ptr["tag"]
