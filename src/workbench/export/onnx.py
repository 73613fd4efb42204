"""Convert a fitted candidate pipeline to ONNX with skl2onnx.

The exported graph has one input per original feature column, shaped ``[N, 1]``: ``tensor(float)`` for numeric
columns (float32; a missing value is NaN and is imputed inside the graph, as in the pipeline) and
``tensor(string)`` for categorical columns (a missing value is ``""``, the pipeline's missing marker). No ZipMap:
the outputs are ``label`` (int64, ``[N]``) and ``probabilities`` (float32, ``[N, 2]``; column 1 is the positive
class, since workbench trains on 0/1 targets).

Known trap, handled deliberately: skl2onnx 1.20 fails on HistGradientBoosting ("Expected an int, got a boolean")
under protobuf 7 and converts correctly under protobuf 6.x. The lock pins ``protobuf<7``; :func:`check_protobuf`
refuses to export under an incompatible protobuf instead of failing obscurely (or dropping to another model).

LightGBM and XGBoost estimators inside a pipeline convert through onnxmltools' converters, registered with
skl2onnx once, lazily (:func:`register_gbm_converters`, called by :func:`export_onnx`): importing this module
imports neither library.
"""

from __future__ import annotations

import hashlib
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ParameterError, WorkbenchError

__all__ = ["ONNX_OUTPUTS", "REGRESSION_OUTPUTS", "TASKS", "TASK_OUTPUTS", "OnnxExport", "check_protobuf",
           "check_task", "export_onnx", "register_gbm_converters"]

ONNX_OUTPUTS = ("label", "probabilities")
"""A classifier's graph outputs (binary and multiclass)."""

REGRESSION_OUTPUTS = ("prediction",)
"""A regressor's graph output."""

TASKS = ("binary_classification", "multiclass_classification", "regression")

TASK_OUTPUTS: dict[str, tuple[str, ...]] = {"binary_classification": ONNX_OUTPUTS,
                                            "multiclass_classification": ONNX_OUTPUTS,
                                            "regression": REGRESSION_OUTPUTS}


class ExportError(WorkbenchError):
    """The model cannot be exported to ONNX."""

    exit_code = 3


def check_protobuf() -> str:
    """Return protobuf's version; raise :class:`ExportError` when it is 7 or newer (see the module docstring)."""
    import google.protobuf

    version = google.protobuf.__version__
    if int(version.split(".")[0]) >= 7:
        raise ExportError(
            f"protobuf {version} is installed, but skl2onnx 1.20 mis-handles HistGradientBoosting under protobuf 7 "
            "(\"Expected an int, got a boolean\")",
            hint="install the locked environment (make setup); uv.lock pins protobuf<7",
        )
    return version


_REGISTERED: list[str] = []


def register_gbm_converters() -> list[str]:
    """Register onnxmltools' LightGBM and XGBoost converters with skl2onnx (once; later calls are free).

    Registers the scikit-learn estimators of whichever of the two libraries is installed, and any subclass of
    them that :mod:`workbench.modeling` defines (registration is by exact type). Returns the registered type
    names. Classifiers accept skl2onnx's ``zipmap`` and ``nocl`` options, like its own classifiers.
    """
    if _REGISTERED:
        return list(_REGISTERED)
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    cls_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    pairs: list[tuple[type, str, Any, Any]] = []
    try:
        import lightgbm
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        pairs += [(lightgbm.LGBMClassifier, "LightGbmLGBMClassifier", convert_lightgbm, "classifier"),
                  (lightgbm.LGBMRegressor, "LightGbmLGBMRegressor", convert_lightgbm, "regressor")]
    except ImportError:  # pragma: no cover - lightgbm is a dependency
        pass
    try:
        import xgboost
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost

        pairs += [(xgboost.XGBClassifier, "XGBoostXGBClassifier", convert_xgboost, "classifier"),
                  (xgboost.XGBRegressor, "XGBoostXGBRegressor", convert_xgboost, "regressor")]
    except ImportError:  # pragma: no cover - xgboost is a dependency
        pass
    try:  # workbench's own subclasses (they add decision_function for SHAP's additivity check)
        from ..modeling import _gbm

        subclasses = list(_gbm.GBM_ESTIMATORS)
    except ImportError:  # pragma: no cover
        subclasses = []
    for est in subclasses:
        for base, _alias, conv, kind in list(pairs):
            if issubclass(est, base) and est is not base:
                pairs.append((est, f"Workbench{est.__name__}", conv, kind))
                break
    for est, alias, conv, kind in pairs:
        if kind == "classifier":
            update_registered_converter(est, alias, calculate_linear_classifier_output_shapes, conv,
                                        options=cls_options)
        else:
            update_registered_converter(est, alias, calculate_linear_regressor_output_shapes, conv)
        _REGISTERED.append(f"{est.__module__}.{est.__name__}")
    return list(_REGISTERED)


