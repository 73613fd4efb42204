"""Prototype-phase bookkeeping: evaluate every model the same way, rank them against the best baseline,
write one experiment record per candidate and evaluate the brief's kill criteria.

* :func:`evaluate_model` -- stratified CV on the training split, one fit on all of it, one held-out evaluation;
* :class:`Leaderboard` -- baselines and candidates side by side, deltas against the best baseline, the selection;
* :func:`experiment_records` -- the methodology's experiment template, ids ``EXP-YYYY-MM-DD-NNN``;
* :func:`evaluate_kill_criteria` -- each criterion of the brief with its verdict and evidence.

Selection uses cross-validation on the training split (never the test split); the held-out test split is used
once, for the figures that are reported and gated on.
"""

from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ._report import Report, esc, html_table
from .brief import Brief
from .evaluation.metrics import CVReport, EvaluationReport
from .modeling import FittedModel, candidates_for, column_roles, fit_model, make_baseline, make_candidate
from .tasks import get_task

__all__ = ["ModelFrames", "model_frames", "predictions_frame", "sensitive_groups", "ModelResult", "Leaderboard",
           "ExperimentRecord", "KillCriteriaReport", "evaluate_model", "evaluate_on", "evaluate_searched", "apply_calibration",
           "calibrate_selected",
           "build_leaderboard", "experiment_records",
           "evaluate_kill_criteria", "next_experiment_number"]


@dataclass
class ModelFrames:
    """What every model is trained and evaluated on: pandas model frames, encoded targets (see
    :mod:`workbench.tasks`: 0/1, class codes or numbers), the sensitive groups of the test rows."""

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_test: pd.DataFrame
    y_test: np.ndarray
    sensitive_test: pd.DataFrame
    test_rows: np.ndarray
    task: str = "binary_classification"
    classes: list[str] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def positive_rate(self) -> float:
        """Binary: the training positive rate (NaN for the other tasks)."""
        return float(self.y_train.mean()) if self.task == "binary_classification" else float("nan")

    @property
    def target_std(self) -> float:
        """Regression: the training target's standard deviation (parity tolerances scale with it)."""
        return float(np.std(self.y_train, ddof=1)) if len(self.y_train) > 1 else 0.0

    def describe(self) -> str:
        """One line about the target, in the task's terms."""
        if self.task == "binary_classification":
            return f"{self.positive_rate:.1%} positive"
        if self.classes is not None:
            counts = np.bincount(self.y_train, minlength=len(self.classes))
            return ", ".join(f"{c} {n / counts.sum():.0%}" for c, n in zip(self.classes, counts, strict=True))
        return f"mean {np.mean(self.y_train):.4g}, std {self.target_std:.4g}"


from .data.sensitive import sensitive_bin_edges, sensitive_groups  # noqa: E402 - re-exported


def model_frames(data: Any, brief: Brief, contract: Any) -> ModelFrames:
    """Drop rows without a target, encode it for the task, then build the model frames (the one polars ->
    pandas step). Multiclass test rows whose class never occurs in training are dropped, with a note."""
    import polars as pl

    from .modeling import to_model_frame

    task = brief.task_spec
    t = brief.target.column
    train = data.train.filter(pl.col(t).is_not_null())
    test = data.test.with_row_index("__row__").filter(pl.col(t).is_not_null())
    classes = task.classes(train.get_column(t), brief=brief)
    notes = []
    y_train = task.encode_target(train.get_column(t), brief=brief, classes=classes)
    y_test = task.encode_target(test.get_column(t), brief=brief, classes=classes)
    if classes is not None and (y_test < 0).any():
        unseen = sorted(set(test.filter(pl.Series(y_test < 0)).get_column(t).cast(pl.String).to_list()))
        notes.append(f"{int((y_test < 0).sum())} test rows dropped: their class ({', '.join(unseen)}) never "
                     "occurs in the training split")
        test, y_test = test.filter(pl.Series(y_test >= 0)), y_test[y_test >= 0]
    if task.name == "binary_classification":
        y_train, y_test = y_train.astype(np.int64), y_test.astype(np.int64)
    edges = sensitive_bin_edges(train, brief)
    return ModelFrames(
        X_train=to_model_frame(train, contract), y_train=y_train,
        X_test=to_model_frame(test.drop("__row__"), contract), y_test=y_test,
        sensitive_test=sensitive_groups(test, brief, edges), test_rows=test.get_column("__row__").to_numpy(),
        task=task.name, classes=classes, notes=notes,
    )


