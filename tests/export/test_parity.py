"""The parity certificate: passes the real candidates, fails broken graphs, judges rare rows by its policy."""

from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import onnx
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from workbench.errors import ContractError, ParameterError
from workbench.export import ParityCertificate, edge_case_frame, export_onnx, judge_parity, parity_certificate
from workbench.export.onnx import ExportError
from workbench.modeling import ColumnRoles, column_roles, fit_model

THRESHOLD = 0.5


@pytest.fixture(scope="module")
def adult(adult_sample):
    """A 6,000-row Adult sample (4,000 train, 2,000 test): contract, X, y, X_test."""
    return adult_sample(6000, 4000, seed=0)


@pytest.fixture(scope="module")
def candidates(adult):
    """{name: (pipeline, export)} for both candidates."""
    contract, X, y, _ = adult
    out = {}
    for name in ("hgb", "logreg"):
        model = fit_model(name, X, y, seed=0, contract=contract).model
        out[name] = model, export_onnx(model, features=contract.features, numeric=contract.numeric_features)
    return out


@pytest.fixture(scope="module")
def certificates(adult, candidates):
    contract, _, _, X_test = adult
    return {name: parity_certificate(pipe, export, X_test, threshold=THRESHOLD, contract=contract)
            for name, (pipe, export) in candidates.items()}


# ---------------------------------------------------------------------------------------------- passing
@pytest.mark.parametrize("name", ["hgb", "logreg"])
def test_candidates_pass(adult, candidates, certificates, name):
    contract, _, _, X_test = adult
    cert = certificates[name]
    _, export = candidates[name]
    assert cert.passed, cert.failures
    assert cert.failures == [] and cert.rows == len(X_test)
    assert cert.label_agreement == 1.0 and cert.decision_agreement == 1.0
    assert cert.p99_abs_diff <= cert.tolerance == 1e-4
    assert cert.max_abs_diff <= cert.max_tolerance == 1e-2
    assert cert.onnx_sha256 == hashlib.sha256(export.model_bytes).hexdigest() == export.sha256
    assert cert.opset == export.opset and cert.threshold == THRESHOLD
    assert cert.versions["protobuf"].startswith("6.")
    assert cert.versions["onnxruntime"] and cert.versions["skl2onnx"]
    assert cert.float32["inputs_exact"]  # Adult's numerics are integers
    assert len(cert.worst_rows) == 5 and set(cert.worst_rows[0]["inputs"]) == set(contract.features)
    assert cert.created_at.endswith("+00:00") and cert.seconds > 0
    # every edge case agrees, and every kind and column is covered
    assert cert.edge_cases and all(c["ok"] for c in cert.edge_cases)
    kinds = {c["case"] for c in cert.edge_cases}
    assert kinds == {"missing_numeric", "extreme_numeric", "missing_categorical", "unseen_category",
                     "all_missing"}
    assert {c["column"] for c in cert.edge_cases} - {None} == set(contract.features)
    assert {c["base"] for c in cert.edge_cases} == {"typical", "borderline", "none"}
    assert "100%" in cert.policy and "p99" in cert.policy and "float32" in cert.policy


def test_certificate_views_and_round_trip(certificates, tmp_path):
    cert = certificates["hgb"]
    d = cert.to_dict()
    text = json.dumps(d, allow_nan=False)  # what promotion writes as parity.json
    for key in ("passed", "label_agreement", "max_abs_diff", "p99_abs_diff", "tolerance", "rows", "reason",
                "policy_short", "onnx_sha256", "edge_cases", "worst_rows", "versions", "created_at"):
        assert key in d, key
    path = cert.save(tmp_path / "parity.json")
    again = ParityCertificate.from_dict(json.loads(path.read_text()))
    assert again.to_dict() == json.loads(text)
    summary = cert.summary()
    assert summary["passed"] is True and summary["edge_cases"].endswith(f"/{len(cert.edge_cases)}")
    html = cert._repr_html_()
    assert "PASSED" in html and cert.onnx_sha256 in html and "Edge cases" in html


def test_edge_cases_can_be_skipped(adult, candidates):
    contract, _, _, X_test = adult
    pipe, export = candidates["logreg"]
    cert = parity_certificate(pipe, export, X_test.head(200), threshold=THRESHOLD, edge_cases=False)
    assert cert.passed and cert.edge_cases == [] and cert.rows == 200


