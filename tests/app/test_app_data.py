"""workbench.app_data on a real promoted run: what the stakeholder app shows, and its refusals."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from workbench import app_data as ad
from workbench.errors import DataError, WorkbenchError

from .conftest import APP, ROOT

pytestmark = [pytest.mark.notebook, pytest.mark.timeout(600)]


@pytest.fixture(scope="module")
def loaded(promoted):
    prod = ad.production_package()
    run = ad.load_run(promoted.run_id)
    return prod, run


# ----------------------------------------------------------------------------------------------- runs and registry
def test_runs_listing_and_default(promoted):
    runs = ad.prototype_runs()
    assert [r["run_id"] for r in runs] == [promoted.run_id]
    assert promoted.run_id in runs[0]["label"] and runs[0]["selected"] in ("hgb", "logreg")
    assert ad.default_run(runs) == promoted.run_id
    assert ad.default_run(runs, requested="nope", production_run=promoted.run_id) == promoted.run_id
    assert ad.default_run([]) is None


def test_the_run_folder_has_its_report(promoted):
    m = json.loads((promoted.run_dir / "manifest.json").read_text())
    assert m["report"] == {"path": "report.html", "error": None}
    html = (promoted.run_dir / "report.html").read_text()
    assert promoted.run_id in html and "Fairness:" in html and "Explanations (SHAP)" in html
    assert html.count("data:image/png;base64,") >= 8


def test_no_runs_and_nothing_promoted(tmp_path, monkeypatch):
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(tmp_path / "runs"))
    monkeypatch.setenv("BENTOML_HOME", str(tmp_path / "bentoml"))
    assert ad.prototype_runs() == []
    prod = ad.production_package()
    assert prod["status"] == "none" and "Nothing promoted" in prod["message"]


def test_failed_and_discovery_only_runs_are_not_listed(promoted, tmp_path, monkeypatch):
    runs = tmp_path / "runs"
    for name, status, phases in (("20200101-000000-a", "failed", ["discovery", "prototype"]),
                                 ("20200101-000001-b", "succeeded", ["discovery"])):
        (runs / name / "reports").mkdir(parents=True)
        (runs / name / "manifest.json").write_text(json.dumps({"run_id": name, "status": status, "phases": phases}))
    monkeypatch.setenv("WORKBENCH_RUNS_DIR", str(runs))
    assert ad.prototype_runs() == []


def test_production_package_and_promotion_status(promoted, loaded):
    prod, run = loaded
    assert prod["status"] == "ok" and prod["tag"] == promoted.tag and prod["run_id"] == promoted.run_id
    st = ad.promotion_status(run, prod)
    assert st["status"] == "production" and st["tag"] == promoted.tag
    gates = ad.gate_frame(st["gates"], run["manifest"])
    assert {"data quality", "kill criteria", "ONNX parity"} <= set(gates["gate"])
    assert set(gates.filter(pl.col("stage") == "promotion")["verdict"]) <= {"pass", "info"}
    sections = ad.card_sections(st["card"])
    assert {"Intended use", "Out-of-scope uses", "Limitations"} <= set(sections)


def test_promotion_status_of_other_runs(promoted, loaded, tmp_path, monkeypatch):
    prod, run = loaded
    other = {**run, "run_id": "20200101-000000-other"}
    assert ad.promotion_status(other, prod)["status"] == "not promoted"
    attempt = tmp_path / "promotions" / "20200101-000100-20200101-000000-other"
    attempt.mkdir(parents=True)
    (attempt / "gates.json").write_text(json.dumps({"gates": [{"gate": "ONNX parity", "verdict": "fail"}]}))
    monkeypatch.setenv("WORKBENCH_PROMOTIONS_DIR", str(tmp_path / "promotions"))
    st = ad.promotion_status(other, prod)
    assert st["status"] == "refused"
    assert ad.gate_frame(st["gates"])["verdict"].to_list() == ["fail"]


# ----------------------------------------------------------------------------------------------- performance, fairness
def test_performance_frame(loaded):
    _, run = loaded
    lb = run["reports"]["leaderboard"]
    perf = ad.performance_frame(lb)
    roles = dict(zip(perf["model"], perf["role"], strict=True))
    assert roles[lb["selected"]] == "selected" and roles[lb["best_baseline"]] == "best baseline"
    sel = perf.filter(pl.col("role") == "selected").row(0, named=True)
    assert sel[lb["primary"]] == pytest.approx(lb["models"][lb["selected"]]["test"]["metrics"][lb["primary"]])
    assert sel["beats_baseline"] is True and sel["delta_vs_baseline"] > 0
    assert ad.plot_performance(lb, success_threshold=0.7).axes


def test_fairness_slices_with_intervals(loaded):
    _, run = loaded
    fair = run["reports"]["fairness"]
    choices = ad.fairness_choices(fair)
    assert choices["features"][:2] == ["sex", "race"]
    assert set(choices["metrics"].values()) == {"selection_rate", "tpr", "fpr", "accuracy"}
    for feature in choices["features"]:
        for metric in choices["metrics"].values():
            s = ad.fairness_slice(fair, feature, metric)
            assert s.height == len(fair["groups"][feature])
            ok = s.filter(pl.col("ci_low").is_not_null())
            assert (ok["ci_low"] <= ok["value"] + 1e-12).all() and (ok["value"] <= ok["ci_high"] + 1e-12).all()
    gaps = ad.fairness_gaps(fair, "sex")
    assert "equalized_odds_difference" in gaps["metric"].to_list()
    with pytest.raises(DataError, match="no slices"):
        ad.fairness_slice(fair, "zodiac", "tpr")


def test_the_run_s_reports_come_back_as_objects_and_the_app_charts_the_report_s_own_chart(loaded):
    """load_run reads the evaluation and fairness reports back as their objects (RunFolder.report_object); the
    helpers give the same answers from the object as from the saved dict, and the fairness chart the app shows is
    the report's own."""
    from workbench.artifacts import RunFolder
    from workbench.evaluation import EvaluationReport, FairnessReport

    _, run = loaded
    ev, fair = run["evaluation"], run["fairness"]
    assert type(ev) is EvaluationReport and type(fair) is FairnessReport
    saved = RunFolder(run["dir"])
    assert json.loads(ev.to_json()) == run["reports"]["evaluation"] == json.loads(saved.report_object("evaluation").to_json())
    assert json.loads(fair.to_json()) == run["reports"]["fairness"]
    assert ad.fairness_choices(fair) == ad.fairness_choices(run["reports"]["fairness"])
    assert ad.fairness_gaps(fair, "race").equals(ad.fairness_gaps(run["reports"]["fairness"], "race"))
    lb = run["reports"]["leaderboard"]
    assert ad.lead_performance(lb, evaluation=ev) == ad.lead_performance(lb, evaluation=run["reports"]["evaluation"])
    for feature, metric in (("sex", "selection_rate"), ("race", "tpr")):
        frame = ad.fairness_slice(fair, feature, metric)
        assert frame.equals(fair.slice_frame(feature, metric))
        assert ad.lead_fairness(fair, feature, metric) == ad.lead_fairness(run["reports"]["fairness"], feature, metric)
        via_app = ad.chart_fairness_slice(frame, feature=feature, metric=metric, overall=fair.overall.get(metric),
                                          confidence_level=fair.confidence_level).to_dict()
        assert fair.chart(feature, metric).to_dict() == via_app


