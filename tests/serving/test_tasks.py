"""Multiclass and regression models through the serving path: serving.json, the Predictor in-process (tier 1),
the prediction log and drift/feedback on it, and a real ``bentoml serve`` (tier 3)."""

from __future__ import annotations

import json
import re
import shutil

import httpx
import numpy as np
import polars as pl
import pytest

from workbench.monitoring.log import read_log
from workbench.serving import ModelVerificationError, Predictor, ServingConfig
from workbench.serving.guard import MISSING, OUT_OF_RANGE, UNSEEN_CATEGORY
from workbench.serving.schema import (
    MulticlassPredictionResponse,
    PredictionResponse,
    RegressionPredictionResponse,
    response_model,
)

from .conftest import TASK_CLASSES

TASKS = ["multiclass_classification", "regression"]


@pytest.fixture(scope="module", params=TASKS)
def package(request, multiclass_package, regression_package):
    return multiclass_package if request.param == "multiclass_classification" else regression_package


@pytest.fixture(scope="module")
def predictor(package) -> Predictor:
    return Predictor.load(package.path, tag=package.tag)


def _body(obj) -> bytes:
    return json.dumps(obj).encode()


def _ok(reply) -> dict:
    assert reply.status == 200, reply.body
    return json.loads(reply.body)


def _scores(out: dict, task: str) -> np.ndarray:
    if task == "regression":
        return np.array([p["prediction"] for p in out["predictions"]])
    return np.array([[p["probabilities"][c] for c in TASK_CLASSES] for p in out["predictions"]])


# ----------------------------------------------------------------------------------------- serving.json
def _binary_cfg(**changes) -> dict:
    cfg = {"model_name": "m", "onnx_sha256": "0" * 64, "inputs": [{"name": "x", "kind": "numeric"}],
           "threshold": 0.5, "positive_label": "yes", "negative_label": "no"}
    cfg.update(changes)
    return {k: v for k, v in cfg.items() if v is not ...}


def test_serving_config_defaults_to_binary_and_validates_per_task():
    cfg = ServingConfig.model_validate(_binary_cfg())
    assert cfg.task == "binary_classification" and cfg.classes is None
    with pytest.raises(ValueError, match="needs threshold, positive_label"):
        ServingConfig.model_validate(_binary_cfg(threshold=..., positive_label=...))
    base = _binary_cfg(threshold=..., positive_label=..., negative_label=...)
    mc = ServingConfig.model_validate({**base, "task": "multiclass_classification", "classes": [1, 2, 3]})
    assert mc.classes == ["1", "2", "3"] and mc.threshold is None
    with pytest.raises(ValueError, match="needs 'classes'"):
        ServingConfig.model_validate({**base, "task": "multiclass_classification"})
    with pytest.raises(ValueError, match="duplicate classes"):
        ServingConfig.model_validate({**base, "task": "multiclass_classification", "classes": ["a", "b", "a"]})
    reg = ServingConfig.model_validate({**base, "task": "regression", "target_std": 3.5})
    assert reg.target_std == 3.5
    with pytest.raises(ValueError):
        ServingConfig.model_validate({**base, "task": "ranking"})


def test_response_model_per_task(package):
    cfg = ServingConfig.model_validate(package.serving)
    model = response_model(cfg)
    schema = json.dumps(model.model_json_schema())
    if package.task == "regression":
        assert model is RegressionPredictionResponse and '"prediction"' in schema and "threshold" not in schema
    else:
        assert issubclass(model, MulticlassPredictionResponse) and '"probabilities"' in schema
        assert all(f'"{c}"' in schema for c in TASK_CLASSES)  # the label's enum
    assert response_model(ServingConfig.model_validate(_binary_cfg())) is PredictionResponse


# ----------------------------------------------------------------------------------------- tier 1
def test_load_self_tests(predictor, package):
    assert predictor.ready and predictor.answers.task == package.task
    predictor.self_test()


def test_batch_answers_equal_the_onnx_session_row_for_row(predictor, package):
    out = _ok(predictor.handle(_body(package.records)))
    assert set(out) == {"model_version", "request_id", "predictions"}
    got = _scores(out, package.task)
    want = package.session_scores()
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-12)
    if package.task == "regression":
        np.testing.assert_allclose(got, package.pipeline.predict(package.X_test), rtol=1e-5, atol=1e-4)
        assert all(set(p) == {"prediction", "flags"} for p in out["predictions"])
    else:
        np.testing.assert_allclose(got.sum(axis=1), 1.0, rtol=0, atol=1e-6)
        labels = [p["label"] for p in out["predictions"]]
        assert labels == [TASK_CLASSES[k] for k in want.argmax(axis=1)]
        np.testing.assert_allclose(got, package.pipeline.predict_proba(package.X_test), atol=1e-5)
        assert all(set(p) == {"label", "probabilities", "flags"} and list(p["probabilities"]) == TASK_CLASSES
                   for p in out["predictions"])


