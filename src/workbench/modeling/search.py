"""Hyper-parameter search: Optuna's TPE sampler over each candidate family's few parameters that matter.

* :data:`SEARCH_SPACES` -- per family, the parameters searched and their ranges (``("int"|"float", low, high,
  log)`` or ``("cat", [choices])``);
* :func:`search_plan` -- the brief's ``search`` section (plus notebook overrides) checked and resolved;
* :func:`run_search` -- the search itself, on the training split only, returning a :class:`SearchReport`.

Protocol. Every trial of a family is scored by k-fold CV *inside the training split* (the same seeded folds for
every trial; stratified on the task's labels), on the run's primary metric. Trial 0 of every family is the
family's default parameters (``enqueue_trial``), so the report states the lift of the best over the defaults on
the same folds. After each fold the trial reports the running mean as an intermediate value and Optuna's
``MedianPruner`` stops trials that trail the median of earlier trials at the same fold. The sampler is a
``TPESampler(seed=seed)`` and trials run one at a time (``n_jobs=1``, every estimator single-threaded), so the
same seed and trial budget give the same best parameters. Time budgets (``timeout_s`` per family,
``total_timeout_s`` in all) are checked between trials (Optuna's ``timeout``; a trial is never cut in the
middle); a family stopped by its budget says so in ``stopped_by`` and the report's notes.

Bad input raises before any trial runs (:class:`~workbench.errors.BriefError` naming the brief key, exit 2):
an unknown family, a budget of 0, a parameter range the estimator rejects (a tiny fit at both ends of every
range). A family that completes no trial within its budget raises too. Nothing is written by this module: the
notebook saves the report once the search has succeeded.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .._report import Report, esc, html_table, jsonable
from ..errors import BriefError, ParameterError
from .candidates import candidates_for, make_candidate
from .frame import column_roles

__all__ = ["SEARCH_SPACES", "SearchPlan", "TrialRecord", "FamilySearch", "SearchReport", "search_plan",
           "run_search", "default_families"]

log = logging.getLogger(__name__)

Space = Mapping[str, tuple]

_GBM_COMMON = {"n_estimators": ("int", 100, 600, False), "colsample_bytree": ("float", 0.5, 1.0, False)}

SEARCH_SPACES: dict[str, dict[str, tuple]] = {
    "lgbm": {"learning_rate": ("float", 0.02, 0.2, True), "num_leaves": ("int", 8, 128, True),
             "min_child_samples": ("int", 5, 100, True), "reg_lambda": ("float", 1e-3, 10.0, True),
             **_GBM_COMMON},
    "xgb": {"learning_rate": ("float", 0.02, 0.3, True), "max_depth": ("int", 3, 10, False),
            "min_child_weight": ("float", 0.5, 20.0, True), "reg_lambda": ("float", 1e-2, 10.0, True),
            **_GBM_COMMON},
    "hgb": {"learning_rate": ("float", 0.02, 0.3, True), "max_iter": ("int", 100, 500, False),
            "max_leaf_nodes": ("int", 8, 128, True), "min_samples_leaf": ("int", 5, 100, True),
            "l2_regularization": ("float", 1e-3, 10.0, True)},
    "logreg": {"C": ("float", 1e-3, 100.0, True)},
    "ridge": {"alpha": ("float", 1e-3, 100.0, True)},
}
"""The parameters that matter for each family (learning rate, tree size and count, leaf size, L2, column
subsampling for the boosted trees; the regularisation strength for the linear models)."""


def default_families(task: str) -> list[str]:
    """The families searched when ``brief.search.families`` is empty (the task's ``search_families``)."""
    from .candidates import SEARCH_FAMILIES

    return list(SEARCH_FAMILIES[getattr(task, "name", task)])


# ---------------------------------------------------------------------------------------------- plan
@dataclass(frozen=True)
class SearchPlan:
    """What will be searched, resolved from the brief and the notebook's overrides."""

    families: list[str]
    n_trials: int
    timeout_s: float
    total_timeout_s: float
    cv_folds: int
    spaces: dict[str, dict[str, tuple]]
    enabled: bool = True

    def restricted_to(self, names: Sequence[str]) -> SearchPlan:
        """The plan with only the families among ``names`` (the notebook's ``candidates`` parameter)."""
        import dataclasses

        keep = [f for f in self.families if f in set(names)]
        return dataclasses.replace(self, families=keep, spaces={f: self.spaces[f] for f in keep})

    @property
    def active(self) -> list[str]:
        """The families that will be searched (none when the brief disables the search)."""
        return list(self.families) if self.enabled else []

    def to_dict(self) -> dict:
        return jsonable({"families": self.families, "n_trials": self.n_trials, "timeout_s": self.timeout_s,
                         "total_timeout_s": self.total_timeout_s, "cv_folds": self.cv_folds,
                         "enabled": self.enabled,
                         "spaces": {f: {p: list(v) for p, v in s.items()} for f, s in self.spaces.items()}})


def _space_override(family: str, base: dict[str, tuple], override: Mapping[str, Any]) -> dict[str, tuple]:
    out = dict(base)
    for param, value in override.items():
        key = f"search.spaces.{family}.{param}"
        kind = base.get(param, ("float",))[0]
        if isinstance(value, Sequence) and not isinstance(value, str) and len(value) == 2 and kind != "cat" \
                and all(isinstance(v, int | float) and not isinstance(v, bool) for v in value):
            lo, hi = value
            if not lo <= hi:
                raise BriefError(f"range [{lo}, {hi}] is empty", key=key, expected="[low, high] with low <= high")
            is_int = kind == "int" or (param not in base and all(isinstance(v, int) for v in value))
            log_scale = base.get(param, (None, None, None, False))[3] and lo > 0
            out[param] = ("int", int(lo), int(hi), bool(log_scale)) if is_int else \
                ("float", float(lo), float(hi), bool(log_scale))
        elif isinstance(value, Sequence) and not isinstance(value, str) and len(value) >= 1:
            out[param] = ("cat", list(value))
        else:
            raise BriefError(f"cannot read {value!r} as a search range", key=key,
                             expected="[low, high] (numbers) or a list of choices")
    return out


def search_plan(brief: Any, *, task: str, n_trials: int = 0, timeout_s: float = 0.0,
                spaces: Mapping[str, Mapping[str, Any]] | None = None) -> SearchPlan:
    """Resolve the brief's ``search`` section; ``n_trials`` / ``timeout_s`` > 0 override it (the notebook's
    ``search_trials`` / ``search_timeout``; 0 keeps the brief's). ``spaces`` narrows or widens ranges.

    Raises
    ------
    BriefError
        An unknown family (``search.families``), a budget of 0 (``search.n_trials``, ``search.timeout_s``,
        ``search.total_timeout_s``), a parameter the family does not have (``search.spaces.<family>.<name>``).
    """
    s = brief.search
    task_name = getattr(task, "name", task)
    known = candidates_for(task_name)
    families = list(s.families) or default_families(task_name)
    bad = [f for f in families if f not in known or f not in SEARCH_SPACES]
    if bad:
        valid = [f for f in known if f in SEARCH_SPACES]
        raise BriefError(f"unknown search family {', '.join(map(repr, bad))} for {task_name}",
                         key="search.families", expected=f"some of: {', '.join(valid)}")
    if len(set(families)) != len(families):
        raise BriefError("lists a family twice", key="search.families", expected="each family once")
    trials = int(n_trials) if n_trials else int(s.n_trials)
    per_family = float(timeout_s) if timeout_s else float(s.timeout_s)
    total = max(float(s.total_timeout_s), per_family) if timeout_s else float(s.total_timeout_s)
    for key, value in (("search.n_trials", trials), ("search.timeout_s", per_family),
                       ("search.total_timeout_s", total), ("search.cv_folds", s.cv_folds - 1)):
        if not value > 0 or (isinstance(value, float) and not math.isfinite(value)):
            raise BriefError(f"is {value!r}: a search needs a positive budget", key=key,
                             expected="a positive number" if key != "search.cv_folds" else "at least 2 folds")
    resolved: dict[str, dict[str, tuple]] = {}
    for f in families:
        resolved[f] = _space_override(f, SEARCH_SPACES[f], (spaces or {}).get(f, {}))
    unknown_spaces = [f for f in (spaces or {}) if f not in families]
    if unknown_spaces:
        raise BriefError(f"ranges given for families not searched: {', '.join(unknown_spaces)}",
                         key="search.spaces", expected=f"ranges for: {', '.join(families)}")
    return SearchPlan(families=families, n_trials=trials, timeout_s=per_family, total_timeout_s=total,
                      cv_folds=int(s.cv_folds), spaces=resolved, enabled=bool(getattr(s, "enabled", True)))


def _check_space(family: str, space: dict[str, tuple], X: Any, y: np.ndarray, *, roles: Any, task: str,
                 seed: int) -> None:
    """Every parameter exists, and a tiny fit at each end of every range succeeds."""
    probe = make_candidate(family, roles, seed=seed, task=task)
    valid = probe.get_params(deep=True)
    n = min(len(y), 60)
    idx = np.linspace(0, len(y) - 1, n).round().astype(int)
    Xs, ys = X.iloc[idx], np.asarray(y)[idx]
    for param, spec in space.items():
        key = f"search.spaces.{family}.{param}"
        if f"model__{param}" not in valid:
            shown = sorted(k.removeprefix("model__") for k in valid if k.startswith("model__")
                           and "__" not in k.removeprefix("model__"))
            raise BriefError(f"{family} has no parameter {param!r}", key=key,
                             expected=f"one of: {', '.join(shown)}")
        ends = spec[1] if spec[0] == "cat" else [spec[1], spec[2]]
        for value in ends:
            small = {k: 5 for k in ("n_estimators", "max_iter") if f"model__{k}" in valid and k != param}
            try:
                est = make_candidate(family, roles, seed=seed, task=task, params={**small, param: value})
                est.fit(Xs, ys)
            except Exception as exc:  # noqa: BLE001 - whatever the library raises for a bad value
                raise BriefError(f"{family} rejects {param}={value!r}: {type(exc).__name__}: {exc}", key=key,
                                 expected="a range the estimator accepts") from None


# ---------------------------------------------------------------------------------------------- report
@dataclass
class TrialRecord:
    """One trial: its parameters, per-fold scores (on the primary metric), mean, seconds and state."""

    number: int
    params: dict
    fold_scores: list[float]
    value: float | None
    seconds: float
    state: str  # "complete" | "pruned"
    default: bool = False

    def to_dict(self) -> dict:
        return jsonable(dict(self.__dict__))


@dataclass
class FamilySearch:
    """One family's search: every trial, the best, the defaults' score on the same folds, what stopped it."""

    family: str
    trials: list[TrialRecord]
    best_params: dict
    best_value: float
    default_value: float | None
    seconds: float
    n_trials: int
    timeout_s: float
    stopped_by: str  # "n_trials" | "timeout" | "total_timeout"
    importances: dict[str, float] = field(default_factory=dict)

    @property
    def n_complete(self) -> int:
        return sum(t.state == "complete" for t in self.trials)

    @property
    def n_pruned(self) -> int:
        return sum(t.state == "pruned" for t in self.trials)

    def lift(self, greater_is_better: bool) -> float | None:
        if self.default_value is None:
            return None
        return (self.best_value - self.default_value) * (1 if greater_is_better else -1)

    def to_dict(self, greater_is_better: bool = True) -> dict:
        return jsonable({"family": self.family, "best_params": self.best_params, "best_value": self.best_value,
                         "default_value": self.default_value, "lift_over_default": self.lift(greater_is_better),
                         "seconds": self.seconds, "n_trials_budget": self.n_trials, "timeout_s": self.timeout_s,
                         "stopped_by": self.stopped_by, "n_complete": self.n_complete, "n_pruned": self.n_pruned,
                         "importances": self.importances, "trials": [t.to_dict() for t in self.trials]})


@dataclass
class SearchReport(Report):
    """The whole search: the plan, each family's :class:`FamilySearch`, notes (budgets reached)."""

    task: str
    metric: str
    greater_is_better: bool
    seed: int
    plan: SearchPlan
    families: dict[str, FamilySearch]
    seconds: float
    notes: list[str] = field(default_factory=list)
    title: str = "Hyper-parameter search"

    def best_params(self, family: str) -> dict:
        return dict(self.families[family].best_params)

    def to_dict(self) -> dict:
        return jsonable({"task": self.task, "metric": self.metric, "greater_is_better": self.greater_is_better,
                         "seed": self.seed, "sampler": "optuna TPESampler(seed)", "pruner": "MedianPruner (per fold)",
                         "plan": self.plan.to_dict(), "seconds": self.seconds, "notes": self.notes,
                         "families": {f: s.to_dict(self.greater_is_better) for f, s in self.families.items()}})

    def summary(self) -> dict:
        return {f: {"best_cv": round(s.best_value, 6), "default_cv": None if s.default_value is None
                    else round(s.default_value, 6), "trials": len(s.trials), "pruned": s.n_pruned,
                    "seconds": round(s.seconds, 1), "stopped_by": s.stopped_by}
                for f, s in self.families.items()}

    def rows(self) -> list[dict]:
        out = []
        for f, s in self.families.items():
            lift = s.lift(self.greater_is_better)
            out.append({"family": f, f"best cv {self.metric}": round(s.best_value, 4),
                        f"default cv {self.metric}": None if s.default_value is None else round(s.default_value, 4),
                        "lift": None if lift is None else round(lift, 4), "trials": len(s.trials),
                        "pruned": s.n_pruned, "seconds": round(s.seconds, 1), "stopped by": s.stopped_by,
                        "best parameters": ", ".join(f"{k}={_fmt(v)}" for k, v in s.best_params.items())})
        return out

    def _html_body(self) -> str:
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        return (f"<p>TPE (seed {self.seed}), median pruning on {self.plan.cv_folds} CV folds of the training split, "
                f"metric <b>{esc(self.metric)}</b>; trial 0 of each family is its default parameters. "
                f"{self.seconds:.1f} s in all.</p>" + html_table(self.rows())
                + (f"<ul>{notes}</ul>" if notes else ""))

    def plot_history(self, ax: Any = None) -> Any:
        """Each family's trial values (dots; pruned trials hollow) and best-so-far (line)."""
        from matplotlib.figure import Figure

        fig = None
        if ax is None:
            fig = Figure(figsize=(7, 3.6))
            ax = fig.add_subplot()
        colors = ["#1b9e77", "#d95f02", "#7570b3", "#e7298a", "#66a61e"]
        for i, (f, s) in enumerate(self.families.items()):
            c = colors[i % len(colors)]
            done = [t for t in s.trials if t.state == "complete"]
            ax.plot([t.number for t in done], [t.value for t in done], "o", color=c, ms=4, label=f"{f} trials")
            pruned = [t for t in s.trials if t.state == "pruned" and t.value is not None]
            ax.plot([t.number for t in pruned], [t.value for t in pruned], "o", mfc="none", color=c, ms=4)
            best, xs, ys = None, [], []
            for t in done:
                if best is None or (t.value > best if self.greater_is_better else t.value < best):
                    best = t.value
                xs.append(t.number)
                ys.append(best)
            ax.step(xs, ys, where="post", color=c, lw=1.2, label=f"{f} best so far")
        ax.set(xlabel="trial", ylabel=f"cv {self.metric}", title="Optimisation history (hollow: pruned)")
        ax.legend(fontsize=8)
        return fig if fig is not None else ax

    def plot_importances(self, ax: Any = None) -> Any:
        """Optuna's fANOVA parameter importances per family (horizontal bars)."""
        from matplotlib.figure import Figure

        fams = [f for f, s in self.families.items() if s.importances]
        fig = None
        if ax is None:
            fig = Figure(figsize=(4.2 * max(1, len(fams)), 3.2))
            axes = fig.subplots(1, max(1, len(fams)), squeeze=False)[0]
        else:
            axes = [ax]
        if not fams:
            axes[0].text(0.5, 0.5, "too few complete trials for importances", ha="center", va="center")
            axes[0].set_axis_off()
        for a, f in zip(axes, fams, strict=False):
            imp = self.families[f].importances
            names = list(imp)[::-1]
            a.barh(names, [imp[n] for n in names], color="#1b9e77")
            a.set(xlabel="importance (fANOVA)", title=f"{f}: parameter importances")
        if fig is not None:
            fig.tight_layout()
        return fig if fig is not None else ax


def _fmt(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


# ---------------------------------------------------------------------------------------------- search
def _metric(task: Any, primary: str, threshold: float | None) -> Any:
    if task.name == "binary_classification":
        from ..evaluation.metrics import METRICS

        f = METRICS[primary]
        t = 0.5 if threshold is None else float(threshold)
        return lambda y, s: float(f(y, s, threshold=t))
    if task.name == "multiclass_classification":
        from ..evaluation.multiclass import MULTICLASS_METRICS

        return lambda y, s: float(MULTICLASS_METRICS[primary](y, s))
    from ..evaluation.regression import REGRESSION_METRICS

    return lambda y, s: float(REGRESSION_METRICS[primary](y, s))


def _folds(task: Any, y: np.ndarray, n_splits: int, seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    from sklearn.model_selection import StratifiedKFold

    labels = task.stratify_labels(y)
    counts = np.bincount(np.asarray(labels, dtype=np.int64))
    smallest = int(counts[counts > 0].min())
    if task.is_classifier and smallest < n_splits:
        from ..errors import DataError

        raise DataError(f"a class has {smallest} training rows, fewer than the {n_splits} search folds",
                        hint=f"set search.cv_folds to {max(2, smallest)} or fewer")
    if smallest < n_splits:  # regression bins: merge is the task's job; fall back to plain folds
        from sklearn.model_selection import KFold

        return list(KFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y))))
    return list(StratifiedKFold(n_splits, shuffle=True, random_state=seed).split(np.zeros(len(y)), labels))