# ----------------------------------------------------------------------------------------------- SHAP
def test_group_drivers_from_the_parquet_match_shap_json(loaded):
    _, run = loaded
    shap = run["reports"]["shap"]
    contrib = ad.load_contributions(run["dir"])
    assert contrib is not None and contrib.height == shap["sample_size"]
    imp = ad.shap_importance(shap)
    assert imp["feature"][0] == next(iter(shap["importance"]))
    drivers = ad.group_drivers(shap, contrib, "sex")
    for group, info in shap["group_drivers"]["sex"].items():
        rows = drivers.filter(pl.col("group") == group)
        assert rows["n"][0] == info["n"]
        got = dict(zip(rows["feature"], rows["mean_abs_shap"], strict=True))
        for col, v in info["mean_abs_shap"].items():
            assert got[col] == pytest.approx(v, abs=1e-9), (group, col)
        assert rows.filter(pl.col("rank") == 1)["feature"][0] == info["top"][0]
    inter = ad.group_drivers(shap, contrib, "sex & race")
    assert inter.select("group", "n").unique()["n"].sum() == shap["sample_size"]
    # Without the Parquet, shap.json still gives the magnitudes (not the direction).
    fallback = ad.group_drivers(shap, None, "sex")
    assert fallback["mean_shap"].null_count() == fallback.height
    assert ad.driver_features(shap, None, ["sex", "race", "sex & race"]) == ["sex", "race"]
    with pytest.raises(DataError):
        ad.group_drivers(shap, None, "sex & race")