def test_single_records_take_the_fast_path_and_match_the_batch(predictor, package):
    recs = package.records[:15]
    batch = _scores(_ok(predictor.handle(_body(recs))), package.task)
    singles = [_ok(predictor.handle(_body(r))) for r in recs]
    one = np.concatenate([_scores(s, package.task) for s in singles])
    np.testing.assert_allclose(one, batch, rtol=1e-6, atol=1e-6)  # float32: batched kernels sum in another order
    if package.task != "regression":
        np.testing.assert_allclose(one.sum(axis=1), 1.0, rtol=0, atol=1e-6)
    assert predictor.predict(recs[0])["predictions"] == singles[0]["predictions"]


def test_unseen_and_missing_values_are_flagged_not_crashing(predictor, package):
    spec = {i.name: i for i in predictor.config.inputs}
    rec = dict(package.records[0], colour="ultraviolet", region=None, size=spec["size"].max + 100, weight=None)
    for body in (rec, [package.records[1], rec]):
        out = _ok(predictor.handle(_body(body)))
        pred = out["predictions"][-1]
        assert pred["flags"] == {"colour": UNSEEN_CATEGORY, "region": MISSING, "size": OUT_OF_RANGE,
                                 "weight": MISSING}
        if package.task == "regression":
            assert np.isfinite(pred["prediction"])
        else:
            assert sum(pred["probabilities"].values()) == pytest.approx(1.0, abs=1e-6)
            assert pred["label"] == max(TASK_CLASSES, key=pred["probabilities"].__getitem__)
    allnull = {i.name: None for i in predictor.config.inputs}
    (pred,) = _ok(predictor.handle(_body(allnull)))["predictions"]
    assert set(pred["flags"].values()) == {MISSING}


def test_bad_requests_are_refused_as_for_binary(predictor, package):
    reply = predictor.handle(_body(dict(package.records[0], size="12")))
    assert reply.status == 422 and "field 'size' should be a number" in json.loads(reply.body)["error"]


def test_a_graph_without_the_task_output_is_refused(package, tmp_path):
    """A multiclass serving.json over a regression graph (or the reverse) fails verification at load."""
    other = "regression" if package.task != "regression" else "multiclass_classification"
    dest = tmp_path / "pkg"
    shutil.copytree(package.path, dest)
    cfg = json.loads((dest / "serving.json").read_text())
    cfg.update(task=other, classes=TASK_CLASSES)
    (dest / "serving.json").write_text(json.dumps(cfg))
    with pytest.raises(ModelVerificationError):
        Predictor.load(dest)


def test_non_finite_or_broken_outputs_fail_loudly(predictor, package, monkeypatch):
    n = 2
    broken = np.full(n, np.nan) if package.task == "regression" else np.full((n, 3), np.nan)
    monkeypatch.setattr(predictor, "_run", lambda feeds: broken)
    with pytest.raises(ModelVerificationError, match="non-finite"):
        predictor.handle(_body(package.records[:n]))


@pytest.fixture(params=["binary_classification", *TASKS])
def any_package(request, serving_package, multiclass_package, regression_package):
    return {"binary_classification": serving_package, "multiclass_classification": multiclass_package,
            "regression": regression_package}[request.param]


def test_one_record_formats_answer_and_log_exactly_as_the_general_path(any_package, tmp_path):
    """A clean single record is answered from the formats (``Predictor._one_path_for``): its reply and its log
    line must be those of the general path byte for byte -- the same record while the one-record buffers are
    taken (the columnar path), the Python path, a batch of one -- whatever the request id holds. Flagged
    records (each kind of flag), batches and busy buffers take the general path."""
    from pydantic_core import to_json

    from workbench.monitoring.log import PredictionLog

    class CountingLog(PredictionLog):  # the formats write lines themselves; the general path appends outputs
        def __init__(self, *a, **k):
            super().__init__(*a, **k)
            self.written, self.appended = 0, 0

        def write_line(self, data, rows):
            self.written += 1
            return super().write_line(data, rows)

        def append_outputs(self, *a, **k):
            self.appended += 1
            return super().append_outputs(*a, **k)

    p = Predictor.load(any_package.path, tag=any_package.tag)
    p.log = CountingLog(p.tag, root=tmp_path)
    spec = {i.name: i for i in p.config.inputs}
    num, cat = p.guard.numeric[0], p.guard.categorical[0]
    base = any_package.records
    recs = [*base[:10], dict(base[0], **{num: None}), dict(base[1], **{cat: "never seen"}), dict(base[2], **{cat: ""}),
            dict(base[3], **{num: spec[num].max + 1}), dict(base[4], **{num: spec[num].min - 1})]
    clean = [not p.guard.check_one(p._get_numeric(r), p._get_categorical(r)) for r in recs]
    assert sum(clean) >= 5 and not any(clean[10:])
    taken = []
    ids = ["0123abcd", 'q"uote\\back', "com,ma", "\u00fcn\u00efc\u20acde", "%s%b%%", "x" * 100]
    replies = []
    for k, rec in enumerate(recs):
        body, rid = _body(rec), ids[k % len(ids)]
        before = p.log.written - p.log.appended
        fast = p.handle(body, request_id=rid)
        taken.append(p.log.written - p.log.appended - before)  # 1: a line written by the formats
        assert p._one.acquire(blocking=False)
        try:
            general = p.handle(body, request_id=rid)
        finally:
            p._one.release()
        assert fast.status == general.status == 200 and fast.request_id == rid
        assert fast.body == general.body, (fast.body, general.body)
        assert fast.body == to_json(p.predict(rec, request_id=rid)) == p.handle(_body([rec]), request_id=rid).body
        replies.append(fast)
    p.log.close()
    # a format-path answer for each clean record, nothing else (the general calls, flagged records, batches)
    assert taken == [int(c) for c in clean] and p.log.written - p.log.appended == sum(clean)
    lines = [line for seg in sorted(tmp_path.glob("*/*.jsonl")) for line in seg.read_bytes().splitlines()]
    assert len(lines) == 4 * len(recs)  # the fast call, the general one, the Python path, the batch of one
    ts = re.compile(rb'"ts":"[^"]*"')
    for k in range(len(recs)):
        fast_line, *others = (ts.sub(b'"ts":""', x) for x in lines[4 * k:4 * k + 4])
        assert others == [fast_line] * 3, (fast_line, others)
    logged = read_log(tmp_path)
    assert logged["request_id"].to_list()[::4] == [r.request_id for r in replies]
    if "probabilities" in logged.columns:
        assert all(abs(sum(row) - 1.0) <= 1e-6 for row in logged["probabilities"].to_list())