def predictions_frame(frames: ModelFrames, results: dict[str, ModelResult], *, threshold: float | None = None
                      ) -> Any:
    """Held-out predictions of every model, with labels and sensitive columns: the evidence later stages
    (and anyone re-checking the fairness report) recompute from. Binary: ``proba_<model>`` and
    ``label_<model>``; multiclass: ``label_<model>`` (class code) and ``proba_<model>_<k>`` per class code;
    regression: ``pred_<model>``."""
    import polars as pl

    cols: dict[str, Any] = {"row": frames.test_rows, "y_true": frames.y_test}
    for name, r in results.items():
        s = np.asarray(r.test_scores, dtype=np.float64)
        if frames.task == "binary_classification":
            cols[f"proba_{name}"] = s
            cols[f"label_{name}"] = (s > (0.5 if threshold is None else threshold)).astype(np.int8)
        elif frames.task == "multiclass_classification":
            cols[f"label_{name}"] = np.argmax(s, axis=1).astype(np.int64)
            for k in range(s.shape[1]):
                cols[f"proba_{name}_{k}"] = s[:, k]
        else:
            cols[f"pred_{name}"] = s
    out = pl.DataFrame(cols)
    if len(frames.sensitive_test.columns):
        out = out.hstack(pl.from_pandas(frames.sensitive_test))
    return out


@dataclass
class ModelResult:
    """One model evaluated: the fitted model, its CV report, its held-out report and held-out scores (the
    task's: P(positive), class probabilities or predicted values)."""

    fitted: FittedModel
    cv: CVReport
    test: Any
    test_scores: np.ndarray

    @property
    def test_proba(self) -> np.ndarray:
        """Binary classification's held-out P(positive) (the scores under their historical name)."""
        return self.test_scores

    @property
    def name(self) -> str:
        return self.fitted.name

    @property
    def kind(self) -> str:
        return self.fitted.kind


def evaluate_model(name: str, X_train: pd.DataFrame, y_train: np.ndarray, X_test: pd.DataFrame, y_test: np.ndarray,
                   *, contract: Any, seed: int, cv_folds: int, primary: str, threshold: float | None = None,
                   task: str = "binary_classification", classes: list[str] | None = None,
                   params: dict | None = None, extra: dict | None = None) -> ModelResult:
    """Cross-validate ``name`` on the training split, fit it on all of it and evaluate it on the test split,
    the way the task says (:meth:`workbench.tasks.Task.cross_validate` and :meth:`~workbench.tasks.Task.evaluate`).
    ``params`` overrides a candidate's parameters (a search's best); ``extra`` lands in the fitted model's record
    (``FittedModel.extra``, e.g. the search summary)."""
    spec = get_task(task)
    roles = column_roles(contract)
    if spec.is_classifier and len(y_train):
        counts = np.bincount(np.asarray(y_train, dtype=np.int64))
        k = int(np.argmin(np.where(counts > 0, counts, np.iinfo(np.int64).max)))
        if counts[k] < cv_folds:
            from .errors import DataError

            label = (classes[k] if classes else ("positive" if k == 1 else "negative") + " class")
            raise DataError(f"class {label!r} has {int(counts[k])} training rows, fewer than the {cv_folds} "
                            "cross-validation folds", column=None,
                            hint=f"use -p cv_folds={max(2, int(counts[k]))} or fewer, or merge the rare class")
    if name in candidates_for(spec.name):
        def build() -> Any:
            return make_candidate(name, roles, seed=seed, task=spec.name, params=params)
    else:
        def build() -> Any:
            return make_baseline(name, roles, seed=seed, task=spec.name, classes=classes)
    cv = spec.cross_validate(build, X_train[roles.features], y_train, n_splits=cv_folds, seed=seed,
                             threshold=threshold)
    fitted = fit_model(name, X_train, y_train, seed=seed, contract=contract, task=spec.name, classes=classes,
                       params=params if name in candidates_for(spec.name) else None)
    if extra:
        fitted.extra.update(extra)
    scores = fitted.scores(X_test)
    test = spec.evaluate(y_test, scores, primary=primary, threshold=threshold, classes=classes)
    return ModelResult(fitted=fitted, cv=cv, test=test, test_scores=scores)


