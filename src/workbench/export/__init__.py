"""Engineering: the ONNX conversion of a selected pipeline and its parity certificate.

The serving path never sees scikit-learn: what leaves this package is an ONNX file with one named input per
original column and a certificate that it scores like the notebook model -- for each task (binary,
multiclass, regression) by that task's policy.
"""

from .onnx import ONNX_OUTPUTS, REGRESSION_OUTPUTS, TASK_OUTPUTS, TASKS, OnnxExport, check_protobuf, export_onnx
from .parity import ParityCertificate, edge_case_frame, judge_parity, parity_certificate, task_policy

__all__ = ["ONNX_OUTPUTS", "REGRESSION_OUTPUTS", "TASKS", "TASK_OUTPUTS", "OnnxExport", "check_protobuf",
           "export_onnx"]
__all__ += ["ParityCertificate", "edge_case_frame", "judge_parity", "parity_certificate", "task_policy"]