# ----------------------------------------------------------------------------------------------- what-if
def test_whatif_form_is_built_from_the_serving_contract(loaded):
    prod, _ = loaded
    pkg = prod["package"]
    fields = ad.whatif_fields(pkg["serving"], pkg["profile"])
    assert [f["name"] for f in fields] == [i["name"] for i in pkg["serving"]["inputs"]]
    for f, i in zip(fields, pkg["serving"]["inputs"], strict=True):
        if f["kind"] == "categorical":
            assert f["default"] in f["options"] and set(i["categories"]) <= set(f["options"])
            assert (ad.MISSING_OPTION in f["options"]) == i["nullable"]
        else:
            assert f["min"] == i["min"] and f["max"] == i["max"] and f["min"] <= f["default"] <= f["max"]
    age = next(f for f in fields if f["name"] == "age")
    assert age["step"] == 1.0 and float(age["default"]).is_integer()
    row = ad.whatif_row(fields, {"workclass": ad.MISSING_OPTION})
    assert row["workclass"] is None and row["age"] == age["default"]
    with pytest.raises(DataError, match="outside the training range"):
        ad.whatif_row(fields, {"age": age["max"] + 1})
    with pytest.raises(DataError, match="not a category"):
        ad.whatif_row(fields, {"sex": "Martian"})
    with pytest.raises(DataError, match="not a number"):
        ad.whatif_row(fields, {"age": "old"})


def test_whatif_score_is_the_onnx_score_and_explained_consistently(loaded):
    from workbench.serving.scorer import OnnxScorer

    prod, run = loaded
    pkg = prod["package"]
    fields = ad.whatif_fields(pkg["serving"], pkg["profile"])
    row = ad.whatif_row(fields, {"age": 52, "education": "Masters", "workclass": ad.MISSING_OPTION})
    score = ad.score_whatif(pkg, row)
    direct = OnnxScorer(pkg["path"] / "model.onnx", pkg["serving"]["inputs"]).predict_proba(
        {k: [v] for k, v in row.items()})[0]
    assert score["probability"] == pytest.approx(float(direct), abs=0)
    assert score["label"] == (pkg["serving"]["positive_label"] if score["probability"] > score["threshold"]
                              else pkg["serving"]["negative_label"])
    model = ad.verified_model(run, pkg["metadata"]["model"])
    exp = ad.explain_whatif(model, run, row, background=ad.load_contributions(run["dir"]))
    c = exp["contributions"]
    assert c.height == len(fields) and set(c["feature"]) == {f["name"] for f in fields}
    assert exp["base_value"] + c["contribution"].sum() == pytest.approx(exp["margin"], abs=1e-6)
    # The notebook model and its certified ONNX export agree on this row (parity).
    assert exp["probability"] == pytest.approx(score["probability"], abs=1e-4)
    assert c.filter(pl.col("feature") == "workclass")["value"][0] == ad.MISSING_OPTION
    assert ad.plot_contributions(exp).axes