def evaluate_on(name: str, frames: ModelFrames, *, contract: Any, seed: int, cv_folds: int, primary: str,
                threshold: float | None = None, params: dict | None = None, extra: dict | None = None
                ) -> ModelResult:
    """:func:`evaluate_model` on a run's :class:`ModelFrames` (its task and classes included)."""
    return evaluate_model(name, frames.X_train, frames.y_train, frames.X_test, frames.y_test, contract=contract,
                          seed=seed, cv_folds=cv_folds, primary=primary, threshold=threshold, task=frames.task,
                          classes=frames.classes, params=params, extra=extra)


def evaluate_searched(search: Any, frames: ModelFrames, *, contract: Any, seed: int, cv_folds: int, primary: str,
                      threshold: float | None = None) -> dict[str, ModelResult]:
    """Each searched family's best parameters evaluated exactly like every other candidate (the run's CV folds,
    one fit on the training split, one held-out evaluation): one leaderboard row per family, under the family's
    name, with the search's summary in its record (``extra["search"]``)."""
    out = {}
    for family, fs in search.families.items():
        lift = fs.lift(search.greater_is_better)
        summary = {"trials": len(fs.trials), "pruned": fs.n_pruned, "seconds": round(fs.seconds, 2),
                   "stopped_by": fs.stopped_by, "search_cv": fs.best_value, "default_search_cv": fs.default_value,
                   "lift_over_default": lift, "search_folds": search.plan.cv_folds, "metric": search.metric}
        out[family] = evaluate_on(family, frames, contract=contract, seed=seed, cv_folds=cv_folds, primary=primary,
                                  threshold=threshold, params=fs.best_params, extra={"search": summary})
    return out


def calibrate_selected(board: Leaderboard, frames: ModelFrames, brief: Brief, *, seed: int, primary: str,
                       threshold: float | None = None, cv_folds: int | None = None) -> tuple[Leaderboard, Any, Any]:
    """Calibrate the selected classifier when its CV ECE exceeds ``brief.calibration.ece_tolerance`` (see
    :func:`workbench.modeling.calibration.calibrate`). Returns ``(board, report, uncalibrated fitted model)``:
    when calibration is kept, the board holds the calibrated model under the same name (selection unchanged,
    held-out figures recomputed); the uncalibrated model is what SHAP explains (the calibrator is a monotone map
    of its output). ``report`` is None when nothing was selected."""
    from .modeling.calibration import calibrate

    if board.selected is None:
        return board, None, None
    base = board.results[board.selected].fitted
    new, report = calibrate(base, frames.X_train, frames.y_train, task=frames.task, seed=seed,
                            cv_folds=cv_folds or brief.search.cv_folds,
                            ece_tolerance=brief.calibration.ece_tolerance, threshold=threshold)
    if report.applied:
        results = dict(board.results)
        apply_calibration(results, board.selected, new, frames, primary=primary, threshold=threshold)
        board = build_leaderboard(results, primary=board.primary, min_improvement=board.min_improvement,
                                  task=board.task, classes=board.classes)
    return board, report, base


def apply_calibration(results: dict[str, ModelResult], name: str, calibrated: FittedModel, frames: ModelFrames, *,
                      primary: str, threshold: float | None = None) -> ModelResult:
    """Replace ``results[name]`` by the calibrated model: its held-out evaluation is recomputed (that is what gets
    saved, gated and certified); its CV report stays the uncalibrated one the selection was made on (the
    calibration's own CV figures are in ``fitted.extra["calibration"]``)."""
    spec = get_task(frames.task)
    scores = calibrated.scores(frames.X_test)
    test = spec.evaluate(frames.y_test, scores, primary=primary, threshold=threshold, classes=frames.classes)
    results[name] = r = ModelResult(fitted=calibrated, cv=results[name].cv, test=test, test_scores=scores)
    return r


def _better(a: float, b: float, metric: str, task: str = "binary_classification") -> bool:
    return get_task(task).better(a, b, metric)


_BINARY_COLUMNS = ("roc_auc", "f1", "accuracy", "brier")


