"""Discovery: loading data, the data contract, the audit and the data quality score."""

from .audit import AuditReport, QualityScore, audit_dataset
from .contract import ColumnSpec, ContractCheck, DataContract, infer_contract
from .io import Dataset, Source, load_dataset, read_table, sha256_file

__all__ = [
    "AuditReport",
    "ColumnSpec",
    "ContractCheck",
    "DataContract",
    "Dataset",
    "QualityScore",
    "Source",
    "audit_dataset",
    "infer_contract",
    "load_dataset",
    "read_table",
    "sha256_file",
]