def _uses_gbm(estimator: Any) -> bool:
    """Whether ``estimator`` is (or calibrates) a LightGBM or XGBoost model."""
    inner = [estimator, getattr(estimator, "estimator", None)]
    inner += [getattr(c, "estimator", None) for c in getattr(estimator, "calibrated_classifiers_", [])]
    return any(type(e).__module__.split(".")[0] in ("lightgbm", "xgboost")
               or any(b.__module__.split(".")[0] in ("lightgbm", "xgboost") for b in type(e).__mro__)
               for e in inner if e is not None)


def check_task(task: str) -> str:
    """Return ``task`` when it is one of :data:`TASKS`; raise :class:`ParameterError` otherwise."""
    if task not in TASK_OUTPUTS:
        raise ParameterError(f"unknown task {task!r}; valid tasks: {', '.join(TASKS)}", parameter="task",
                             hint="pass brief.task")
    return task


def _check_estimator(final: Any, task: str) -> None:
    """Refuse a final estimator that does not fit ``task`` (a regressor for a classification task, a binary
    model for multiclass, classes other than the int codes ``0..K-1``): the graph would mean something else."""
    classes = getattr(final, "classes_", None)
    name = type(final).__name__
    if task == "regression":
        if classes is not None:
            raise ExportError(f"{name} is a classifier, but the task is regression",
                              hint="export a regressor for a regression brief")
        return
    if classes is None:
        raise ExportError(f"{name} has no classes_ (not a fitted classifier), but the task is {task}",
                          hint="export a fitted classifier for a classification brief")
    codes = list(range(len(classes)))
    if [int(c) if isinstance(c, int | np.integer) else c for c in classes] != codes:
        raise ExportError(f"{name} was trained on classes {list(classes)[:10]}, not on the int codes {codes[:10]}",
                          hint="train on the task's int class codes (0..K-1) so the ONNX label output is the code")
    k = len(classes)
    if task == "binary_classification" and k != 2:
        raise ExportError(f"{name} has {k} classes, but the task is binary_classification",
                          hint="use task='multiclass_classification' for K >= 3 classes")
    if task == "multiclass_classification" and k < 3:
        raise ExportError(f"{name} has {k} classes, but the task is multiclass_classification (K >= 3)",
                          hint="use task='binary_classification' for two classes")


@dataclass(frozen=True)
class OnnxExport:
    """A serialized ONNX model and what is needed to feed it."""

    model_bytes: bytes
    inputs: list[dict]  # [{"name", "kind": "numeric"|"categorical", "onnx_type"}], in feature order
    opset: int
    skl2onnx_version: str
    protobuf_version: str
    task: str = "binary_classification"

    @property
    def outputs(self) -> tuple[str, ...]:
        """The graph's output names (:data:`TASK_OUTPUTS` of the task)."""
        return TASK_OUTPUTS[self.task]

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.model_bytes).hexdigest()

    @property
    def size_bytes(self) -> int:
        return len(self.model_bytes)

    def to_dict(self) -> dict:
        return {"sha256": self.sha256, "size_bytes": self.size_bytes, "inputs": self.inputs, "opset": self.opset,
                "outputs": list(self.outputs), "task": self.task, "skl2onnx": self.skl2onnx_version,
                "protobuf": self.protobuf_version}