@dataclass
class Leaderboard(Report):
    """Every model, evaluated alike, with deltas against the best baseline and the selected candidate."""

    primary: str
    min_improvement: float
    results: dict[str, ModelResult]
    best_baseline: str
    selected: str | None
    comparisons: dict[str, dict]
    task: str = "binary_classification"
    classes: list[str] | None = None
    title: str = "Leaderboard: baselines first"

    def _columns(self) -> list[str]:
        """The held-out metrics shown besides the primary one."""
        if self.task == "binary_classification":
            return list(_BINARY_COLUMNS)
        shown = [m for m in get_task(self.task).metrics if m != self.primary]
        return [m for m in shown if all(m in r.test.metrics for r in self.results.values())][:4]

    @property
    def candidates(self) -> list[str]:
        return [n for n, r in self.results.items() if r.kind == "candidate"]

    def rows(self) -> list[dict]:
        out = []
        for name, r in self.results.items():
            cmp = self.comparisons.get(name)
            out.append({
                "model": name, "kind": r.kind,
                f"cv {self.primary}": f"{r.cv.mean[self.primary]:.4f} ± {r.cv.std[self.primary]:.4f}",
                f"test {self.primary}": round(r.test.metrics[self.primary], 4),
                **{f"test {m}": round(r.test.metrics[m], 4) for m in self._columns()},
                f"Δ {self.primary} vs {self.best_baseline}": None if cmp is None else round(cmp["primary_delta"], 4),
                "fit s": round(r.fitted.fit_seconds, 3),
                "onnx": "yes" if r.fitted.onnx_convertible else "no",
                "selected": "★" if name == self.selected else "",
            })
        return out

    def to_dict(self) -> dict:
        return {
            "task": self.task, "classes": self.classes,
            "primary": self.primary, "min_improvement": self.min_improvement, "best_baseline": self.best_baseline,
            "selected": self.selected, "comparisons": self.comparisons,
            "models": {n: {"kind": r.kind, "fitted": r.fitted.to_dict(), "cv": r.cv.to_dict(),
                           "test": r.test.to_dict()} for n, r in self.results.items()},
        }

    def summary(self) -> dict:
        sel = self.results.get(self.selected) if self.selected else None
        return {
            "primary_metric": self.primary, "best_baseline": self.best_baseline,
            "baseline_value": round(self.results[self.best_baseline].test.metrics[self.primary], 6),
            "selected": self.selected,
            "primary_value": round(sel.test.metrics[self.primary], 6) if sel else None,
            **({"roc_auc": round(sel.test.metrics["roc_auc"], 6) if sel else None,
                "accuracy": round(sel.test.metrics["accuracy"], 6) if sel else None}
               if self.task == "binary_classification" else
               {"metrics": {m: round(v, 6) for m, v in sel.test.metrics.items()} if sel else None}),
            "delta_vs_baseline": round(self.comparisons[self.selected]["primary_delta"], 6) if sel else None,
            "models": {n: round(r.test.metrics[self.primary], 6) for n, r in self.results.items()},
        }

    def _html_body(self) -> str:
        sel = (f"selected: <b>{esc(self.selected)}</b> (best cross-validated {esc(self.primary)} among "
               f"ONNX-convertible candidates)" if self.selected else "<span class='wb-bad'>no candidate selected</span>")
        return (f"<p>Primary metric <b>{esc(self.primary)}</b>; the bar is the best baseline "
                f"<b>{esc(self.best_baseline)}</b>, to beat by {self.min_improvement:g}. {sel}.</p>"
                + html_table(self.rows()))

    @classmethod
    def from_dict(cls, d: dict) -> Leaderboard:
        """Rebuild a leaderboard from :meth:`to_dict` output (``reports/leaderboard.json``) for showing it: each
        model's ``fitted`` facts (its ``model`` is None: nothing is loaded), cross-validation and held-out report
        (the task's report class); held-out scores are not saved, so ``test_scores`` is empty. A model without
        ``cv`` gets none (None)."""
        from .evaluation._saved import evaluation_report_from_dict

        task = str(d.get("task") or "binary_classification")
        fitted_keys = {"name", "kind", "fit_seconds", "params", "features", "seed", "onnx_convertible",
                       "description", "n_train", "task", "classes"}
        results = {}
        for name, m in d["models"].items():
            f = dict(m.get("fitted") or {})
            fitted = FittedModel(model=None, name=f.get("name", name), kind=f.get("kind", m.get("kind", "candidate")),
                                 fit_seconds=float(f.get("fit_seconds") or 0.0), params=dict(f.get("params") or {}),
                                 features=list(f.get("features") or []), seed=int(f.get("seed") or 0),
                                 onnx_convertible=bool(f.get("onnx_convertible", False)),
                                 description=str(f.get("description") or ""), n_train=int(f.get("n_train") or 0),
                                 task=str(f.get("task") or task), classes=f.get("classes", d.get("classes")),
                                 extra={k: v for k, v in f.items() if k not in fitted_keys})
            cv = CVReport.from_dict(m["cv"]) if m.get("cv") and "folds" in m["cv"] else None
            results[name] = ModelResult(fitted=fitted, cv=cv, test=evaluation_report_from_dict(m["test"], task=task),
                                        test_scores=np.empty(0))
        return cls(primary=d["primary"], min_improvement=float(d.get("min_improvement") or 0.0), results=results,
                   best_baseline=d.get("best_baseline"), selected=d.get("selected"),
                   comparisons=dict(d.get("comparisons") or {}), task=task, classes=d.get("classes"))

    def chart(self, *, success_threshold: float | None = None, metric_label: str | None = None,
              model_label: Any = None) -> Any:
        """The performance chart the stakeholder app shows, interactive
        (:func:`workbench.evaluation._charts.performance_chart`, drawn from :meth:`to_dict`): the held-out
        primary metric per model against the bar to beat and the brief's success threshold. ``metric_label``
        names the metric and ``model_label`` (a function of the model's key) the models; the app passes its plain
        words."""
        from .evaluation._charts import performance_chart

        return performance_chart(self._chart_dict(), success_threshold=success_threshold, metric_label=metric_label,
                                 model_label=model_label)

    def _chart_dict(self) -> dict:
        """What the charts read: :meth:`to_dict`'s keys, the models' kind and held-out report only."""
        return {"task": self.task, "primary": self.primary, "min_improvement": self.min_improvement,
                "best_baseline": self.best_baseline, "selected": self.selected, "comparisons": self.comparisons,
                "models": {n: {"kind": r.kind, "test": r.test.to_dict(),
                               **({"cv": r.cv.to_dict()} if r.cv is not None else {})}
                           for n, r in self.results.items()}}

    def plot(self, ax: Any = None) -> Any:
        """Held-out primary metric per model, baselines grey, with the bar (best baseline + margin)."""
        from matplotlib.figure import Figure

        fig = None
        if ax is None:
            fig = Figure(figsize=(6.5, 0.45 * len(self.results) + 1.2))
            ax = fig.add_subplot()
        names = list(self.results)[::-1]
        vals = [self.results[n].test.metrics[self.primary] for n in names]
        colors = ["#999999" if self.results[n].kind == "baseline" else
                  ("#d95f02" if n == self.selected else "#1b9e77") for n in names]
        ax.barh(names, vals, color=colors)
        bar = self.results[self.best_baseline].test.metrics[self.primary]
        sign = 1 if get_task(self.task).metrics[self.primary] else -1
        ax.axvline(bar + sign * self.min_improvement, color="black", ls="--", lw=0.8,
                   label=f"best baseline + margin ({bar + sign * self.min_improvement:.3f})")
        for i, v in enumerate(vals):
            ax.text(v, i, f" {v:.3f}", va="center", fontsize=8)
        ax.set_xlabel(f"held-out {self.primary}")
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title("Baselines (grey) and candidates; selected in orange")
        return fig if fig is not None else ax


