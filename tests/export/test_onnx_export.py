"""ONNX export: the graph's signature, the protobuf trap, HGB conversion, missing values through the graph."""

from __future__ import annotations

import google.protobuf
import numpy as np
import onnx
import pytest

from workbench.errors import WorkbenchError
from workbench.export import ONNX_OUTPUTS, OnnxExport, check_protobuf, export_onnx
from workbench.export.onnx import ExportError
from workbench.modeling import fit_model
from workbench.serving import OnnxScorer


@pytest.fixture(scope="module")
def adult(adult_sample):
    """A 3,000-row Adult sample: contract, train frame and target, test frame."""
    return adult_sample(3000, 2000, seed=1)


@pytest.fixture(scope="module")
def exported(adult):
    """Both candidates fitted and exported: {name: (fitted, export)}."""
    contract, X, y, _ = adult
    out = {}
    for name in ("hgb", "logreg"):
        fitted = fit_model(name, X, y, seed=0, contract=contract)
        out[name] = (fitted, export_onnx(fitted.model, features=contract.features,
                                         numeric=contract.numeric_features))
    return out


# ---------------------------------------------------------------------------------------------- protobuf trap
def test_installed_protobuf_is_6x():
    """The trap: skl2onnx 1.20 cannot convert HGB under protobuf 7. This fails if protobuf 7 comes back."""
    version = check_protobuf()
    assert version == google.protobuf.__version__
    assert version.split(".")[0] == "6", f"protobuf {version}: the lock must keep protobuf<7 (see DESIGN.md)"


def test_check_protobuf_refuses_protobuf_7(monkeypatch):
    monkeypatch.setattr(google.protobuf, "__version__", "7.34.0")
    with pytest.raises(ExportError, match="protobuf 7.34.0") as info:
        check_protobuf()
    assert isinstance(info.value, WorkbenchError) and "protobuf<7" in info.value.hint


def test_export_refuses_under_protobuf_7(monkeypatch, exported):
    fitted, _ = exported["hgb"]
    monkeypatch.setattr(google.protobuf, "__version__", "7.0.0")
    with pytest.raises(ExportError, match="protobuf 7"):
        export_onnx(fitted.model, features=fitted.features, numeric=[])


def test_hgb_converts_under_installed_protobuf(exported):
    _, export = exported["hgb"]
    graph = onnx.load_from_string(export.model_bytes).graph
    assert "TreeEnsembleClassifier" in {n.op_type for n in graph.node}
    assert export.protobuf_version == google.protobuf.__version__


# ---------------------------------------------------------------------------------------------- signature
@pytest.mark.parametrize("name", ["hgb", "logreg"])
def test_graph_has_one_typed_input_per_column_and_named_outputs(adult, exported, name):
    contract = adult[0]
    _, export = exported[name]
    assert isinstance(export, OnnxExport)
    model = onnx.load_from_string(export.model_bytes)
    onnx.checker.check_model(model)
    inputs = {i.name: i for i in model.graph.input}
    assert list(inputs) == contract.features
    numeric = set(contract.numeric_features)
    for col, spec in inputs.items():
        tensor = spec.type.tensor_type
        expected = onnx.TensorProto.FLOAT if col in numeric else onnx.TensorProto.STRING
        assert tensor.elem_type == expected, col
        dims = tensor.shape.dim
        assert len(dims) == 2 and not dims[0].HasField("dim_value") and dims[1].dim_value == 1, col
    assert [o.name for o in model.graph.output] == list(ONNX_OUTPUTS) == ["label", "probabilities"]
    assert export.inputs == [{"name": c, "kind": "numeric" if c in numeric else "categorical",
                              "onnx_type": "tensor(float)" if c in numeric else "tensor(string)"}
                             for c in contract.features]
    scorer = OnnxScorer(export.model_bytes, export.inputs)
    assert {i.name: i.type for i in scorer.session.get_inputs()} == {i["name"]: i["onnx_type"]
                                                                    for i in export.inputs}
    outs = {o.name: o.type for o in scorer.session.get_outputs()}
    assert outs == {"label": "tensor(int64)", "probabilities": "tensor(float)"}
    d = export.to_dict()
    assert d["outputs"] == ["label", "probabilities"] and d["sha256"] == export.sha256
    assert len(export.sha256) == 64 and export.size_bytes == len(export.model_bytes) and export.opset >= 15


def test_unconvertible_model_raises_export_error(adult):
    contract, X, y, _ = adult
    rule = fit_model("rule", X, y, seed=0, contract=contract)  # a baseline: no skl2onnx converter
    with pytest.raises(ExportError, match="could not convert") as info:
        export_onnx(rule.model, features=contract.features, numeric=contract.numeric_features)
    assert info.value.exit_code == 3 and info.value.hint


# ------------------------------------------------------------------------------------------- missing values
@pytest.mark.parametrize("name", ["hgb", "logreg"])
def test_all_missing_row_is_finite_and_equals_sklearn(adult, exported, name):
    contract = adult[0]
    fitted, export = exported[name]
    row = adult[3].head(1).copy()
    for c in contract.numeric_features:
        row[c] = np.nan
    for c in contract.categorical_features:
        row[c] = ""
    expected = fitted.positive_proba(row)
    scorer = OnnxScorer(export.model_bytes, export.inputs)
    from_frame = scorer.predict_proba({c: row[c].to_numpy() for c in contract.features})
    # The service's JSON path: None for every value (None -> NaN for numerics, "" for categoricals).
    from_json = scorer.predict_proba({c: [None] for c in contract.features})
    assert np.isfinite(from_frame).all() and np.isfinite(from_json).all()
    np.testing.assert_allclose(from_frame, expected, atol=1e-6)
    np.testing.assert_array_equal(from_frame, from_json)