def test_tampered_onnx_is_refused(loaded, tmp_path):
    prod, _ = loaded
    pkg = dict(prod["package"])
    copy = tmp_path / "pkg"
    shutil.copytree(pkg["path"], copy)
    blob = bytearray((copy / "model.onnx").read_bytes())
    blob[-1] ^= 0xFF
    (copy / "model.onnx").write_bytes(bytes(blob))
    pkg["path"] = copy
    fields = ad.whatif_fields(pkg["serving"], pkg["profile"])
    with pytest.raises(WorkbenchError, match="certified sha256"):
        ad.score_whatif(pkg, ad.whatif_row(fields, {}))


def test_tampered_pickle_is_not_unpickled(loaded, tmp_path):
    _, run = loaded
    copy = tmp_path / run["run_id"]
    shutil.copytree(run["dir"], copy)
    art = run["manifest"]["artifacts"][f"model_{run['selected']}"]
    (copy / art["path"]).write_bytes(b"not the certified model")
    with pytest.raises(WorkbenchError, match="not loaded"):
        ad.verified_model({**run, "dir": copy})
    with pytest.raises(WorkbenchError, match="records no model artifact"):
        ad.verified_model(run, "majority")


# ----------------------------------------------------------------------------------------------- drift
def test_drift_status_without_and_with_a_prediction_log(loaded, tmp_path):
    from workbench.monitoring.log import PredictionLog

    prod, run = loaded
    pkg = prod["package"]
    none = ad.drift_status(pkg, log_root=tmp_path / "log")
    assert none["status"] == "no log" and none["message"] == "no prediction log yet" and none["report"] is None
    # Log the sampled rows of the run (same population as the reference): a drift report, not an error.
    rows = ad.load_contributions(run["dir"])
    features = [i["name"] for i in pkg["serving"]["inputs"]]
    inputs = {f: [None if v == "" else v for v in rows[f].to_list()] for f in features}
    proba = np.clip(1 / (1 + np.exp(-rows["margin"].to_numpy())), 0, 1)
    log = PredictionLog(pkg["tag"], root=tmp_path / "log")
    log.append("r1", inputs, proba.tolist(), [">50K" if p > 0.5 else "<=50K" for p in proba])
    log.close()
    st = ad.drift_status(pkg, log_root=tmp_path / "log")
    assert st["status"] in ("ok", "warning", "critical") and st["rows"] == rows.height
    assert st["report"].rows == rows.height and math.isfinite(st["report"].prediction["psi"])