def build_leaderboard(results: dict[str, ModelResult], *, primary: str, min_improvement: float,
                      task: str = "binary_classification", classes: list[str] | None = None) -> Leaderboard:
    """Pick the best baseline and the selected candidate (both by cross-validated primary metric) and compare
    every candidate with the best baseline on the held-out split."""
    spec = get_task(task)
    baselines = [n for n, r in results.items() if r.kind == "baseline"]
    if not baselines:
        raise ValueError("a leaderboard needs at least one baseline")
    best_b = baselines[0]
    for n in baselines[1:]:
        if spec.better(results[n].cv.mean[primary], results[best_b].cv.mean[primary], primary):
            best_b = n
    comparisons = {
        n: spec.compare(r.test.metrics, results[best_b].test.metrics, primary=primary,
                        min_improvement=min_improvement)
        for n, r in results.items() if r.kind == "candidate"
    }
    eligible = [n for n, r in results.items() if r.kind == "candidate" and r.fitted.onnx_convertible]
    selected = None
    for n in eligible:
        if selected is None or spec.better(results[n].cv.mean[primary], results[selected].cv.mean[primary], primary):
            selected = n
    return Leaderboard(primary=primary, min_improvement=min_improvement, results=results, best_baseline=best_b,
                       selected=selected, comparisons=comparisons, task=spec.name, classes=classes)