def _suggest(trial: Any, space: dict[str, tuple]) -> dict:
    out = {}
    for p, spec in space.items():
        if spec[0] == "int":
            out[p] = trial.suggest_int(p, spec[1], spec[2], log=bool(spec[3]))
        elif spec[0] == "float":
            out[p] = trial.suggest_float(p, spec[1], spec[2], log=bool(spec[3]))
        else:
            out[p] = trial.suggest_categorical(p, list(spec[1]))
    return out


def _defaults_in_space(family: str, space: dict[str, tuple], roles: Any, task: str, seed: int) -> dict | None:
    """The family's default parameters, when every one lies inside the searched ranges (else None)."""
    est = make_candidate(family, roles, seed=seed, task=task).named_steps["model"]
    params = est.get_params(deep=False)
    out = {}
    for p, spec in space.items():
        v = params.get(p)
        if spec[0] == "cat":
            if v not in spec[1]:
                return None
        elif v is None or not spec[1] <= v <= spec[2]:
            return None
        out[p] = v
    return out


def run_search(X: Any, y: Any, *, plan: SearchPlan, task: str, primary: str, seed: int, contract: Any = None,
               threshold: float | None = None, check_spaces: bool = True) -> SearchReport:
    """Search every family of ``plan`` on the training split ``X, y`` (see the module docstring).

    Raises
    ------
    BriefError
        A parameter range the estimator rejects, or a family that completed no trial in its budget.
    ParameterError
        ``X`` and ``y`` differ in length, or no rows.
    """
    import optuna

    from ..tasks import get_task

    spec = get_task(task)
    y = np.asarray(y)
    if len(X) != len(y) or not len(y):
        raise ParameterError(f"X has {len(X)} rows and y {len(y)}: need the same, non-zero number",
                             parameter="X")
    roles = column_roles(contract if contract is not None else X)
    X = X[roles.features]
    greater = spec.greater_is_better(primary)
    score = _metric(spec, primary, threshold)
    folds = _folds(spec, y, plan.cv_folds, seed)
    if check_spaces:
        for f in plan.families:
            _check_space(f, plan.spaces[f], X, y, roles=roles, task=spec.name, seed=seed)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    start_all = time.perf_counter()
    out: dict[str, FamilySearch] = {}
    notes: list[str] = []
    for f in plan.families:
        remaining = plan.total_timeout_s - (time.perf_counter() - start_all)
        if remaining <= 0:
            raise BriefError(f"the whole search's budget ran out before family {f!r} could run one trial",
                             key="search.total_timeout_s",
                             expected=f"more than the {plan.total_timeout_s:g} s the earlier families used")
        budget = min(plan.timeout_s, remaining)
        space = plan.spaces[f]
        records: list[TrialRecord] = []

        def objective(trial: Any, f: str = f, space: dict = space, records: list = records) -> float:
            params = _suggest(trial, space)
            t0 = time.perf_counter()
            scores: list[float] = []
            for k, (tr, va) in enumerate(folds):
                model = make_candidate(f, roles, seed=seed, task=spec.name, params=params)
                model.fit(X.iloc[tr], y[tr])
                scores.append(score(y[va], spec.scores(model, X.iloc[va])))
                trial.report(float(np.mean(scores)), k)
                if trial.should_prune():
                    records.append(TrialRecord(trial.number, params, scores, float(np.mean(scores)),
                                               time.perf_counter() - t0, "pruned",
                                               default=bool(trial.user_attrs.get("default"))))
                    raise optuna.TrialPruned()
            value = float(np.mean(scores))
            records.append(TrialRecord(trial.number, params, scores, value, time.perf_counter() - t0, "complete",
                                       default=bool(trial.user_attrs.get("default"))))
            return value

        sampler = optuna.samplers.TPESampler(seed=seed)
        pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
        study = optuna.create_study(direction="maximize" if greater else "minimize", sampler=sampler,
                                    pruner=pruner, study_name=f"{spec.name}-{f}")
        defaults = _defaults_in_space(f, space, roles, spec.name, seed)
        if defaults is not None:
            study.enqueue_trial(defaults, user_attrs={"default": True})
        t0 = time.perf_counter()
        study.optimize(objective, n_trials=plan.n_trials, timeout=budget, n_jobs=1, catch=(),
                       gc_after_trial=False, show_progress_bar=False)
        seconds = time.perf_counter() - t0
        complete = [t for t in records if t.state == "complete"]
        if not complete:
            raise BriefError(f"family {f!r} completed no trial in {seconds:.1f} s (every trial was pruned or the "
                             f"budget ran out)", key="search.timeout_s",
                             expected="a budget long enough for at least one full CV trial")
        if len(records) >= plan.n_trials:
            stopped = "n_trials"
        elif budget < plan.timeout_s - 1e-2:  # the whole search's budget was the tighter one
            stopped = "total_timeout"
        else:
            stopped = "timeout"
        if stopped != "n_trials":
            which = "search.total_timeout_s" if stopped == "total_timeout" else "search.timeout_s"
            notes.append(f"{f}: stopped by its time budget ({which}, {budget:.0f} s) after {len(records)} of "
                         f"{plan.n_trials} trials")
        best = study.best_trial
        default_rec = next((t for t in records if t.default and t.state == "complete"), None)
        importances: dict[str, float] = {}
        if len(complete) >= 4 and len(space) > 1:
            try:
                imp = optuna.importance.get_param_importances(
                    study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed))
                importances = {k: float(v) for k, v in imp.items()}
            except (RuntimeError, ValueError):  # too few distinct values
                importances = {}
        out[f] = FamilySearch(family=f, trials=records, best_params=dict(best.params), best_value=float(best.value),
                              default_value=None if default_rec is None else default_rec.value, seconds=seconds,
                              n_trials=plan.n_trials, timeout_s=budget, stopped_by=stopped,
                              importances=importances)
        log.info("search %s: %d trials (%d pruned) in %.1f s, best cv %s %.4f", f, len(records),
                 out[f].n_pruned, seconds, primary, best.value)
    return SearchReport(task=spec.name, metric=primary, greater_is_better=greater, seed=int(seed), plan=plan,
                        families=out, seconds=time.perf_counter() - start_all, notes=notes)