# ----------------------------------------------------------------------------------------------- static export
def _export(out, env):
    # PYTHONPYCACHEPREFIX: marimo keeps its session snapshot under it instead of notebooks/__marimo__/.
    env = {**env, "PYTHONPYCACHEPREFIX": str(out.parent / "pycache")}
    return subprocess.run([sys.executable, "-m", "marimo", "export", "html", str(APP), "-o", str(out),
                           "--no-include-code", "--no-sandbox", "-f"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def test_static_export_embeds_every_section(promoted, tmp_path):
    """``marimo export html`` runs headless (no browser) and needs no network; the file carries every output."""
    import os

    env = {**os.environ, **promoted.env}
    out = _export(tmp_path / "app.html", env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "failed to execute" not in out.stderr
    html = (tmp_path / "app.html").read_text()
    for text in ("workbench: stakeholder view", "Model card and gate verdicts", "Performance against the baseline",
                 "Fairness slices", "What drives the scores", "wb-whatif-score", "No prediction log yet",
                 promoted.tag):
        assert text in html, text
    for chart in ("performance", "fairness", "importance", "drivers", "contributions"):  # interactive charts
        assert f"wb-chart-{chart}" in html, chart


def test_static_export_without_runs_or_promotion(promoted, tmp_path):
    import os

    empty = {**os.environ, "WORKBENCH_RUNS_DIR": str(tmp_path / "runs"), "BENTOML_HOME": str(tmp_path / "bentoml")}
    out = _export(tmp_path / "none.html", empty)
    assert out.returncode == 0, out.stdout + out.stderr
    html = (tmp_path / "none.html").read_text()
    assert "No runs yet" in html and "Nothing promoted yet" in html
    unpromoted = {**os.environ, **promoted.env, "BENTOML_HOME": str(tmp_path / "bentoml"),
                  "WORKBENCH_PROMOTIONS_DIR": str(tmp_path / "promotions")}
    out = _export(tmp_path / "unpromoted.html", unpromoted)
    assert out.returncode == 0 and "failed to execute" not in out.stderr, out.stdout + out.stderr
    html = (tmp_path / "unpromoted.html").read_text()
    assert "Nothing to score with" in html and "Fairness slices" in html and "not been through the promotion" in html


# ----------------------------------------------------------------------------------------------- plain language
def test_glossary_names_and_explains_every_metric_the_app_shows():
    from workbench.tasks import get_task

    for task in ("binary_classification", "multiclass_classification", "regression"):
        for metric in get_task(task).metrics:
            assert metric in ad.GLOSSARY, metric
            assert ad.term(metric) != metric or metric in ("accuracy", "recall"), metric
            assert ad.explain(metric).startswith(ad.term(metric) + " (")
    for gap in ("equalized_odds_difference", "demographic_parity_ratio", "mean_residual_difference",
                "recall_difference", "mae_relative_difference"):
        assert "_" not in ad.term(gap)
    assert ad.term("recall[Chinstrap]") == "recall of Chinstrap"
    assert ad.term("zodiac_sign") == "zodiac sign"  # unknown keys are never shown raw
    rows = ad.glossary(["pr_auc", "pr_auc", "nope", "tpr"])
    assert [r["term"] for r in rows] == ["PR-AUC", "true positive rate"]


def test_gap_sentences_explain_verdicts_and_no_threshold():
    no_limit = {"metric": "demographic_parity_ratio", "value": 0.33, "threshold": None, "verdict": "no threshold"}
    assert ad.gap_sentence(no_limit) == ("The selection-rate ratio is 0.33: reported, not gated (the brief sets no "
                                         "limit for it).")
    over = {"metric": "equalized_odds_difference", "value": 0.25, "ci_high": 0.35, "threshold": 0.3,
            "verdict": "exceeds threshold"}
    s = ad.gap_sentence(over)
    assert "at most 30 percentage points" in s and "at most 35 percentage points with 95% confidence" in s
    assert s.endswith("over the limit.")
    unknown = {"metric": "equalized_odds_difference", "value": None, "threshold": 0.3,
               "verdict": "insufficient evidence — review"}
    assert "cannot be measured" in ad.gap_sentence(unknown) and "review" in ad.gap_sentence(unknown)


def test_records_have_no_dtypes_or_nones():
    frame = pl.DataFrame({"a": [1.23456, None], "b": ["x", None], "c": [True, False]})
    rows = ad.records(frame, columns={"a": "value", "b": "name", "c": "ok"}, formats={"a": ".2f"})
    assert rows == [{"value": "1.23", "name": "x", "ok": "yes"}, {"value": "", "name": "", "ok": "no"}]


def test_lead_sentences_of_a_binary_run(loaded):
    prod, run = loaded
    fair = run["reports"]["fairness"]
    female = next(g for g in fair["groups"]["sex"] if g["group"] == "Female")
    lead = ad.lead_fairness(fair, "sex", "selection_rate", positive_label=">50K")
    assert lead.startswith(f"By sex, the model predicts “>50K” for {100 * female['selection_rate']:.1f}".rstrip("0"))
    assert "The brief allows the equalized-odds gap to be at most 30 percentage points" in lead
    perf = ad.lead_performance(run["reports"]["leaderboard"], brief=run["brief"])
    assert perf.startswith("The selected model") and "PR-AUC (" in perf and "pr_auc" not in perf
    st = ad.promotion_status(run, prod)
    assert ad.lead_overview(run, st).endswith(f"is the model in production ({prod['tag']}).")
    rows = ad.gate_rows(st["gates"], run["manifest"])
    text = " ".join(r["in plain words"] + r["check"] for r in rows)
    assert run["manifest"]["data"]["train"]["sha256"][:12] not in text and "pr_auc" not in text
    assert {r["result"] for r in rows} <= {"PASS", "info"}
    assert "Sex ranks" in ad.lead_shap(run["reports"]["shap"], sensitive=["sex", "race"])
