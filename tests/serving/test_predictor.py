"""Tier 1: the Predictor in-process -- verification, scoring parity, flags, and every class of bad request."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from workbench.serving import (
    ModelVerificationError,
    Predictor,
    RequestError,
    Unavailable,
    load_predictor,
    resolve_model,
)
from workbench.serving.guard import MISSING, OUT_OF_RANGE, UNSEEN_CATEGORY

from .conftest import changed_record


@pytest.fixture(scope="module")
def predictor(serving_package) -> Predictor:
    return Predictor.load(serving_package.path, tag=serving_package.tag,
                          certified={"the production pointer": serving_package.sha256})


def _body(obj) -> bytes:
    return json.dumps(obj).encode()


def _ok(reply) -> dict:
    assert reply.status == 200, reply.body
    return json.loads(reply.body)


def _refused(reply, status: int, field: str | None = None, record: int | None = None) -> dict:
    assert reply.status == status, reply.body
    out = json.loads(reply.body)
    assert out["request_id"] == reply.request_id and out["error_count"] >= 1
    if field is not None:
        assert any(e["field"] == field for e in out["errors"]), out
        assert f"field '{field}'" in out["error"]
    if record is not None:
        assert any(e["record"] == record for e in out["errors"]), out
        assert f"record {record}" in out["error"]
    return out


# ----------------------------------------------------------------------------------------- loading
def test_load_verifies_and_self_tests(predictor, serving_package):
    assert predictor.ready and predictor.sha256 == serving_package.sha256
    assert predictor.tag == serving_package.tag
    predictor.self_test()


def test_resolve_model_follows_pointer_then_override(serving_package, monkeypatch):
    ref = resolve_model()
    assert ref.tag == serving_package.tag and ref.path == serving_package.path
    assert ref.certified == {"the production pointer": serving_package.sha256,
                             "the model store metadata": serving_package.sha256}
    monkeypatch.setenv("WORKBENCH_MODEL_TAG", serving_package.tag.split(":")[0] + ":latest")
    assert resolve_model().tag == serving_package.tag  # "latest" resolves to the concrete version
    monkeypatch.setenv("WORKBENCH_MODEL_TAG", "workbench-adult-income:doesnotexist")
    with pytest.raises(ModelVerificationError, match="not in the BentoML model store"):
        resolve_model()


def test_resolve_model_in_a_bento_ignores_the_pointer(serving_package, tmp_path):
    (tmp_path / "bento.yaml").write_text(json.dumps({"services": [{"models": [
        {"tag": serving_package.tag, "module": ""}]}]}))
    ref = resolve_model(bento_dir=tmp_path)
    assert ref.tag == serving_package.tag and "bento.yaml" in ref.source


def test_resolve_model_without_anything_promoted(tmp_path, monkeypatch):
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path))
    monkeypatch.delenv("WORKBENCH_MODEL_TAG", raising=False)
    with pytest.raises(LookupError, match="workbench promote latest"):
        resolve_model()


@pytest.fixture
def package_copy(serving_package, tmp_path):
    dest = tmp_path / "pkg"
    shutil.copytree(serving_package.path, dest)
    return dest


def test_altered_onnx_is_refused(package_copy):
    onnx = package_copy / "model.onnx"
    onnx.write_bytes(onnx.read_bytes() + b"\0")
    with pytest.raises(ModelVerificationError, match="refusing to serve"):
        Predictor.load(package_copy)


def test_pointer_sha_mismatch_is_refused(package_copy):
    with pytest.raises(ModelVerificationError, match="production pointer certifies 0000"):
        Predictor.load(package_copy, certified={"the production pointer": "0" * 64})


def test_missing_files_are_refused(package_copy):
    (package_copy / "model.onnx").unlink()
    with pytest.raises(ModelVerificationError, match="model.onnx.* is missing"):
        Predictor.load(package_copy)
    (package_copy / "serving.json").unlink()
    with pytest.raises(ModelVerificationError, match="is missing"):
        Predictor.load(package_copy)
    (package_copy / "package.json").unlink()  # an old package (no manifest): the same refusals
    with pytest.raises(ModelVerificationError, match="serving.json is missing"):
        Predictor.load(package_copy)


def test_unverified_model_is_served_as_unavailable(serving_package, package_copy):
    from workbench.serving import ModelRef

    onnx = package_copy / "model.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1])
    p = load_predictor(ModelRef(tag="x:y", path=package_copy, source="test"))
    assert isinstance(p, Unavailable) and not p.ready
    reply = p.handle(_body(serving_package.records[0]))
    assert reply.status == 503 and "refusing to serve" in json.loads(reply.body)["error"]


# ----------------------------------------------------------------------------------------- scoring
def test_batch_matches_the_sklearn_pipeline_row_for_row(predictor, serving_package):
    out = _ok(predictor.handle(_body(serving_package.records)))
    p = np.array([r["probability"] for r in out["predictions"]])
    ref = serving_package.reference_proba()
    assert len(p) == len(ref) == len(serving_package.records)
    np.testing.assert_allclose(p, ref, atol=1e-5, rtol=0)
    t = serving_package.threshold
    clear = np.abs(ref - t) > 1e-5  # a float32 rounding could flip a row sitting on the threshold
    labels = np.array([r["label"] for r in out["predictions"]])
    want = np.where(ref > t, serving_package.serving["positive_label"], serving_package.serving["negative_label"])
    assert clear.mean() > 0.95 and (labels[clear] == want[clear]).all()
    assert out["model_version"] == serving_package.tag and out["threshold"] == t


def test_single_record_answer_shape(predictor, serving_package):
    out = _ok(predictor.handle(_body(serving_package.records[0])))
    assert set(out) == {"model_version", "request_id", "threshold", "predictions"}
    (pred,) = out["predictions"]
    assert set(pred) == {"probability", "label", "flags"} and 0 <= pred["probability"] <= 1
    assert pred["label"] in (serving_package.serving["positive_label"], serving_package.serving["negative_label"])
    again = _ok(predictor.handle(_body([serving_package.records[0]])))
    assert again["predictions"] == out["predictions"] and again["request_id"] != out["request_id"]


def test_python_path_equals_http_path(predictor, serving_package):
    recs = serving_package.records[:20]
    py = predictor.predict(recs, request_id="r1")
    http = _ok(predictor.handle(_body(recs), request_id="r1"))
    assert py == http and py["request_id"] == "r1"
    assert predictor.predict(recs[0])["predictions"] == py["predictions"][:1]
    with pytest.raises(RequestError, match="field 'age' should be a number") as exc:
        predictor.predict(dict(recs[0], age="40"))
    assert exc.value.status == 422


def test_integers_are_numbers(predictor, serving_package):
    rec = dict(serving_package.records[0], age=39, hours_per_week=40)
    a = _ok(predictor.handle(_body(rec)))["predictions"][0]
    b = _ok(predictor.handle(_body(dict(rec, age=39.0, hours_per_week=40.0))))["predictions"][0]
    assert a == b


# ----------------------------------------------------------------------------------------- flags
def test_unusual_values_are_scored_and_flagged(predictor, serving_package):
    base = dict(serving_package.records[0])
    unusual = dict(base, age=200, workclass="Space-agency", occupation=None, capital_gain=None, sex="")
    out = _ok(predictor.handle(_body([base, unusual])))
    clean, flagged = out["predictions"]
    assert clean["flags"] == {}
    assert flagged["flags"] == {"age": OUT_OF_RANGE, "workclass": UNSEEN_CATEGORY, "occupation": MISSING,
                                "capital_gain": MISSING, "sex": MISSING}
    # ... and scored exactly as the pipeline scores NaN / "" (its missing markers) and the unseen category
    X = serving_package.X_test.head(1).copy()
    for k, v in base.items():
        X.loc[0, k] = v if v is not None else (np.nan if k in predictor.guard.numeric else "")
    for k, v in {"age": 200.0, "workclass": "Space-agency", "occupation": "", "capital_gain": np.nan,
                 "sex": ""}.items():
        X.loc[0, k] = v
    assert flagged["probability"] == pytest.approx(serving_package.reference_proba(X)[0], abs=1e-5)


def test_guard_edges(predictor, serving_package):
    spec = {i.name: i for i in predictor.config.inputs}
    lo, hi = spec["age"].min, spec["age"].max
    recs = [dict(serving_package.records[0], age=v) for v in (lo, hi, lo - 1, hi + 0.5)]
    flags = [p["flags"] for p in _ok(predictor.handle(_body(recs)))["predictions"]]
    assert flags == [{}, {}, {"age": OUT_OF_RANGE}, {"age": OUT_OF_RANGE}]


def test_all_missing_record_is_scored(predictor):
    rec = {i.name: None for i in predictor.config.inputs}
    (pred,) = _ok(predictor.handle(_body(rec)))["predictions"]
    assert 0 < pred["probability"] < 1 and set(pred["flags"].values()) == {MISSING}
    assert len(pred["flags"]) == len(rec)


# ----------------------------------------------------------------------------------------- bad requests
def _rec(serving_package, **changes):
    return changed_record(serving_package, **changes)


def test_missing_field(predictor, serving_package):
    _refused(predictor.handle(_body(_rec(serving_package, age=...))), 422, "age")
    out = _refused(predictor.handle(_body([serving_package.records[0], _rec(serving_package, sex=...)])), 422,
                   "sex", record=1)
    assert "is required" in out["error"]


def test_unknown_field(predictor, serving_package):
    out = _refused(predictor.handle(_body(_rec(serving_package, favourite_colour="red"))), 422, "favourite_colour")
    assert "not an input" in out["error"]


@pytest.mark.parametrize(("field", "value"), [("age", "39"), ("age", True), ("age", [39]), ("sex", 1),
                                              ("sex", False), ("workclass", {"a": 1})])
def test_wrong_type_is_not_coerced(predictor, serving_package, field, value):
    out = _refused(predictor.handle(_body(_rec(serving_package, **{field: value}))), 422, field)
    assert "should be a" in out["error"]


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_nan_and_infinity_literals_are_refused(predictor, serving_package, literal):
    body = json.dumps(_rec(serving_package, capital_gain=12345.0)).replace("12345.0", literal).encode()
    out = _refused(predictor.handle(body), 422, "capital_gain")
    assert "finite" in out["error"] and "null" in out["error"]


def test_numbers_beyond_float32_are_refused(predictor, serving_package):
    _refused(predictor.handle(_body(_rec(serving_package, capital_gain=1e39))), 422, "capital_gain")


@pytest.mark.parametrize("body", [b"{", b'{"age": 1,', b"[{]", b"nope", b'{"age": 1} trailing'])
def test_malformed_json(predictor, body):
    out = _refused(predictor.handle(body), 400)
    assert out["error"].startswith("malformed JSON")


@pytest.mark.parametrize("body", [b"", b"  \n"])
def test_empty_body(predictor, body):
    assert "empty request body" in _refused(predictor.handle(body), 400)["error"]


def test_empty_batch(predictor):
    assert _refused(predictor.handle(b" [ ] "), 422)["error"] == "empty batch: send at least one record"


@pytest.mark.parametrize("body", [b"42", b'"record"', b"null", b"true"])
def test_body_of_the_wrong_shape(predictor, body):
    assert "one record (a JSON object) or a batch" in _refused(predictor.handle(body), 422)["error"]


def test_batch_of_non_objects(predictor):
    _refused(predictor.handle(b"[1, 2]"), 422, record=0)


def test_batch_over_the_row_limit(serving_package):
    from workbench.serving import ServingConfig
    from workbench.serving.scorer import OnnxScorer

    cfg = ServingConfig.model_validate({**serving_package.serving, "limits": {"max_batch_rows": 5}})
    p = Predictor(cfg, OnnxScorer((serving_package.path / "model.onnx").read_bytes(),
                                  [i.model_dump() for i in cfg.inputs]), tag="t", sha256="s")
    _ok(p.handle(_body(serving_package.records[:5])))
    out = _refused(p.handle(_body(serving_package.records[:6])), 422)
    assert "more than 5 records" in out["error"]


def test_oversized_body(predictor):
    limit = predictor.config.limits.max_body_bytes
    out = _refused(predictor.handle(b" " * (limit + 1)), 413)
    assert str(limit) in out["error"]


def test_error_list_is_capped_but_counted(predictor, serving_package):
    recs = [_rec(serving_package, age="x") for _ in range(50)]
    out = _refused(predictor.handle(_body(recs)), 422, "age", record=0)
    assert len(out["errors"]) == 20 and out["error_count"] == 50 and "(and 47 more)" in out["error"]


def test_guard_small_and_large_batches_agree(predictor, serving_package):
    from workbench.serving.guard import SMALL_BATCH

    spec = {i.name: i for i in predictor.config.inputs}
    variants = [{}, {"age": spec["age"].max + 1}, {"age": None}, {"capital_loss": -1.0}, {"race": "Martian"},
                {"workclass": None}, {"sex": ""},
                {"age": spec["age"].min, "hours_per_week": spec["hours_per_week"].max}]
    recs = [dict(serving_package.records[k % 50], **variants[k % len(variants)]) for k in range(3 * SMALL_BATCH)]
    batch = _ok(predictor.handle(_body(recs)))["predictions"]
    singles = [_ok(predictor.handle(_body(r)))["predictions"][0] for r in recs]
    assert [p["flags"] for p in batch] == [p["flags"] for p in singles]
    assert sum(bool(p["flags"]) for p in batch) == 3 * SMALL_BATCH * 6 // 8


def test_single_records_take_the_preallocated_path_and_match_the_batch(predictor, serving_package):
    """One record is scored through reused feed buffers; its answers must equal those of the general path
    exactly (records with missing values -- None -> NaN / "" -- after clean ones), and the batch's up to float32
    rounding (onnxruntime's batched kernels sum in another order), with the same labels and flags."""
    spec = {i.name: i for i in predictor.config.inputs}
    variants = [{}, {"age": None}, {"workclass": None}, {"race": "Martian"}, {"sex": ""},
                {"age": spec["age"].max + 5}, {}]
    recs = [dict(serving_package.records[k], **variants[k % len(variants)]) for k in range(21)]
    batch = _ok(predictor.handle(_body(recs)))["predictions"]
    singles = [_ok(predictor.handle(_body(r)))["predictions"][0] for r in recs]
    assert predictor._one.acquire(blocking=False)  # released after every call
    try:  # while the buffers are taken, single records go through the general path
        general = [_ok(predictor.handle(_body(r)))["predictions"][0] for r in recs]
    finally:
        predictor._one.release()
    assert singles == general
    assert [(p["label"], p["flags"]) for p in singles] == [(p["label"], p["flags"]) for p in batch]
    assert [p["probability"] for p in singles] == pytest.approx([p["probability"] for p in batch], abs=1e-6)


def test_single_records_from_many_threads_get_their_own_answers(predictor, serving_package):
    """Concurrent single-record calls (one uses the shared buffers, the others build their own feeds) never
    see each other's values: every answer equals the one computed alone."""
    from concurrent.futures import ThreadPoolExecutor

    recs = serving_package.records[:40]
    alone = [predictor.predict(r)["predictions"][0]["probability"] for r in recs]
    with ThreadPoolExecutor(max_workers=4) as pool:
        for _ in range(5):
            got = list(pool.map(lambda r: predictor.predict(r)["predictions"][0]["probability"], recs))
            assert got == alone


def test_guard_check_one_agrees_with_check(predictor, serving_package):
    g = predictor.guard
    spec = {i.name: i for i in predictor.config.inputs}
    for changes in [{}, {"age": None}, {"age": spec["age"].min - 1}, {"workclass": ""}, {"race": "Martian"},
                    {"capital_gain": None, "native_country": None}]:
        rec = dict(serving_package.records[3], **changes)
        nv, cv = tuple(rec[n] for n in g.numeric), tuple(rec[c] for c in g.categorical)
        flags = g.check_one(nv, cv)
        assert flags == g.check([(v,) for v in nv], [(v,) for v in cv]).get(0, {})
        assert g.clean_one(nv, cv) is (not flags)  # the one-record path's all-clear, decided in C


def test_parse_one_takes_only_what_it_can_prove_and_agrees_with_parse_json(predictor, serving_package):
    """parse_one (the one-record path's parser) skips the unknown-key check, so it must refuse every body where
    that check or the duplicate-key check could matter -- the general parser then answers it as before."""
    schema = predictor.schema
    rec = serving_package.records[0]
    body = _body(rec)
    assert schema.parse_one(body) == schema.parse_json(body)[0][0]
    num = predictor.guard.numeric[0]
    swapped = {("not_an_input" if k == num else k): v for k, v in rec.items()}  # as many keys, one unknown
    twice = body[:-1] + b", " + _body(num) + b": 1.0}"
    for bad in (_body(swapped), twice, b" " + body, _body([rec]), body[:-1], _body(dict(rec, **{num: "12"})),
                _body(dict(rec, extra=1))):
        assert schema.parse_one(bad) is None, bad
    _refused(predictor.handle(_body(swapped)), 422, field="not_an_input")
    _refused(predictor.handle(twice), 400, field=num)
    assert _ok(predictor.handle(b" " + body))["predictions"] == _ok(predictor.handle(body))["predictions"]


def test_request_ids_are_unique_across_threads_and_forks():
    import os
    from concurrent.futures import ThreadPoolExecutor

    from workbench.serving.predictor import new_request_id

    with ThreadPoolExecutor(max_workers=4) as pool:
        ids = [i for chunk in pool.map(lambda _: [new_request_id() for _ in range(300)], range(8)) for i in chunk]
    assert len(set(ids)) == len(ids) == 2400
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its first id must not be the parent's next one
        try:
            os.write(write, new_request_id().encode())
        finally:
            os._exit(0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    os.close(read)
    assert len(child) == 32 and child != new_request_id() and child not in ids
