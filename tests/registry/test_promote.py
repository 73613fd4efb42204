"""Promotion end to end: a real run (papermill), real ONNX export and parity, the real BentoML model store.

The run is of a small churn data set whose truth passes every gate (the Adult brief's own verdicts are the brief's
business: its race gap now asks for review), so these tests are about promotion, not about one data set."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from testkit import ROOT, isolated_workbench, make_churn, write_brief
from workbench.config import Settings
from workbench.runs import execute_run

pytestmark = [pytest.mark.notebook, pytest.mark.timeout(900)]

QUICK = {"cv_folds": "3", "shap_sample": "50", "bootstrap_samples": "50", "candidates": "logreg,hgb"}


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    with isolated_workbench(tmp_path_factory.mktemp("promo")) as base:
        yield base


@pytest.fixture(scope="module")
def adult_run(env):
    (env / "data").mkdir()
    make_churn(2000, seed=1).write_csv(env / "data" / "churn.csv")
    brief = write_brief(env / "data" / "churn.yaml", "churn.csv",
                        fairness={"min_slice_size": 30, "thresholds": {"demographic_parity_difference": 0.3}})
    r = execute_run(brief_path=brief, params=QUICK, cfg=Settings(root=ROOT))
    assert r.status == "succeeded", r.error
    return r


def _cli(*args, env_dir):
    return subprocess.run([sys.executable, "-m", "workbench", *args], capture_output=True, text=True, cwd=ROOT,
                          env={**os.environ}, timeout=600)


def test_promote_latest_registers_certified_model(adult_run, env):
    from workbench.registry.store import list_models

    out = _cli("promote", "latest", "--latency-calls", "200", env_dir=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "promoted" in out.stdout and "ONNX parity" in out.stdout
    models = list_models()
    assert len(models) == 1
    m = models[0]
    assert m.info.labels["stage"] == "certified" and m.info.metadata["run_id"] == adult_run.run_id
    files = {p.name for p in Path(m.path).iterdir()}
    assert {"model.onnx", "serving.json", "contract.json", "parity.json", "model_card.md", "model_card.html",
            "gates.json", "package.json"} <= files
    serving = json.loads((Path(m.path) / "serving.json").read_text())
    import hashlib

    onnx_sha = hashlib.sha256((Path(m.path) / "model.onnx").read_bytes()).hexdigest()
    assert serving["onnx_sha256"] == onnx_sha == m.info.metadata["onnx_sha256"]
    card = (Path(m.path) / "model_card.md").read_text()
    for section in ("## Intended use", "## Out-of-scope uses", "## Training data", "## Evaluation",
                    "### Metrics by group", "## Limitations", "## Ethical considerations", "## Maintenance"):
        assert section in card
    ls = subprocess.run([sys.executable, "-m", "bentoml", "models", "list", "-o", "json"], capture_output=True, text=True,
                        env={**os.environ}, timeout=120)
    assert str(m.tag) in ls.stdout
    from workbench.serving.pointer import production_tag

    assert production_tag() == str(m.tag)


def test_broken_parity_is_refused_and_registers_nothing(adult_run, env, monkeypatch):
    from workbench.export import onnx as onnx_mod
    from workbench.modeling import fit_model
    from workbench.registry import promote as promote_mod
    from workbench.registry.store import list_models

    real = onnx_mod.export_onnx

    def wrong_model_export(pipeline, *, features, numeric, target_opset=None, **kw):
        # Export a different model (trained on shuffled labels) in place of the certified one.
        from workbench.artifacts import RunFolder
        from workbench.data import load_dataset
        from workbench.experiments import model_frames

        run = RunFolder(adult_run.run_dir)
        b = run.brief()
        c = run.contract()
        f = model_frames(load_dataset(b), b, c)
        y = np.random.default_rng(0).permutation(f.y_train)
        other = fit_model("logreg", f.X_train, y, seed=0, contract=c)
        return real(other.model, features=features, numeric=numeric, **kw)

    monkeypatch.setattr("workbench.export.export_onnx", wrong_model_export)
    before = {str(m.tag) for m in list_models()}
    result = promote_mod.promote(adult_run.run_id, cfg=Settings(root=ROOT), latency_calls=50)
    assert not result.promoted
    assert "ONNX parity" in [g.name for g in result.gates.failed]
    assert {str(m.tag) for m in list_models()} == before
    from workbench.registry.ledger import read_ledger

    assert read_ledger()[-1]["action"] == "refused"


def test_tampered_artifact_fails_integrity_without_loading(adult_run, env, tmp_path):
    import shutil

    from workbench.registry.promote import promote

    copy = tmp_path / "runs" / adult_run.run_id
    shutil.copytree(adult_run.run_dir, copy)
    m = json.loads((copy / "manifest.json").read_text())
    sel = m["results"]["prototype"]["selected"]
    (copy / m["artifacts"][f"model_{sel}"]["path"]).write_bytes(b"not the model")
    result = promote(str(copy), cfg=Settings(root=ROOT), latency_calls=20)
    assert not result.promoted
    failed = [g.name for g in result.gates.failed]
    assert f"integrity: model artifact model_{sel}" in failed and "ONNX export" in failed
    evidence = next(g for g in result.gates.failed if g.name == "integrity: evidence")
    assert m["artifacts"][f"model_{sel}"]["path"] in evidence.value


def test_promote_latest_needs_one_brief_and_skips_unpromotable_runs(adult_run, env, tmp_path):
    """With runs of two briefs, `latest` needs --brief; a stopped newer run of the brief is skipped, and said."""
    from workbench.errors import RunError
    from workbench.registry.promote import certify

    runs = Path(os.environ["WORKBENCH_RUNS_DIR"])
    stopped = runs / "29990101-000000-churn-demo"
    stopped.mkdir()
    (stopped / "manifest.json").write_text(json.dumps({"run_id": stopped.name, "status": "stopped",
                                                       "brief": {"name": "churn-demo"}, "error": {"message": "x"}}))
    other = runs / "29990101-000001-other"
    other.mkdir()
    (other / "manifest.json").write_text(json.dumps({"run_id": other.name, "status": "succeeded",
                                                     "brief": {"name": "other"}}))
    try:
        with pytest.raises(RunError, match="briefs") as e:
            certify("latest", cfg=Settings(root=ROOT))
        assert e.value.exit_code == 2
        steps = []
        c = certify("latest", cfg=Settings(root=ROOT), brief="churn-demo", latency_calls=10, on_step=steps.append)
        assert c.run_id == adult_run.run_id
        assert any("skipped 1 newer run" in s and stopped.name in s for s in steps)
        out = _cli("promote", "nope-no-such-run", env_dir=env)
        assert out.returncode == 2, out.stdout + out.stderr
    finally:
        shutil.rmtree(stopped)
        shutil.rmtree(other)


def test_planted_fairness_violation_is_refused(env, tmp_path):
    rng = np.random.default_rng(3)
    df = make_churn(2000, seed=3)
    # Plant a bias: customers in the south almost never churn in the labels, everyone else often does.
    south = (df["Region"] == "south").to_numpy()
    churn = np.where(south, rng.random(len(df)) < 0.03, rng.random(len(df)) < 0.45).astype(int)
    df.with_columns(pl.Series("Churned", churn)).write_csv(tmp_path / "biased.csv")
    brief = write_brief(tmp_path / "biased.yaml", "biased.csv", success={"metric": "pr_auc", "threshold": 0.3},
                        fairness={"min_slice_size": 30, "thresholds": {"demographic_parity_difference": 0.1}})
    r = execute_run(brief_path=brief, params={"cv_folds": "3", "shap_sample": "100", "bootstrap_samples": "50", "candidates": "logreg,hgb"},
                    cfg=Settings(root=ROOT))
    assert r.status == "succeeded", r.error
    out = _cli("promote", r.run_id, "--latency-calls", "50", env_dir=env)
    assert out.returncode == 3, out.stdout + out.stderr
    assert "refused" in out.stderr and "demographic_parity_difference by region" in out.stderr + out.stdout
    from workbench.registry.store import list_models

    assert not any(m.info.metadata.get("run_id") == r.run_id for m in list_models())


def test_rollback_cli_after_two_promotions(adult_run, env):
    from workbench.registry import ledger

    for _ in range(2):
        done = _cli("promote", adult_run.run_id, "--latency-calls", "50", env_dir=env)
        assert done.returncode == 0, done.stderr
    attempts = sorted(Path(os.environ["WORKBENCH_PROMOTIONS_DIR"]).iterdir())
    assert len(attempts) == len(set(attempts)) and all((a / "gates.json").is_file() for a in attempts)
    # a later promotion of the same brief stops at staging: release it (with an approval) before rolling back
    staged = next(e["tag"] for e in reversed(ledger.read_ledger()) if e["action"] == "staged")
    rel = _cli("release", staged, "--approve", "test", "--load-seconds", "1", "--clients", "4", env_dir=env)
    assert rel.returncode == 0, rel.stdout + rel.stderr
    assert "released" in rel.stdout and "integration" in rel.stdout
    from workbench.serving.pointer import production_tag

    current = production_tag()
    out = _cli("rollback", "--reason", "test", env_dir=env)
    assert out.returncode == 0, out.stderr
    assert production_tag() != current and "rolled back" in out.stdout
    ledger.check_consistent()
    assert ledger.production_pointer()["package_sha256"]
