"""ONNX export, the scorer and the parity certificate for multiclass classification and regression.

Real pipelines shaped like ``workbench.modeling.candidates`` (ColumnTransformer with explicit columns, median
imputation [+ scaling], "" -> "__missing__" then one-hot / ordinal encoding), fitted here on synthetic data
with numeric and categorical columns and missing values; multiclass models are trained on int class codes.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from workbench.errors import ParameterError
from workbench.export import ParityCertificate, export_onnx, judge_parity, parity_certificate, task_policy
from workbench.export.onnx import ExportError
from workbench.serving import OnnxScorer

NUM, CAT = ["x1", "x2", "x3"], ["c1", "c2"]
FEATURES = NUM + CAT
CLASSES = ["high", "low", "mid"]  # sorted class names; codes 0..2
MC, REG = "multiclass_classification", "regression"


# ---------------------------------------------------------------------------------------------- fixtures
def _frame(n: int, seed: int) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Model frame with continuous numerics (not exact in float32), NaN and "" missing values; a 3-class
    target (int codes) and a continuous target on the scale of house prices' thousands."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"x1": rng.normal(0, 1, n), "x2": rng.uniform(0, 100, n), "x3": rng.exponential(2, n),
                      "c1": pd.Series(rng.choice(["a", "b", "c", "d"], n), dtype=object),
                      "c2": pd.Series(rng.choice(["u", "v", "w"], n), dtype=object)})
    X.loc[rng.random(n) < 0.1, "x1"] = np.nan
    X.loc[rng.random(n) < 0.05, "x3"] = np.nan
    X.loc[rng.random(n) < 0.1, "c1"] = ""
    signal = (1.5 * X["x1"].fillna(0) + 0.03 * X["x2"] - 0.4 * X["x3"].fillna(2)
              + X["c1"].map({"a": 0.0, "b": 1.0, "c": -1.0, "d": 0.5, "": 0.2})
              + X["c2"].map({"u": 0.0, "v": 0.7, "w": -0.7})).to_numpy()
    y_reg = 250.0 + 40.0 * signal + rng.normal(0, 12, n)
    noisy = signal + rng.normal(0, 0.7, n)
    y_cls = np.digitize(noisy, np.quantile(noisy, [0.33, 0.66]))
    return X, y_cls.astype(int), y_reg


def _prep(encoding: str) -> ColumnTransformer:
    numeric = [("impute", SimpleImputer(strategy="median"))]
    if encoding == "onehot":
        numeric.append(("scale", StandardScaler()))
        encoder = OneHotEncoder(handle_unknown="ignore", sparse_output=False)
    else:
        encoder = OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1)
    impute = SimpleImputer(missing_values="", strategy="constant", fill_value="__missing__")
    return ColumnTransformer([("num", Pipeline(numeric), NUM),
                              ("cat", Pipeline([("impute", impute), ("encode", encoder)]), CAT)],
                             remainder="drop", sparse_threshold=0.0)


def _pipeline(name: str) -> Pipeline:
    model = {"hgb_mc": lambda: HistGradientBoostingClassifier(max_iter=60, random_state=0),
             "logreg_mc": lambda: LogisticRegression(max_iter=1000, random_state=0),
             "hgb_reg": lambda: HistGradientBoostingRegressor(max_iter=60, random_state=0),
             "ridge": lambda: Ridge()}[name]()
    return Pipeline([("prep", _prep("onehot" if name in ("logreg_mc", "ridge") else "ordinal")),
                     ("model", model)])


@pytest.fixture(scope="module")
def data():
    X, y_cls, y_reg = _frame(3000, seed=0)
    return {"X": X.iloc[:2000], "y_cls": y_cls[:2000], "y_reg": y_reg[:2000], "X_test": X.iloc[2000:],
            "target_std": float(np.std(y_reg[:2000]))}


@pytest.fixture(scope="module")
def models(data):
    """{name: (pipeline, export, task)} for the four candidates."""
    out = {}
    for name in ("hgb_mc", "logreg_mc", "hgb_reg", "ridge"):
        task = MC if name.endswith("_mc") else REG
        y = data["y_cls"] if task == MC else data["y_reg"]
        pipe = _pipeline(name).fit(data["X"], y)
        out[name] = pipe, export_onnx(pipe, features=FEATURES, numeric=NUM, task=task), task
    return out


def _certify(pipe, export, data, task, X=None, **kw):
    extra = {"classes": CLASSES} if task == MC else {"target_std": data["target_std"]}
    return parity_certificate(pipe, export, data["X_test"] if X is None else X, task=task, **{**extra, **kw})


@pytest.fixture(scope="module")
def certificates(models, data):
    return {name: _certify(pipe, export, data, task) for name, (pipe, export, task) in models.items()}


def _columns(X: pd.DataFrame) -> dict:
    return {c: X[c].to_numpy() for c in FEATURES}


# ---------------------------------------------------------------------------------------------- export
@pytest.mark.parametrize("name", ["hgb_mc", "logreg_mc"])
def test_multiclass_graph_outputs_label_and_probabilities(models, name):
    _, export, _ = models[name]
    model = onnx.load_from_string(export.model_bytes)
    assert [o.name for o in model.graph.output] == ["label", "probabilities"] == list(export.outputs)
    scorer = OnnxScorer(export.model_bytes, export.inputs, task=MC)
    outs = {o.name: (o.type, o.shape[1:]) for o in scorer.session.get_outputs()}
    assert outs["label"][0] == "tensor(int64)" and outs["probabilities"] == ("tensor(float)", [3])
    assert scorer.n_classes == 3
    d = export.to_dict()
    assert d["task"] == MC and d["outputs"] == ["label", "probabilities"]
    assert [i["name"] for i in d["inputs"]] == FEATURES


@pytest.mark.parametrize("name", ["hgb_reg", "ridge"])
def test_regression_graph_output_is_renamed_prediction(models, name):
    _, export, _ = models[name]
    model = onnx.load_from_string(export.model_bytes)
    onnx.checker.check_model(model)
    assert [o.name for o in model.graph.output] == ["prediction"]
    assert "variable" not in {o for n in model.graph.node for o in n.output}
    scorer = OnnxScorer(export.model_bytes, export.inputs, task=REG)
    (out,) = scorer.session.get_outputs()
    assert out.name == "prediction" and out.type == "tensor(float)" and out.shape[1:] == [1]
    assert export.to_dict()["task"] == REG and export.to_dict()["outputs"] == ["prediction"]


def test_export_refuses_a_model_that_does_not_fit_the_task(models, data):
    mc, _, _ = models["hgb_mc"]
    reg, _, _ = models["ridge"]
    with pytest.raises(ExportError, match="classifier, but the task is regression"):
        export_onnx(mc, features=FEATURES, numeric=NUM, task=REG)
    with pytest.raises(ExportError, match="not a fitted classifier"):
        export_onnx(reg, features=FEATURES, numeric=NUM, task=MC)
    named = _pipeline("logreg_mc").fit(data["X"], np.asarray(CLASSES)[data["y_cls"]])  # string classes
    with pytest.raises(ExportError, match="int codes"):
        export_onnx(named, features=FEATURES, numeric=NUM, task=MC)
    with pytest.raises(ParameterError, match="unknown task"):
        export_onnx(mc, features=FEATURES, numeric=NUM, task="ranking")


# ---------------------------------------------------------------------------------------------- scorer
def test_scorer_scores_per_task(models, data):
    X = data["X_test"].head(300)
    pipe, export, _ = models["logreg_mc"]
    scorer = OnnxScorer(export.model_bytes, export.inputs, task=MC)
    proba = scorer.scores(_columns(X))
    assert proba.dtype == np.float64 and proba.shape == (300, 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(proba, pipe.predict_proba(X), atol=1e-5)
    raw = scorer.run_raw_scores(scorer.feeds(_columns(X)))
    assert raw.dtype == np.float32 and raw.shape == (300, 3)
    np.testing.assert_array_equal(scorer.finish(raw), proba)
    np.testing.assert_array_equal(scorer.labels(_columns(X)), pipe.predict(X))

    pipe, export, _ = models["ridge"]
    scorer = OnnxScorer(export.model_bytes, export.inputs, task=REG)
    yhat = scorer.scores(_columns(X))
    assert yhat.dtype == np.float64 and yhat.shape == (300,)
    np.testing.assert_allclose(yhat, pipe.predict(X), atol=1e-3)
    raw = scorer.run_raw_scores(scorer.feeds(_columns(X)))
    assert raw.shape == (300,) and raw.dtype == np.float32
    # the service's JSON path: None everywhere is a finite prediction (imputed in the graph)
    assert np.isfinite(scorer.scores({c: [None] for c in FEATURES})).all()
    with pytest.raises(ValueError, match="no label output"):
        scorer.labels(_columns(X))
    with pytest.raises(ValueError, match="'probabilities'"):
        OnnxScorer(export.model_bytes, export.inputs, task=MC)  # a regression graph is not a classifier


def test_scorer_binary_scores_match_the_existing_methods(data):
    X, y = data["X"], (data["y_cls"] == 2).astype(int)
    pipe = Pipeline([("prep", _prep("onehot")), ("model", LogisticRegression(max_iter=1000))]).fit(X, y)
    export = export_onnx(pipe, features=FEATURES, numeric=NUM)
    assert export.task == "binary_classification" and export.to_dict()["outputs"] == ["label", "probabilities"]
    scorer = OnnxScorer(export.model_bytes, export.inputs)
    cols = _columns(data["X_test"].head(200))
    p = scorer.predict_proba(cols)
    np.testing.assert_array_equal(scorer.scores(cols), p.astype(np.float64))
    np.testing.assert_array_equal(scorer.run_raw_scores(scorer.feeds(cols)), scorer.run_raw(scorer.feeds(cols)))


def test_scorer_never_imports_sklearn():
    code = "import sys, workbench.serving.scorer; assert 'sklearn' not in sys.modules, 'sklearn imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------------------------------------- passing
@pytest.mark.parametrize("name", ["hgb_mc", "logreg_mc"])
def test_multiclass_candidates_pass(certificates, models, name):
    cert = certificates[name]
    assert cert.passed, cert.failures
    assert cert.task == MC and cert.classes == CLASSES and cert.threshold is None and cert.target_std is None
    assert cert.label_agreement == 1.0 and cert.decision_agreement == 1.0
    assert cert.p99_abs_diff <= cert.tolerance == 1e-4 and cert.max_abs_diff <= cert.max_tolerance == 1e-2
    assert cert.onnx_sha256 == models[name][1].sha256 and not cert.float32["inputs_exact"]
    assert cert.edge_cases and all(c["ok"] for c in cert.edge_cases), [c for c in cert.edge_cases if not c["ok"]]
    assert {c["base"] for c in cert.edge_cases} == {"typical", "borderline", "none"}
    assert {c["column"] for c in cert.edge_cases} - {None} == set(FEATURES)
    edge = cert.edge_cases[0]
    assert len(edge["p_sklearn"]) == len(edge["p_onnx"]) == 3 and isinstance(edge["decision_onnx"], int)
    assert len(cert.worst_rows[0]["p_onnx"]) == 3
    assert "argmax" in cert.policy and "max-over-classes" in cert.policy and "float32" in cert.policy
    assert "argmax" in cert.policy_short and cert.headline.startswith("labels 100.000%, p99 |dp|")


@pytest.mark.parametrize("name", ["hgb_reg", "ridge"])
def test_regression_candidates_pass(certificates, data, name):
    cert = certificates[name]
    std = data["target_std"]
    assert cert.passed, cert.failures
    assert cert.task == REG and cert.target_std == std and cert.classes is None
    assert cert.label_agreement is None and cert.decision_agreement is None and cert.near_threshold is None
    assert cert.tolerance == pytest.approx(1e-4 * std) and cert.max_tolerance == pytest.approx(1e-2 * std)
    assert cert.p99_abs_diff <= cert.tolerance and np.isfinite(cert.max_abs_diff)
    assert all(c["ok"] for c in cert.edge_cases), [c for c in cert.edge_cases if not c["ok"]]
    assert {c["base"] for c in cert.edge_cases} == {"typical", "extreme_prediction", "none"}
    assert "label_sklearn" not in cert.edge_cases[0] and "yhat_onnx" in cert.worst_rows[0]
    assert "target_std" in cert.policy and "finite predictions" in cert.policy
    assert cert.headline.startswith("p99 |dyhat|") and "x target_std" in cert.headline


def test_ridge_extreme_inputs_are_explained_by_float32_output_precision(certificates):
    """x2 = 1e9 makes Ridge predict ~1e8: float32 cannot answer that within 1e-2 x target_std, and the
    certificate says so instead of failing the row."""
    cert = certificates["ridge"]
    huge = [c for c in cert.edge_cases if c["case"] == "extreme_numeric" and c["value"] == 1e9]
    assert huge and all(c["ok"] for c in huge)
    explained = [c for c in huge if c["abs_diff"] > cert.max_tolerance]
    assert explained and all(c["explained_by"].startswith("float32 output precision") for c in explained)


@pytest.mark.parametrize("name", ["logreg_mc", "ridge"])
def test_certificate_round_trip_and_views(certificates, tmp_path, name):
    cert = certificates[name]
    text = json.dumps(cert.to_dict(), allow_nan=False)
    again = ParityCertificate.from_dict(json.loads(cert.save(tmp_path / "parity.json").read_text()))
    assert again.to_dict() == json.loads(text) and again.task == cert.task
    assert cert.summary()["task"] == cert.task
    html = cert._repr_html_()
    assert "PASSED" in html and cert.task in html and ("dyhat" in html) == (name == "ridge")


def test_old_binary_certificate_dict_still_loads(certificates):
    """A parity.json written before round 2 has no task, classes or target_std: it is binary."""
    d = certificates["logreg_mc"].to_dict()
    old = {k: v for k, v in d.items() if k not in ("task", "classes", "target_std", "headline")}
    old.update(threshold=0.5, policy="(binary policy text)")
    cert = ParityCertificate.from_dict(old)
    assert cert.task == "binary_classification" and cert.classes is None
    assert cert.policy_short.startswith("100% labels at 0.5")


# ---------------------------------------------------------------------------------------------- failing
def _replace_floats(export, op_type: str, attribute: str, change):
    model = onnx.load_from_string(export.model_bytes)
    node = next(n for n in model.graph.node if n.op_type == op_type)
    attr = next(a for a in node.attribute if a.name == attribute)
    attr.floats[:] = change(list(attr.floats))
    return dataclasses.replace(export, model_bytes=model.SerializeToString())


def test_multiclass_perturbed_intercept_fails(models, data):
    pipe, export, _ = models["logreg_mc"]
    broken = _replace_floats(export, "LinearClassifier", "intercepts", lambda v: [v[0] + 2.0, *v[1:]])
    cert = _certify(pipe, broken, data, MC)
    assert not cert.passed and cert.label_agreement < 1.0 and cert.decision_agreement < 1.0
    assert any(f.startswith("label disagreement") for f in cert.failures)
    assert any("argmax" in f for f in cert.failures)


def test_multiclass_small_shift_fails_on_p99(models, data):
    pipe, export, _ = models["logreg_mc"]
    broken = _replace_floats(export, "LinearClassifier", "intercepts", lambda v: [v[0] + 0.01, *v[1:]])
    cert = _certify(pipe, broken, data, MC, edge_cases=False)
    assert not cert.passed and cert.p99_abs_diff > 1e-4 and cert.max_abs_diff < 1e-2
    assert any(f.startswith("p99 |dp|") for f in cert.failures)


def test_multiclass_native_categorical_hgb_fails(data):
    """HGB's native categorical support converts silently wrong (DESIGN.md): the certificate catches it."""
    impute = SimpleImputer(missing_values="", strategy="constant", fill_value="__missing__")
    encode = Pipeline([("impute", impute),
                       ("encode", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))])
    prep = ColumnTransformer([("num", "passthrough", NUM), ("cat", encode, CAT)], sparse_threshold=0.0)
    model = HistGradientBoostingClassifier(categorical_features=[False] * 3 + [True] * 2, max_iter=60,
                                           random_state=0)
    pipe = Pipeline([("prep", prep), ("model", model)]).fit(data["X"], data["y_cls"])
    try:
        export = export_onnx(pipe, features=FEATURES, numeric=NUM, task=MC)
    except ExportError:
        return  # refusing is safe; converting must never pass silently
    cert = _certify(pipe, export, data, MC)
    assert not cert.passed and cert.label_agreement < 1.0


