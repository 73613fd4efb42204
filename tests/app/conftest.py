"""App fixtures: one real run (papermill, small sample) promoted through the real gates into a throwaway BentoML
home, shared by the app-data tests and the browser test (about 30 s, once per test session)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ADULT_BRIEF = ROOT / "briefs" / "adult.yaml"
APP = ROOT / "notebooks" / "stakeholder_app.py"
QUICK = {"sample_rows": "3000", "cv_folds": "2", "shap_sample": "200", "bootstrap_samples": "50",
         "candidates": "logreg,hgb"}
ENV_KEYS = ("WORKBENCH_RUNS_DIR", "BENTOML_HOME", "WORKBENCH_PROMOTIONS_DIR", "WORKBENCH_MODEL_TAG",
            "WORKBENCH_LOG_DIR")


@dataclass
class PromotedRun:
    base: Path
    run_id: str
    run_dir: Path
    tag: str
    env: dict[str, str]
    seconds: float


def _sample_adult_brief(base: Path) -> Path:
    """The bundled Adult brief for a 3,000-row sample: its small race groups (and their intersections with sex)
    differ from the full data's, so every group is acknowledged -- these tests are about what the app shows; the
    fairness gates have their own tests."""
    import yaml

    raw = yaml.safe_load(ADULT_BRIEF.read_text())
    raw["data"] = {**raw["data"], "train": str(ROOT / "data" / "adult_train.parquet"),
                   "test": str(ROOT / "data" / "adult_test.parquet")}
    races = ["White", "Black", "Asian-Pac-Islander", "Amer-Indian-Eskimo", "Other"]
    reason = "test fixture: a 3,000-row sample"
    raw["fairness"]["acknowledge"] = [
        {"feature": "race", "groups": races, "reason": reason},
        {"feature": "sex & race", "groups": [f"{s} & {r}" for s in ("Female", "Male") for r in races],
         "reason": reason}]
    dest = base / "adult_sample.yaml"
    dest.write_text(yaml.safe_dump(raw, sort_keys=False))
    return dest


@pytest.fixture(scope="package")
def promoted(tmp_path_factory) -> PromotedRun:
    """A succeeded Adult run (3,000 rows) and its promotion; the environment points at them while tests run."""
    from workbench.config import Settings
    from workbench.registry.promote import promote
    from workbench.runs import execute_run

    base = tmp_path_factory.mktemp("app")
    env = {"WORKBENCH_RUNS_DIR": str(base / "runs"), "BENTOML_HOME": str(base / "bentoml"),
           "WORKBENCH_PROMOTIONS_DIR": str(base / "promotions")}
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    os.environ.update(env)
    os.environ.pop("WORKBENCH_MODEL_TAG", None)
    os.environ.pop("WORKBENCH_LOG_DIR", None)
    try:
        t0 = time.perf_counter()
        cfg = Settings(root=ROOT)
        run = execute_run(brief_path=_sample_adult_brief(base), params=QUICK, cfg=cfg)
        assert run.status == "succeeded", run.error
        result = promote(run.run_id, cfg=cfg, latency_calls=50)
        assert result.promoted, [g.name for g in result.gates.failed]
        yield PromotedRun(base=base, run_id=run.run_id, run_dir=run.run_dir, tag=result.tag, env=env,
                          seconds=time.perf_counter() - t0)
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


# ---------------------------------------------------------------------------------------------- other tasks
TASK_BRIEFS = {"regression": ROOT / "briefs" / "wage.yaml",
               "multiclass_classification": ROOT / "briefs" / "penguins.yaml"}
TASK_QUICK = {"regression": {"sample_rows": "1500", "cv_folds": "3", "shap_sample": "100", "bootstrap_samples": "50",
                             "candidates": "ridge,hgb"},
              "multiclass_classification": {"sample_rows": "0", "cv_folds": "3", "shap_sample": "100",
                                            "bootstrap_samples": "50", "candidates": "logreg,hgb"}}


def _test_brief(task: str, dest: Path) -> Path:
    """The bundled brief with an absolute data path; the regression brief's relative-MAE gap is loosened so a
    1,500-row sample (wide intervals on small intersections) is promoted: these tests are about what the
    outputs show, the gates have their own tests."""
    import yaml

    src = TASK_BRIEFS[task]
    brief = yaml.safe_load(src.read_text())
    brief["data"]["train"] = str((src.parent / brief["data"]["train"]).resolve())
    if task == "regression":
        brief["fairness"]["thresholds"] = {**brief["fairness"]["thresholds"], "mae_relative_difference": 2.0}
    path = dest / src.name
    path.write_text(yaml.safe_dump(brief, sort_keys=False))
    return path


@pytest.fixture(scope="package", params=["regression", "multiclass_classification"])
def task_run(request, tmp_path_factory) -> PromotedRun:
    """A succeeded, promoted run of a regression (wage, 1,500 rows) or multiclass (penguins) brief, each in its
    own runs folder and BentoML home. The environment points at it only inside :func:`task_env`."""
    from workbench.config import Settings
    from workbench.registry.promote import promote
    from workbench.runs import execute_run

    task = request.param
    base = tmp_path_factory.mktemp(task.split("_")[0])
    env = {"WORKBENCH_RUNS_DIR": str(base / "runs"), "BENTOML_HOME": str(base / "bentoml"),
           "WORKBENCH_PROMOTIONS_DIR": str(base / "promotions"), "WORKBENCH_LOG_DIR": str(base / "log")}
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    os.environ.update(env)
    os.environ.pop("WORKBENCH_MODEL_TAG", None)
    try:
        t0 = time.perf_counter()
        cfg = Settings(root=Path(os.environ.get("WORKBENCH_TEST_ROOT", ROOT)))
        run = execute_run(brief_path=_test_brief(task, base), params=TASK_QUICK[task], cfg=cfg)
        assert run.status == "succeeded", run.error
        result = promote(run.run_id, cfg=cfg, latency_calls=50)
        assert result.promoted, [g.name for g in result.gates.failed]
        promoted = PromotedRun(base=base, run_id=run.run_id, run_dir=run.run_dir, tag=result.tag, env=env,
                               seconds=time.perf_counter() - t0)
    finally:
        _restore(saved)
    return promoted


def _restore(saved: dict) -> None:
    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v


@pytest.fixture
def task_env(task_run):
    """The environment of :func:`task_run` for one test."""
    saved = {k: os.environ.get(k) for k in ENV_KEYS}
    os.environ.update(task_run.env)
    os.environ.pop("WORKBENCH_MODEL_TAG", None)
    try:
        yield task_run
    finally:
        _restore(saved)