# ---------------------------------------------------------------------------------------------- records
_HYPOTHESES = {
    "logreg": "A regularised linear model on one-hot categoricals and scaled numerics separates the classes "
              "well enough to beat the baselines, and stays easy to explain.",
    "hgb": "Gradient-boosted trees capture non-linear effects and interactions the linear model misses, "
           "improving the primary metric over the baselines.",
    "lgbm": "LightGBM's leaf-wise boosted trees, tuned by a seeded TPE search on the training split's CV folds, "
            "beat the default-parameter models on the primary metric.",
    "xgb": "XGBoost's depth-wise boosted trees, tuned by a seeded TPE search on the training split's CV folds, "
           "beat the default-parameter models on the primary metric.",
    "ridge": "A regularised linear model on one-hot categoricals and scaled numerics predicts the target well "
             "enough to beat the baselines, and stays easy to explain.",
}


@dataclass
class ExperimentRecord:
    id: str
    run_id: str
    date: str
    hypothesis: str
    dataset_sha256: dict[str, str]
    features: list[str]
    model_type: str
    hyperparameters: dict
    training_seconds: float
    primary_metric: dict
    secondary_metrics: dict
    baseline_delta: dict
    verdict: str
    verdict_reason: str
    artifacts: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def next_experiment_number(runs_dir: Path | None, date: str) -> int:
    """1 + the highest ``EXP-<date>-NNN`` already recorded in any run folder under ``runs_dir``."""
    highest = 0
    if runs_dir and runs_dir.is_dir():
        pat = re.compile(rf"EXP-{re.escape(date)}-(\d{{3,}})")
        for p in runs_dir.glob("*/reports/experiments.json"):
            try:
                highest = max([highest, *(int(m) for m in pat.findall(p.read_text()))])
            except OSError:
                continue
    return highest + 1


@dataclass
class ExperimentLog(Report):
    records: list[ExperimentRecord]
    title: str = "Experiment records"

    def to_dict(self) -> dict:
        return {"records": [r.to_dict() for r in self.records]}

    def summary(self) -> dict:
        return {r.id: {"model": r.model_type, "verdict": r.verdict} for r in self.records}

    def _html_body(self) -> str:
        rows = [{"id": r.id, "model": r.model_type, r.primary_metric["name"]: round(r.primary_metric["test"], 4),
                 "Δ vs baseline": round(r.baseline_delta["primary_delta"], 4), "fit s": round(r.training_seconds, 2),
                 "verdict": r.verdict, "why": r.verdict_reason, "hypothesis": r.hypothesis} for r in self.records]
        return html_table(rows)