# ---------------------------------------------------------------------------------------------- failing
def test_another_models_graph_fails_with_label_disagreement(adult, candidates):
    """The graph of a different fitted model, certified against the pipeline, must fail and say why."""
    _, _, _, X_test = adult
    hgb, _ = candidates["hgb"]
    _, logreg_export = candidates["logreg"]
    cert = parity_certificate(hgb, logreg_export, X_test, threshold=THRESHOLD)
    assert not cert.passed
    assert cert.label_agreement < 1.0 and cert.decision_agreement < 1.0
    assert any(f.startswith("label disagreement") for f in cert.failures), cert.failures
    assert "label disagreement" in cert.reason and "FAILED" in cert._repr_html_()


def _shift_intercept(export, delta: float):
    """The logreg graph with its LinearClassifier intercepts moved by ``delta`` on the logit scale."""
    model = onnx.load_from_string(export.model_bytes)
    node = next(n for n in model.graph.node if n.op_type == "LinearClassifier")
    attr = next(a for a in node.attribute if a.name == "intercepts")
    values = list(attr.floats)
    values[-1] += delta  # the positive class's intercept (binary: one or two values)
    attr.floats[:] = values
    return dataclasses.replace(export, model_bytes=model.SerializeToString())


def test_perturbed_weight_fails(adult, candidates):
    _, _, _, X_test = adult
    pipe, export = candidates["logreg"]
    broken = _shift_intercept(export, 3.0)
    cert = parity_certificate(pipe, broken, X_test, threshold=THRESHOLD)
    assert not cert.passed and cert.onnx_sha256 != export.sha256
    assert cert.decision_agreement < 1.0
    assert any("label disagreement" in f for f in cert.failures)


def test_small_systematic_shift_fails_on_p99(adult, candidates):
    """A shift too small to flip many labels still fails: the p99 rule catches systematic differences."""
    _, _, _, X_test = adult
    pipe, export = candidates["logreg"]
    cert = parity_certificate(pipe, _shift_intercept(export, 0.01), X_test, threshold=THRESHOLD,
                              edge_cases=False)
    assert not cert.passed
    assert cert.p99_abs_diff > 1e-4 and cert.max_abs_diff < 1e-2
    assert any(f.startswith("p99 |dp|") for f in cert.failures)


def test_native_categorical_hgb_fails(adult):
    """HGB with native categorical features behind an OrdinalEncoder: skl2onnx converts it, silently wrong.
    Only the certificate catches it (DESIGN.md, known traps)."""
    contract, X, y, X_test = adult
    num, cat = contract.numeric_features, contract.categorical_features
    impute = SimpleImputer(missing_values="", strategy="constant", fill_value="__missing__")
    encode = Pipeline([("impute", impute),
                       ("encode", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1))])
    prep = ColumnTransformer([("num", "passthrough", num), ("cat", encode, cat)], sparse_threshold=0.0)
    mask = [False] * len(num) + [True] * len(cat)
    pipe = Pipeline([("prep", prep), ("model", HistGradientBoostingClassifier(
        categorical_features=mask, max_iter=50, random_state=0))]).fit(X[num + cat], y)
    try:
        export = export_onnx(pipe, features=num + cat, numeric=num)
    except ExportError:
        return  # refusing to convert is also safe; converting must never pass silently
    cert = parity_certificate(pipe, export, X_test[num + cat], threshold=THRESHOLD, contract=contract)
    assert not cert.passed
    assert cert.label_agreement < 0.99
    assert any(f.startswith("label disagreement") for f in cert.failures)


class _MishandlesMissingAge:
    """A pipeline that scores NaN age differently from its ONNX graph (Adult's age is never missing, so
    only an edge case can reveal it)."""

    def __init__(self, pipe):
        self.pipe = pipe

    def predict_proba(self, X):
        p = self.pipe.predict_proba(X)
        bad = X["age"].isna().to_numpy()
        p[bad] = p[bad][:, ::-1]
        return p

    def predict(self, X):
        return self.predict_proba(X).argmax(axis=1)


def test_edge_case_failure_is_named(adult, candidates):
    contract, _, _, X_test = adult
    pipe, export = candidates["hgb"]
    assert not X_test["age"].isna().any()
    cert = parity_certificate(_MishandlesMissingAge(pipe), export, X_test, threshold=THRESHOLD,
                              contract=contract)
    assert not cert.passed and cert.label_agreement == 1.0  # the test split alone would pass
    bad = [c for c in cert.edge_cases if not c["ok"]]
    assert bad and {c["column"] for c in bad if c["case"] == "missing_numeric"} == {"age"}
    assert any("missing_numeric(age" in f for f in cert.failures), cert.failures


