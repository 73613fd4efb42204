"""The Discovery -> Prototype run executed for real through papermill, on samples."""

from __future__ import annotations

import json
import re

import numpy as np
import polars as pl
import pytest

from testkit import ADULT_BRIEF, ROOT, write_brief
from workbench.config import Settings
from workbench.runs import execute_run, read_manifest

pytestmark = [pytest.mark.notebook, pytest.mark.timeout(600)]

QUICK = {"sample_rows": "3000", "cv_folds": "3", "shap_sample": "200", "bootstrap_samples": "50",
         "candidates": "logreg,hgb"}


@pytest.fixture(scope="module")
def adult_run(tmp_path_factory):
    import os

    runs = tmp_path_factory.mktemp("runs")
    os.environ["WORKBENCH_RUNS_DIR"] = str(runs)
    try:
        return execute_run(brief_path=ADULT_BRIEF, params=QUICK, cfg=Settings(root=ROOT))
    finally:
        del os.environ["WORKBENCH_RUNS_DIR"]


def _report(run, name):
    return json.loads((run.run_dir / "reports" / f"{name}.json").read_text())


def test_both_phases_succeed_with_all_reports(adult_run):
    r = adult_run
    assert r.status == "succeeded", r.error
    m = read_manifest(r.run_dir)
    assert [nb["phase"] for nb in m["notebooks"]] == ["discovery", "prototype"]
    assert all(nb["status"] == "succeeded" for nb in m["notebooks"])
    for name in ["contract", "audit", "leaderboard", "evaluation", "cv", "fairness", "shap", "experiments",
                 "kill_criteria", "prototype"]:
        assert (r.run_dir / "reports" / f"{name}.json").is_file(), name
    for fig in ["leaderboard", "evaluation", "fairness_sex", "fairness_race", "shap_importance", "shap_beeswarm",
                "shap_drivers_sex"]:
        assert (r.run_dir / "figures" / f"{fig}.png").is_file(), fig
    assert m["gates"]["kill_criteria"]["passed"] is True
    proto = m["results"]["prototype"]
    assert proto["selected"] in ("hgb", "logreg") and proto["primary_metric"] == "pr_auc"
    art = m["artifacts"][f"model_{proto['selected']}"]
    assert (r.run_dir / art["path"]).is_file() and len(art["sha256"]) == 64


def test_baselines_first_and_deltas(adult_run):
    lb = _report(adult_run, "leaderboard")
    assert {"majority", "rule"} <= set(lb["models"]) and {"logreg", "hgb"} <= set(lb["models"])
    best = lb["best_baseline"]
    base = lb["models"][best]["test"]["metrics"]["pr_auc"]
    for name, cmp in lb["comparisons"].items():
        cand = lb["models"][name]["test"]["metrics"]["pr_auc"]
        assert cmp["primary_delta"] == pytest.approx(cand - base, abs=1e-12)
    # The majority baseline's PR-AUC is the positive rate of the test split.
    pos_rate = lb["models"]["majority"]["test"]["positive_rate"]
    assert lb["models"]["majority"]["test"]["metrics"]["pr_auc"] == pytest.approx(pos_rate, abs=1e-9)


def test_metrics_recomputed_from_saved_predictions(adult_run):
    from sklearn.metrics import average_precision_score, roc_auc_score

    preds = pl.read_parquet(adult_run.run_dir / "artifacts" / "predictions.parquet")
    lb = _report(adult_run, "leaderboard")
    for name, model in lb["models"].items():
        y, p = preds["y_true"].to_numpy(), preds[f"proba_{name}"].to_numpy()
        assert model["test"]["metrics"]["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
        if name != "majority":
            assert model["test"]["metrics"]["roc_auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_fairness_report_matches_independent_recomputation(adult_run):
    preds = pl.read_parquet(adult_run.run_dir / "artifacts" / "predictions.parquet")
    fair = _report(adult_run, "fairness")
    sel = _report(adult_run, "leaderboard")["selected"]
    labels = preds[f"label_{sel}"].to_numpy()
    y = preds["y_true"].to_numpy()
    for feature in ("sex", "race"):
        groups = preds[feature].to_numpy()
        by_group = {row["group"]: row for row in fair["groups"][feature]}
        rates = {}
        for g in np.unique(groups):
            m = groups == g
            assert by_group[g]["count"] == int(m.sum())
            assert by_group[g]["selection_rate"] == pytest.approx(labels[m].mean(), abs=1e-12)
            if (y[m] == 1).any():
                assert by_group[g]["tpr"] == pytest.approx(labels[m & (y == 1)].mean(), abs=1e-12)
            if by_group[g]["evidence"] == "ok":
                rates[g] = labels[m].mean()
        dp = next(g for g in fair["gaps"] if g["feature"] == feature and g["metric"] == "demographic_parity_difference")
        assert dp["value"] == pytest.approx(max(rates.values()) - min(rates.values()), abs=1e-12)
        assert dp["ci_low"] <= dp["value"] <= dp["ci_high"]


def test_shap_additivity_and_experiment_records(adult_run):
    shap = _report(adult_run, "shap")
    assert shap["additivity"]["passed"] if "additivity" in shap else shap["additivity_passed"]
    exps = _report(adult_run, "experiments")["records"]
    assert [r["model_type"] for r in exps] == ["logreg", "hgb"]
    for r in exps:
        assert re.fullmatch(r"EXP-\d{4}-\d{2}-\d{2}-\d{3}", r["id"])
        assert r["verdict"] in ("promoted", "archived", "iterate")
        assert r["dataset_sha256"]["train"] and r["hyperparameters"] and r["baseline_delta"]["baseline"]
    assert len({r["id"] for r in exps}) == 2
    assert sum(r["verdict"] == "promoted" for r in exps) == 1


def test_other_dataset_and_kill_criteria_stop_the_run(tmp_path, runs_dir):
    from testkit import make_churn

    make_churn(900).write_csv(tmp_path / "churn.csv")
    brief = write_brief(tmp_path / "churn.yaml", "churn.csv", success={"metric": "pr_auc", "threshold": 0.99},
                        kill_criteria=[{"id": "K1", "description": "PR-AUC below 0.99 on held-out data",
                                        "check": "success_threshold_missed"}])
    r = execute_run(brief_path=brief, params={"cv_folds": "3", "shap_sample": "100", "bootstrap_samples": "30", "candidates": "logreg,hgb"},
                    cfg=Settings(root=ROOT))
    assert r.status == "stopped" and r.exit_code == 3
    m = read_manifest(r.run_dir)
    assert m["gates"]["kill_criteria"]["passed"] is False and m["gates"]["kill_criteria"]["value"] == ["K1"]
    kill = json.loads((r.run_dir / "reports" / "kill_criteria.json").read_text())
    assert kill["criteria"][0]["triggered"] is True and "0.99" in kill["criteria"][0]["evidence"]
    fair = json.loads((r.run_dir / "reports" / "fairness.json").read_text())
    assert fair["features"] == ["region"]


@pytest.mark.slow
def test_full_adult_run_reaches_reference_quality(runs_dir):
    r = execute_run(brief_path=ADULT_BRIEF, cfg=Settings(root=ROOT))
    assert r.status == "succeeded", r.error
    lb = json.loads((r.run_dir / "reports" / "leaderboard.json").read_text())
    hgb = lb["models"]["hgb"]["test"]["metrics"]
    assert hgb["roc_auc"] >= 0.92
    assert hgb["accuracy"] > 0.859  # NBTree 85.9%, C4.5 84.5% (adult.names)