def experiment_records(board: Leaderboard, brief: Brief, *, run_id: str, dataset_sha256: dict[str, str],
                       runs_dir: Path | None = None, artifacts: dict[str, dict[str, str]] | None = None,
                       date: _dt.date | None = None) -> ExperimentLog:
    """One record per candidate. Verdicts: ``promoted`` (selected, beats the baseline by the margin and meets the
    success threshold: it goes to the promotion gates), ``iterate`` (beats the baseline but misses the threshold,
    or is selected but below the margin) or ``archived``."""
    date_s = (date or _dt.date.today()).isoformat()
    n = next_experiment_number(runs_dir, date_s)
    primary = board.primary
    records = []
    for name in board.candidates:
        r = board.results[name]
        cmp = board.comparisons[name]
        value = r.test.metrics[primary]
        meets = not _better(brief.success.threshold, value, primary, board.task)
        if name == board.selected and cmp["beats_baseline"] and meets:
            verdict, why = "promoted", "selected; beats the best baseline by the margin and meets the success threshold"
        elif cmp["beats_baseline"] and not meets:
            verdict, why = "iterate", f"beats the baseline but misses the success threshold {brief.success.threshold}"
        elif name == board.selected:
            verdict, why = "iterate", f"selected but does not beat {board.best_baseline} by {board.min_improvement}"
        else:
            verdict, why = "archived", f"lower cross-validated {primary} than {board.selected}"
        records.append(ExperimentRecord(
            id=f"EXP-{date_s}-{n:03d}", run_id=run_id, date=date_s,
            hypothesis=_HYPOTHESES.get(name, f"candidate {name} beats the baselines"),
            dataset_sha256=dataset_sha256, features=r.fitted.features, model_type=name,
            hyperparameters=json.loads(json.dumps(r.fitted.params, default=str)),
            training_seconds=round(r.fitted.fit_seconds, 4),
            primary_metric={"name": primary, "test": value, "cv_mean": r.cv.mean[primary], "cv_std": r.cv.std[primary]},
            secondary_metrics={m: v for m, v in r.test.metrics.items() if m != primary},
            baseline_delta={"baseline": board.best_baseline, "primary_delta": cmp["primary_delta"],
                            "deltas": cmp["deltas"], "min_improvement": board.min_improvement},
            verdict=verdict, verdict_reason=why, artifacts=(artifacts or {}).get(name, {}),
        ))
        n += 1
    return ExperimentLog(records)


# ---------------------------------------------------------------------------------------------- kill criteria
@dataclass
class KillCriteriaReport(Report):
    """Each kill criterion of the brief: ``triggered`` True/False (None when it needs a human), with evidence."""

    criteria: list[dict]
    title: str = "Kill criteria"

    @property
    def triggered(self) -> list[dict]:
        return [c for c in self.criteria if c["triggered"]]

    @property
    def verdict(self) -> str:
        if self.triggered:
            return "stop: " + "; ".join(c["description"] for c in self.triggered)
        return "continue"

    def to_dict(self) -> dict:
        return {"verdict": self.verdict, "criteria": self.criteria}

    def summary(self) -> dict:
        return {"verdict": self.verdict, "triggered": [c["id"] for c in self.triggered]}

    def _html_body(self) -> str:
        css = "wb-bad" if self.triggered else "wb-ok"
        rows = [{"id": c["id"], "criterion": c["description"],
                 "verdict": {True: "TRIGGERED", False: "not triggered", None: "needs review"}[c["triggered"]],
                 "evidence": c["evidence"]} for c in self.criteria]
        return f"<p>Verdict: <span class='{css}'>{esc(self.verdict)}</span></p>" + html_table(rows)


def evaluate_kill_criteria(brief: Brief, *, board: Leaderboard, quality_total: int | None = None,
                           fairness_verdicts: list[dict] | None = None) -> KillCriteriaReport:
    """Evaluate every kill criterion of the brief against the evidence of this run."""
    out = []
    primary = board.primary
    sel = board.results.get(board.selected) if board.selected else None
    for kc in brief.kill_criteria:
        triggered: bool | None
        if kc.check == "quality_score_below":
            limit = kc.value if kc.value is not None else brief.min_quality_score
            if quality_total is None:
                triggered, ev = None, "no data quality score in this run"
            else:
                triggered, ev = quality_total < limit, f"quality {quality_total}/30, limit {limit:g}"
        elif kc.check == "no_lift_over_baseline":
            margin = kc.value if kc.value is not None else board.min_improvement
            deltas = {n: c["primary_delta"] for n, c in board.comparisons.items()}
            best = max(deltas.values()) if deltas else float("-inf")
            triggered = best <= margin
            ev = (f"best {primary} delta vs {board.best_baseline}: {best:+.4f} (needs > {margin:g}); "
                  + ", ".join(f"{n} {d:+.4f}" for n, d in deltas.items()))
        elif kc.check == "success_threshold_missed":
            limit = kc.value if kc.value is not None else brief.success.threshold
            if sel is None:
                triggered, ev = True, "no candidate selected"
            else:
                v = sel.test.metrics[primary]
                triggered = _better(limit, v, primary, board.task)
                ev = f"{board.selected} held-out {primary} {v:.4f}, threshold {limit:g}"
        elif kc.check == "fairness_gap_exceeded":
            if fairness_verdicts is None:
                triggered, ev = None, "no fairness report in this run"
            else:
                bad = [v for v in fairness_verdicts if v.get("verdict") == "exceeds threshold"]
                triggered = bool(bad)
                ev = ("; ".join(f"{v['feature']} {v['metric']} upper bound {v['ci_high']:.3f} > {v['threshold']:g}"
                                for v in bad) or "every gap with enough evidence is within its threshold")
        else:
            triggered, ev = None, "manual criterion: needs a human decision"
        out.append({"id": kc.id, "description": kc.description, "check": kc.check, "value": kc.value,
                    "triggered": triggered, "evidence": ev})
    return KillCriteriaReport(out)