def test_regression_perturbed_leaf_fails_unexplained(models, data):
    """One leaf of the first tree moved by 0.1 x target_std: every row reaching it differs beyond the max
    bound and no float32 rounding explains it."""
    pipe, export, _ = models["hgb_reg"]
    std = data["target_std"]
    broken = _replace_floats(export, "TreeEnsembleRegressor", "target_weights",
                             lambda v: [v[0] + 0.1 * std, *v[1:]])
    cert = _certify(pipe, broken, data, REG)
    assert not cert.passed and cert.max_abs_diff > cert.max_tolerance
    assert any(f.startswith("max |dyhat|") and "not explained" in f for f in cert.failures), cert.failures
    assert cert.worst_rows[0]["explained_by"] is None


def test_regression_shifted_intercept_fails_on_p99(models, data):
    pipe, export, _ = models["ridge"]
    shift = 1e-3 * data["target_std"]  # 10x the p99 bound, well within the max bound
    broken = _replace_floats(export, "LinearRegressor", "intercepts", lambda v: [v[0] + shift])
    cert = _certify(pipe, broken, data, REG, edge_cases=False)
    assert not cert.passed and cert.max_abs_diff < cert.max_tolerance
    assert any(f.startswith("p99 |dyhat|") and "x target_std" in f for f in cert.failures)