def test_pipeline_that_refuses_an_edge_case_fails(adult, candidates):
    class RefusesNaN(_MishandlesMissingAge):
        def predict_proba(self, X):
            if X.select_dtypes("number").isna().to_numpy().any():
                raise ValueError("Input X contains NaN")
            return self.pipe.predict_proba(X)

    contract, _, _, X_test = adult
    pipe, export = candidates["logreg"]
    cert = parity_certificate(RefusesNaN(pipe), export, X_test.head(300), threshold=THRESHOLD)
    assert not cert.passed
    refused = [c for c in cert.edge_cases if c["error"]]
    assert refused and all("ValueError" in c["error"] for c in refused)
    assert any("cannot score" in f for f in cert.failures)


# ---------------------------------------------------------------------------------------------- float32 trap
@pytest.fixture(scope="module")
def threshold_crossing():
    """A passthrough HGB on continuous data, and test rows of which three sit in the float64 gap just above
    the root split's threshold: float32 rounds them onto it, so the graph takes the other branch."""
    rng = np.random.default_rng(0)
    X = pd.DataFrame({"a": rng.normal(0.3, 0.1, 3000), "b": rng.normal(0.0, 1.0, 3000)})
    y = ((10 * X["a"] + X["b"] + rng.normal(0, 1, 3000)) > 3).astype(int).to_numpy()
    pipe = Pipeline([("prep", ColumnTransformer([("num", "passthrough", ["a", "b"])])),
                     ("model", HistGradientBoostingClassifier(max_iter=20, random_state=0))]).fit(X, y)
    root = pipe.named_steps["model"]._predictors[0][0].nodes[0]
    column = ["a", "b"][root["feature_idx"]]
    just_above = np.nextafter(float(root["num_threshold"]), np.inf)
    assert np.float32(just_above) <= np.float32(root["num_threshold"])  # the crossing exists
    X_test = X.iloc[:1000].reset_index(drop=True)
    X_test.loc[:2, column] = just_above
    return pipe, export_onnx(pipe, features=["a", "b"], numeric=["a", "b"]), X_test, column


def test_float32_threshold_crossing_is_explained_and_passes(threshold_crossing):
    pipe, export, X_test, column = threshold_crossing
    cert = parity_certificate(pipe, export, X_test, threshold=THRESHOLD)
    assert cert.passed, cert.failures
    assert cert.label_agreement == 1.0 and cert.p99_abs_diff < 1e-6
    assert cert.max_abs_diff > cert.tolerance  # the rare rows moved ...
    assert cert.rows_above_tolerance == cert.explained_by_float32 == 3  # ... and each is explained
    worst = cert.worst_rows[:3]
    assert {w["row"] for w in worst} == {0, 1, 2}
    assert all(w["explained_by"].startswith(f"{column}: ") and "float32" in w["explained_by"] for w in worst)
    assert not cert.float32["inputs_exact"] and cert.notes


# ---------------------------------------------------------------------------------------------- the policy
def _scores(n: int = 1000, seed: int = 0):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.02, 0.98, n)
    p = p[np.abs(p - THRESHOLD) > 0.02][:n]
    return p, p + rng.uniform(-1e-7, 1e-7, len(p))


def _judge(p_sk, p_ox, **kw):
    return judge_parity(p_sk, p_ox, (p_sk > THRESHOLD).astype(int), (p_ox > THRESHOLD).astype(int),
                        threshold=THRESHOLD, **kw)


def test_policy_passes_float32_noise():
    figures, failures = _judge(*_scores())
    assert failures == [] and figures["max_abs_diff"] <= 1e-7 and figures["label_agreement"] == 1.0


def test_policy_allows_a_rare_row_below_the_max_bound():
    p_sk, p_ox = _scores()
    p_ox[7] += 5e-3  # a float32 threshold crossing; no decision flips (rows are >= 0.02 from 0.5)
    figures, failures = _judge(p_sk, p_ox)
    assert failures == [] and figures["rows_above_tolerance"] == 1
    assert figures["max_abs_diff"] == pytest.approx(5e-3, rel=1e-3)
    assert figures["near_threshold"]["within_observed_max"] == 0


def test_policy_fails_a_large_row_unless_explained():
    p_sk, p_ox = _scores()
    p_ox[7] += 1.5e-2
    _, failures = _judge(p_sk, p_ox)
    assert len(failures) == 1 and failures[0].startswith("max |dp|")
    explained = np.zeros(len(p_sk), dtype=bool)
    explained[7] = True
    figures, failures = _judge(p_sk, p_ox, explained=explained)
    assert failures == [] and figures["explained_by_float32"] == 1


