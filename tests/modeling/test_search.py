"""Hyper-parameter search: reproducible, budgeted, recorded; bad input is a named brief error (exit 2)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from threadpoolctl import threadpool_limits

from workbench.brief import Brief
from workbench.errors import BriefError
from workbench.modeling import candidates_for
from workbench.modeling.search import SearchReport, run_search, search_plan


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    with threadpool_limits(limits=1):
        yield


def _brief(task: str = "binary_classification", **search) -> Brief:
    target = {"column": "y", "positive_label": "1"} if task == "binary_classification" else {"column": "y"}
    return Brief.model_validate({"name": "t", "objective": "t", "task": task, "data": {"train": "x.parquet"},
                                 "target": target, "success": {"metric": "accuracy" if task != "regression"
                                                               else "mae", "threshold": 0.5},
                                 "latency_budget_ms": 10, "search": search})


def _data(n: int = 240, seed: int = 0, task: str = "binary_classification"):
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n),
                      "c": pd.Series(rng.choice(["u", "v", "w"], size=n), dtype=object)})
    z = X["a"] + 0.5 * X["b"] + (X["c"] == "u") + rng.normal(scale=0.5, size=n)
    if task == "regression":
        return X, z.to_numpy()
    if task == "multiclass_classification":
        return X, np.digitize(z, np.quantile(z, [1 / 3, 2 / 3])).astype(np.int64)
    return X, (z > 0).astype(np.int64).to_numpy()


def _search(task="binary_classification", primary="roc_auc", seed=7, **search):
    brief = _brief(task, **{"n_trials": 4, "cv_folds": 2, **search})
    X, y = _data(task=task)
    plan = search_plan(brief, task=task)
    return run_search(X, y, plan=plan, task=task, primary=primary, seed=seed, check_spaces=False)


def test_same_seed_and_trial_budget_give_the_same_best_parameters():
    a = _search(families=["lgbm"])
    b = _search(families=["lgbm"])
    assert a.best_params("lgbm") == b.best_params("lgbm")
    assert [t.value for t in a.families["lgbm"].trials] == [t.value for t in b.families["lgbm"].trials]
    c = _search(families=["lgbm"], seed=8)
    assert c.families["lgbm"].trials[1].params != a.families["lgbm"].trials[1].params


def test_every_trial_is_recorded_and_trial_0_is_the_default():
    rep = _search(families=["lgbm", "xgb"])
    assert isinstance(rep, SearchReport)
    d = json.loads(rep.to_json())
    for fam in ("lgbm", "xgb"):
        trials = d["families"][fam]["trials"]
        assert len(trials) == 4
        assert trials[0]["default"] is True
        assert {t["state"] for t in trials} <= {"complete", "pruned"}
        assert all(t["seconds"] >= 0 and t["params"] and t["fold_scores"] for t in trials)
        assert d["families"][fam]["stopped_by"] == "n_trials"
        assert d["families"][fam]["lift_over_default"] >= 0
    assert "<table" in rep._repr_html_()
    assert rep.plot_history() is not None and rep.plot_importances() is not None


@pytest.mark.parametrize("task,primary", [("multiclass_classification", "macro_f1"), ("regression", "mae")])
def test_other_tasks(task, primary):
    rep = _search(task=task, primary=primary, families=["xgb"], n_trials=3)
    fam = rep.families["xgb"]
    assert fam.n_complete >= 1 and rep.greater_is_better == (primary != "mae")


def test_a_search_past_its_budget_stops_cleanly_and_says_so():
    rep = _search(families=["lgbm"], n_trials=200, timeout_s=0.5, total_timeout_s=0.5)
    fam = rep.families["lgbm"]
    assert 1 <= len(fam.trials) < 200 and fam.stopped_by == "timeout"
    assert any("time budget" in n for n in rep.notes)


def test_defaults_are_the_tasks_search_families():
    plan = search_plan(_brief(), task="binary_classification")
    assert plan.families == ["lgbm", "xgb"] and set(plan.families) <= set(candidates_for("binary_classification"))


def test_unknown_family_is_a_brief_error():
    with pytest.raises(BriefError, match="search.families") as e:
        search_plan(_brief(families=["catboost"]), task="binary_classification")
    assert e.value.exit_code == 2


def test_budget_of_zero_is_refused():
    from pydantic import ValidationError

    with pytest.raises(ValidationError):  # the brief itself refuses n_trials: 0
        _brief(n_trials=0)
    from workbench.errors import ParameterError
    from workbench.params import validate_params

    with pytest.raises(ParameterError, match="search_trials"):
        validate_params("prototype", {"brief_path": __file__, "search_trials": -1})


def test_a_parameter_range_the_estimator_rejects_is_a_brief_error():
    X, y = _data()
    plan = search_plan(_brief(families=["lgbm"], n_trials=2, cv_folds=2), task="binary_classification",
                       spaces={"lgbm": {"learning_rate": [-1.0, 0.1]}})
    with pytest.raises(BriefError, match="search.spaces.lgbm.learning_rate"):
        run_search(X, y, plan=plan, task="binary_classification", primary="roc_auc", seed=0)
    with pytest.raises(BriefError, match="no parameter"):
        plan = search_plan(_brief(families=["xgb"], n_trials=2, cv_folds=2), task="binary_classification",
                           spaces={"xgb": {"num_leaves_typo": [2, 8]}})
        run_search(X, y, plan=plan, task="binary_classification", primary="roc_auc", seed=0)


def test_a_search_that_finishes_no_trial_is_a_brief_error(monkeypatch):
    import workbench.modeling.search as s

    X, y = _data()
    plan = search_plan(_brief(families=["lgbm"], n_trials=2, cv_folds=2), task="binary_classification")
    monkeypatch.setattr(s, "_defaults_in_space", lambda *a, **k: None)

    class AlwaysPrune:
        def __init__(self, *a, **k):
            pass

        def prune(self, study, trial):
            return True

    monkeypatch.setattr(s.optuna.pruners if hasattr(s, "optuna") else __import__("optuna").pruners,
                        "MedianPruner", AlwaysPrune)
    with pytest.raises(BriefError, match="completed no trial"):
        run_search(X, y, plan=plan, task="binary_classification", primary="roc_auc", seed=0, check_spaces=False)