# ---------------------------------------------------------------------------------------------- notebook helpers
def load_or_infer_contract(run: Any, data: Any, brief: Brief) -> Any:
    """The contract the Discovery phase saved in this run, or (exploring without a run) one inferred now."""
    from .data import DataContract, infer_contract

    path = run.path("reports", "contract.json") if run.saving else None
    if path is not None and path.exists():
        return DataContract.load(path)
    return infer_contract(data.train, brief)


def read_report(run: Any, name: str) -> dict | None:
    """A report another notebook of this run saved (``reports/<name>.json``), or None."""
    path = run.path("reports", f"{name}.json") if run.saving else None
    return json.loads(path.read_text()) if path is not None and path.exists() else None


def slug(name: str) -> str:
    """A file-name-safe form of a slice name: ``"sex & race"`` -> ``"sex_x_race"``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.replace("&", "x")).strip("_")


def figure_of(obj: Any) -> Any:
    """The Figure of an Axes or Figure, detached from pyplot so a notebook displays it exactly once."""
    fig = obj if hasattr(obj, "savefig") and not hasattr(obj, "get_xlim") else obj.get_figure()
    try:
        import matplotlib.pyplot as plt

        plt.close(fig)
    except Exception:  # noqa: BLE001 - a figure pyplot never knew is fine
        pass
    return fig


def plot_curves(report: EvaluationReport) -> Any:
    """Precision-recall curve and calibration curve of a held-out evaluation, side by side."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 3.6))
    ax1, ax2 = fig.subplots(1, 2)
    pr = report.pr_curve
    ax1.plot(pr["recall"], pr["precision"], color="#d95f02")
    ax1.axhline(report.positive_rate, color="grey", ls="--", lw=0.8, label=f"prior {report.positive_rate:.3f}")
    ax1.set(xlabel="recall", ylabel="precision", xlim=(0, 1), ylim=(0, 1.02),
            title=f"PR curve (PR-AUC {report.metrics['pr_auc']:.3f})")
    ax1.legend(fontsize=8)
    cal = report.calibration
    ax2.plot([0, 1], [0, 1], color="grey", ls="--", lw=0.8)
    ax2.plot(cal["prob_pred"], cal["prob_true"], "o-", color="#1b9e77")
    ece = cal.get("ece")
    ax2.set(xlabel="mean predicted probability", ylabel="observed positive rate", xlim=(0, 1), ylim=(0, 1),
            title="Calibration" + (f" (ECE {ece:.3f})" if ece is not None else ""))
    fig.tight_layout()
    return fig


@dataclass
class PrototypeSummary(Report):
    """The Prototype phase's key results in one small object (what the run manifest and `workbench runs` show)."""

    data: dict
    title: str = "Prototype summary"

    @classmethod
    def of(cls, board: Leaderboard, fairness: Any, shap_report: Any, kill: KillCriteriaReport) -> PrototypeSummary:
        s = board.summary()
        s.update(fairness_verdict=fairness.verdict, shap_additivity_passed=bool(shap_report.additivity_ok),
                 shap_top_features=list(shap_report.importance.index[:5]), kill_verdict=kill.verdict)
        return cls(s)

    def to_dict(self) -> dict:
        return self.data

    def summary(self) -> dict:
        return self.data

    def _html_body(self) -> str:
        return html_table([{"key": k, "value": v} for k, v in self.data.items()])
