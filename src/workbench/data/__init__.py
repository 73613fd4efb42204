"""Discovery: loading data, the data contract, the audit and the data quality score.

Names are imported lazily (PEP 562), so that ``workbench.data.derive`` -- which the serving path uses to
compute derived date features -- can be imported without polars and the rest of the Discovery stack.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_NAMES = {
    "AuditReport": ".audit", "QualityScore": ".audit", "audit_dataset": ".audit",
    "ColumnSpec": ".contract", "ContractCheck": ".contract", "DataContract": ".contract",
    "infer_contract": ".contract",
    "Dataset": ".io", "Source": ".io", "load_dataset": ".io", "read_table": ".io", "sha256_file": ".io",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str) -> Any:
    if name in _NAMES:
        value = getattr(import_module(_NAMES[name], __name__), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *_NAMES])