# ---------------------------------------------------------------------------------------------- the policy
def test_regression_tolerance_scales_with_target_std(models, data):
    """The same graph, the same differences: the verdict depends on the target's spread, not its unit."""
    pipe, export, _ = models["ridge"]
    X = data["X_test"].head(400)
    ok = _certify(pipe, export, data, REG, X=X, edge_cases=False)
    tiny = _certify(pipe, export, data, REG, X=X, edge_cases=False, target_std=1e-3)
    assert ok.passed and not tiny.passed
    assert tiny.max_abs_diff == ok.max_abs_diff and tiny.p99_abs_diff == ok.p99_abs_diff
    assert tiny.tolerance == pytest.approx(1e-7) and ok.tolerance == pytest.approx(1e-4 * data["target_std"])
    assert any(f.startswith("p99 |dyhat|") for f in tiny.failures)

    rng = np.random.default_rng(0)
    y = rng.normal(0, 1, 1000)
    shifted = y + 5e-5  # half the p99 bound at std 1
    for std, passes in ((1.0, True), (1000.0, True), (0.1, False)):
        _, failures = judge_parity(y * std, shifted * std if std != 0.1 else shifted, None, None,
                                   task=REG, target_std=std)
        assert (failures == []) == passes, (std, failures)


def test_multiclass_judge_uses_the_whole_vector():
    rng = np.random.default_rng(1)
    p = rng.dirichlet([2, 2, 2], 1000)
    labels = p.argmax(axis=1)
    figures, failures = judge_parity(p, p + 1e-8, labels, labels, task=MC, classes=CLASSES)
    assert failures == [] and figures["label_agreement"] == 1.0
    q = p.copy()
    q[5] = q[5][::-1]  # one row's vector reordered: a large difference in two classes
    figures, failures = judge_parity(p, q, labels, labels, task=MC, classes=CLASSES)
    assert figures["max_abs_diff"] == pytest.approx(np.abs(p[5] - p[5][::-1]).max())
    assert any(f.startswith("max |dp|") for f in failures)
    q = p.copy()
    q[7, 0] = np.nan
    figures, failures = judge_parity(p, q, labels, labels, task=MC)
    assert figures["non_finite"] == 1 and any("non-finite probabilities" in f for f in failures)


def test_parameters_are_checked(models, data):
    pipe, export, _ = models["ridge"]
    X = data["X_test"].head(50)
    with pytest.raises(ParameterError, match="target_std"):
        parity_certificate(pipe, export, X, task=REG)
    with pytest.raises(ParameterError, match="target_std"):
        parity_certificate(pipe, export, X, task=REG, target_std=0.0)
    with pytest.raises(ParameterError, match="made for regression"):
        parity_certificate(pipe, export, X, task=MC)
    mc_pipe, mc_export, _ = models["logreg_mc"]
    with pytest.raises(ParameterError, match="at least 3 classes"):
        parity_certificate(mc_pipe, mc_export, X, task=MC, classes=["a", "b"])
    with pytest.raises(ParameterError, match="but there are 4 classes"):
        parity_certificate(mc_pipe, mc_export, X, task=MC, classes=["a", "b", "c", "d"])
    with pytest.raises(ParameterError, match="threshold"):
        task_policy("binary_classification")
    with pytest.raises(ParameterError, match="unknown task"):
        task_policy("ranking")