def export_onnx(pipeline: Any, *, features: list[str], numeric: list[str], task: str = "binary_classification",
                target_opset: int | None = None) -> OnnxExport:
    """Convert a fitted pipeline whose input is the model frame (``features`` in order; ``numeric`` ones float).

    Parameters
    ----------
    task:
        ``brief.task``: the outputs are ``label`` and ``probabilities`` for the classification tasks (the model
        trained on int codes ``0..K-1``; K = 2 for binary, K >= 3 for multiclass) and ``prediction`` for
        regression.

    Raises
    ------
    ParameterError
        An unknown ``task``.
    ExportError
        An incompatible protobuf, a final estimator that does not fit the task, or skl2onnx cannot convert the
        pipeline (the message says which step).
    """
    import onnx
    import skl2onnx
    from skl2onnx import to_onnx
    from skl2onnx.common.data_types import FloatTensorType, StringTensorType

    check_task(task)
    proto_version = check_protobuf()
    register_gbm_converters()
    num = set(numeric)
    types = [(c, FloatTensorType([None, 1]) if c in num else StringTensorType([None, 1])) for c in features]
    final = pipeline.steps[-1][1] if hasattr(pipeline, "steps") else pipeline
    if task != "binary_classification":  # binary: exactly as before (a non-classifier fails in skl2onnx)
        _check_estimator(final, task)
    wanted = TASK_OUTPUTS[task]
    options = {id(final): {"zipmap": False}} if wanted == ONNX_OUTPUTS else None
    if target_opset is None and _uses_gbm(final):
        # onnxmltools' tree converters write ai.onnx.ml opset 3 (TreeEnsemble*), not skl2onnx's latest (5).
        from skl2onnx import get_latest_tested_opset_version

        target_opset = {"": get_latest_tested_opset_version(), "ai.onnx.ml": 3}
    try:
        with warnings.catch_warnings():
            # skl2onnx 1.20 + protobuf 6.33 emit DeprecationWarnings while building tree nodes; harmless.
            warnings.simplefilter("ignore", DeprecationWarning)
            onx = to_onnx(pipeline, initial_types=types, options=options, target_opset=target_opset)
    except Exception as exc:  # skl2onnx raises many types
        raise ExportError(f"skl2onnx could not convert {type(final).__name__}: {type(exc).__name__}: {exc}",
                          hint="only candidates marked onnx_convertible can be promoted") from None
    outputs = [o.name for o in onx.graph.output]
    if len(outputs) != len(wanted):
        raise ExportError(f"the graph of {type(final).__name__} has outputs {outputs}, expected {len(wanted)} "
                          f"for {task} ({', '.join(wanted)})", hint="export a model that fits the brief's task")
    if outputs != list(wanted):
        # Rename graph outputs to the documented names.
        for old, new in zip(outputs, wanted, strict=True):
            for node in onx.graph.node:
                node.output[:] = [new if o == old else o for o in node.output]
            for o in onx.graph.output:
                if o.name == old:
                    o.name = new
    # skl2onnx writes opset entries in set order (it depends on PYTHONHASHSEED): sort them so the same model
    # always serializes to the same bytes and sha256.
    imports = sorted(onx.opset_import, key=lambda o: (o.domain, o.version))
    del onx.opset_import[:]
    onx.opset_import.extend(imports)
    onnx.checker.check_model(onx)
    opset = max((o.version for o in onx.opset_import if o.domain in ("", "ai.onnx")), default=0)
    inputs = [{"name": c, "kind": "numeric" if c in num else "categorical",
               "onnx_type": "tensor(float)" if c in num else "tensor(string)"} for c in features]
    return OnnxExport(model_bytes=onx.SerializeToString(), inputs=inputs, opset=int(opset),
                      skl2onnx_version=skl2onnx.__version__, protobuf_version=proto_version, task=task)