def test_multiclass_ties_go_to_the_first_class(multiclass_package):
    from workbench.serving.answers import MulticlassAnswers

    shaper = MulticlassAnswers(ServingConfig.model_validate(multiclass_package.serving))
    preds, logged = shaper.answer(np.array([[0.4, 0.4, 0.2], [0.2, 0.4, 0.4]]), {})
    assert [p["label"] for p in preds] == ["bronze", "gold"] == logged["label"]


# ----------------------------------------------------------------------------------------- log -> drift/feedback
def _drift_and_feedback(package, logs, ids):
    from workbench.feedback import feedback_report, join_labels
    from workbench.monitoring.drift import drift_report
    from workbench.monitoring.log import read_log

    lean = read_log(logs, model_version=package.tag,
                    input_kinds={f: r["kind"] for f, r in package.profile["features"].items()})
    col = "prediction" if package.task == "regression" else "label"
    assert col in lean.columns and lean.height >= len(package.records)
    report = drift_report(lean, package.profile, model_version=package.tag)
    assert report.prediction["task"] == package.task
    full = read_log(logs, model_version=package.tag)
    if package.task == "regression":
        labels = package.y_test.tolist()
    else:
        labels = [TASK_CLASSES[k] for k in package.y_test]
        assert full["probabilities"].list.len().unique().to_list() == [3]
    per_row = pl.DataFrame({"request_id": [ids[i // 50] for i in range(len(labels))],
                            "row": [i % 50 for i in range(len(labels))], "truth": labels})
    fb = feedback_report(join_labels(full, per_row, label_column="truth"), package.monitoring)
    assert fb.rows == len(labels) and np.isfinite(fb.live_value)
    return report, fb


def test_logged_answers_feed_drift_and_feedback(package, tmp_path):
    from workbench.monitoring.log import PredictionLog

    p = Predictor.load(package.path, tag=package.tag)
    p.log = PredictionLog(package.tag, root=tmp_path)
    ids = [p.predict(package.records[i:i + 50])["request_id"] for i in range(0, len(package.records), 50)]
    p.log.close()
    report, fb = _drift_and_feedback(package, tmp_path, ids)
    assert report.prediction["severity"] == "ok", report.prediction  # held-out traffic: no prediction drift


# ----------------------------------------------------------------------------------------- tier 3
@pytest.mark.serving
def test_bentoml_serve_answers_the_new_task(package, tmp_path):
    from .test_server import bentoml_serve

    logs = tmp_path / "log"
    with bentoml_serve(package.home, tmp_path / "serve.log", WORKBENCH_MODEL_TAG=package.tag,
                       WORKBENCH_LOG_DIR=str(logs)) as url, httpx.Client(base_url=url, timeout=30.0) as client:
        ids = []
        for i in range(0, len(package.records), 50):
            r = client.post("/predict", json=package.records[i:i + 50])
            assert r.status_code == 200, r.text
            ids.append(r.json()["request_id"])
        single = client.post("/predict", json=package.records[0]).json()
        docs = client.get("/docs.json")
    assert single["model_version"] == package.tag
    first = _scores(single, package.task)
    np.testing.assert_allclose(first, package.session_scores()[:1], rtol=1e-6, atol=1e-6)
    assert docs.status_code == 200
    assert ("probabilities" if package.task != "regression" else "prediction") in docs.text
    report, fb = _drift_and_feedback(package, logs, ids)  # one row more: the single record, unlabelled