def test_policy_fails_any_flip_even_a_tiny_one():
    p_sk, p_ox = _scores()
    p_sk[3], p_ox[3] = THRESHOLD - 5e-8, THRESHOLD + 5e-8
    figures, failures = _judge(p_sk, p_ox)
    assert figures["decision_disagreements"] == 1 and figures["max_abs_diff"] < 1e-6
    assert any(f.startswith("label disagreement") for f in failures)
    assert figures["near_threshold"]["closest"] == pytest.approx(5e-8)


def test_policy_fails_a_systematic_shift_on_p99():
    p_sk, p_ox = _scores()
    p_ox[::40] += 5e-4  # 2.5% of rows: more than the 1% the p99 leaves to rare rows
    _, failures = _judge(p_sk, p_ox)
    assert any(f.startswith("p99") for f in failures)


def test_policy_fails_non_finite_probabilities():
    p_sk, p_ox = _scores()
    p_ox[0] = np.nan
    figures, failures = _judge(p_sk, p_ox)
    assert figures["non_finite"] == 1 and any("non-finite" in f for f in failures)


# ---------------------------------------------------------------------------------------------- edge cases
def test_edge_cases_are_deterministic_and_cover_every_column(adult):
    contract, _, _, X_test = adult
    roles = column_roles(contract)
    frame, cases = edge_case_frame(X_test, roles, contract=contract)
    again, cases_again = edge_case_frame(X_test, roles, contract=contract)
    pd.testing.assert_frame_equal(frame, again)
    assert cases == cases_again or json.dumps(cases, default=str) == json.dumps(cases_again, default=str)
    assert list(frame.columns) == roles.features and len(frame) == len(cases)
    assert frame[list(roles.numeric)].dtypes.eq(np.float64).all()
    assert not frame[list(roles.categorical)].isna().any().any()
    age = contract.column("age")
    ages = {c["value"] for c in cases if c["case"] == "extreme_numeric" and c["column"] == "age"}
    assert ages >= {age.min - 1, age.max + 1, 0.0, 1e9, -1e9, 1e-30}
    for c in (c for c in cases if c["case"] == "unseen_category"):
        assert c["value"] not in set(contract.column(c["column"]).categories) | set(X_test[c["column"]])
    all_missing = frame.iloc[[i for i, c in enumerate(cases) if c["case"] == "all_missing"]]
    assert len(all_missing) == 1 and all_missing[list(roles.numeric)].isna().all().all()
    assert (all_missing[list(roles.categorical)] == "").all().all()


def test_edge_cases_from_a_plain_dict():
    X = pd.DataFrame({"x": [1.0, 2.0, np.nan], "c": pd.Series(["a", "", "__unseen__"], dtype=object)})
    roles = ColumnRoles(("x",), ("c",), ("x", "c"))
    frame, cases = edge_case_frame(X, roles, contract={"ranges": {"x": [0, 10]}, "categories": {"c": ["a"]}})
    xs = [c["value"] for c in cases if c["case"] == "extreme_numeric"]
    assert xs == [-1.0, 11.0, 0.0, 1e9, -1e9, 1e-30]
    unseen = next(c["value"] for c in cases if c["case"] == "unseen_category")
    assert unseen == "__unseen___"  # "__unseen__" occurs in the data, so it is not unseen
    assert frame.loc[0, "x"] != frame.loc[0, "x"]  # first case: missing x (NaN)


# ---------------------------------------------------------------------------------------------- refusals
def test_refuses_bad_inputs(adult, candidates):
    _, _, _, X_test = adult
    pipe, export = candidates["logreg"]
    X = X_test.head(50)
    with pytest.raises(ParameterError, match="threshold"):
        parity_certificate(pipe, export, X, threshold=1.5)
    with pytest.raises(ParameterError, match="tolerance"):
        parity_certificate(pipe, export, X, threshold=0.5, tolerance=0.1, max_tolerance=0.01)
    with pytest.raises(ContractError, match="lacks feature columns"):
        parity_certificate(pipe, export, X.drop(columns=["age"]), threshold=0.5)
    with_none = X.copy()
    with_none.loc[0, "sex"] = None
    with pytest.raises(ContractError, match="None/NaN"):
        parity_certificate(pipe, export, with_none, threshold=0.5)
    with pytest.raises(ContractError, match="no rows"):
        parity_certificate(pipe, export, X.head(0), threshold=0.5)
    with pytest.raises(ExportError, match="cannot load"):
        parity_certificate(pipe, dataclasses.replace(export, model_bytes=b"not onnx"), X, threshold=0.5)
