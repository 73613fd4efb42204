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
from .evaluation.metrics import (
    GREATER_IS_BETTER,
    CVReport,
    EvaluationReport,
    compare_to_baseline,
    cross_validate_scores,
    evaluate_binary,
)
from .modeling import CANDIDATES, FittedModel, column_roles, fit_model, make_baseline, make_candidate

__all__ = ["ModelFrames", "model_frames", "predictions_frame", "ModelResult", "Leaderboard", "ExperimentRecord", "KillCriteriaReport", "evaluate_model",
           "build_leaderboard", "experiment_records", "evaluate_kill_criteria", "next_experiment_number"]


@dataclass
class ModelFrames:
    """What every model is trained and evaluated on: pandas model frames, 0/1 targets, sensitive columns."""

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_test: pd.DataFrame
    y_test: np.ndarray
    sensitive_test: pd.DataFrame
    test_rows: np.ndarray

    @property
    def positive_rate(self) -> float:
        return float(self.y_train.mean())


def model_frames(data: Any, brief: Brief, contract: Any) -> ModelFrames:
    """Drop rows without a target, then build the model frames (the one polars -> pandas step)."""
    import polars as pl

    from .data.io import target_vector
    from .modeling import to_model_frame

    t = brief.target.column
    train = data.train.filter(pl.col(t).is_not_null())
    test = data.test.with_row_index("__row__").filter(pl.col(t).is_not_null())
    sens = brief.sensitive_features
    sensitive = test.select([pl.col(c).cast(pl.String).fill_null("(missing)") for c in sens]).to_pandas() \
        if sens else pd.DataFrame(index=range(test.height))
    return ModelFrames(
        X_train=to_model_frame(train, contract), y_train=target_vector(train, brief).astype(np.int64),
        X_test=to_model_frame(test.drop("__row__"), contract), y_test=target_vector(test, brief).astype(np.int64),
        sensitive_test=sensitive, test_rows=test.get_column("__row__").to_numpy(),
    )


def predictions_frame(frames: ModelFrames, results: dict[str, ModelResult], *, threshold: float) -> Any:
    """Held-out predictions of every model, with labels and sensitive columns: the evidence later stages
    (and anyone re-checking the fairness report) recompute from."""
    import polars as pl

    cols: dict[str, Any] = {"row": frames.test_rows, "y_true": frames.y_test}
    for name, r in results.items():
        cols[f"proba_{name}"] = r.test_proba.astype(np.float64)
        cols[f"label_{name}"] = (r.test_proba > threshold).astype(np.int8)
    out = pl.DataFrame(cols)
    if len(frames.sensitive_test.columns):
        out = out.hstack(pl.from_pandas(frames.sensitive_test))
    return out


@dataclass
class ModelResult:
    """One model evaluated: the fitted model, its CV report, its held-out report and held-out probabilities."""

    fitted: FittedModel
    cv: CVReport
    test: EvaluationReport
    test_proba: np.ndarray

    @property
    def name(self) -> str:
        return self.fitted.name

    @property
    def kind(self) -> str:
        return self.fitted.kind


def evaluate_model(name: str, X_train: pd.DataFrame, y_train: np.ndarray, X_test: pd.DataFrame, y_test: np.ndarray,
                   *, contract: Any, seed: int, cv_folds: int, primary: str, threshold: float) -> ModelResult:
    """Cross-validate ``name`` on the training split, fit it on all of it and evaluate it on the test split."""
    roles = column_roles(contract)
    build = make_candidate if name in CANDIDATES else make_baseline
    cv = cross_validate_scores(lambda: build(name, roles, seed=seed), X_train[roles.features], y_train,
                               n_splits=cv_folds, seed=seed, threshold=threshold)
    fitted = fit_model(name, X_train, y_train, seed=seed, contract=contract)
    proba = fitted.positive_proba(X_test)
    test = evaluate_binary(y_test, proba, threshold=threshold, primary=primary)
    return ModelResult(fitted=fitted, cv=cv, test=test, test_proba=proba)


def _better(a: float, b: float, metric: str) -> bool:
    return a > b if GREATER_IS_BETTER[metric] else a < b


@dataclass
class Leaderboard(Report):
    """Every model, evaluated alike, with deltas against the best baseline and the selected candidate."""

    primary: str
    min_improvement: float
    results: dict[str, ModelResult]
    best_baseline: str
    selected: str | None
    comparisons: dict[str, dict]
    title: str = "Leaderboard: baselines first"

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
                "test roc_auc": round(r.test.metrics["roc_auc"], 4),
                "test f1": round(r.test.metrics["f1"], 4), "test accuracy": round(r.test.metrics["accuracy"], 4),
                "test brier": round(r.test.metrics["brier"], 4),
                f"Δ {self.primary} vs {self.best_baseline}": None if cmp is None else round(cmp["primary_delta"], 4),
                "fit s": round(r.fitted.fit_seconds, 3),
                "onnx": "yes" if r.fitted.onnx_convertible else "no",
                "selected": "★" if name == self.selected else "",
            })
        return out

    def to_dict(self) -> dict:
        return {
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
            "roc_auc": round(sel.test.metrics["roc_auc"], 6) if sel else None,
            "accuracy": round(sel.test.metrics["accuracy"], 6) if sel else None,
            "delta_vs_baseline": round(self.comparisons[self.selected]["primary_delta"], 6) if sel else None,
            "models": {n: round(r.test.metrics[self.primary], 6) for n, r in self.results.items()},
        }

    def _html_body(self) -> str:
        sel = (f"selected: <b>{esc(self.selected)}</b> (best cross-validated {esc(self.primary)} among "
               f"ONNX-convertible candidates)" if self.selected else "<span class='wb-bad'>no candidate selected</span>")
        return (f"<p>Primary metric <b>{esc(self.primary)}</b>; the bar is the best baseline "
                f"<b>{esc(self.best_baseline)}</b>, to beat by {self.min_improvement:g}. {sel}.</p>"
                + html_table(self.rows()))

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
        sign = 1 if GREATER_IS_BETTER[self.primary] else -1
        ax.axvline(bar + sign * self.min_improvement, color="black", ls="--", lw=0.8,
                   label=f"best baseline + margin ({bar + sign * self.min_improvement:.3f})")
        for i, v in enumerate(vals):
            ax.text(v, i, f" {v:.3f}", va="center", fontsize=8)
        ax.set_xlabel(f"held-out {self.primary}")
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title("Baselines (grey) and candidates; selected in orange")
        return fig if fig is not None else ax


def build_leaderboard(results: dict[str, ModelResult], *, primary: str, min_improvement: float) -> Leaderboard:
    """Pick the best baseline and the selected candidate (both by cross-validated primary metric) and compare
    every candidate with the best baseline on the held-out split."""
    baselines = [n for n, r in results.items() if r.kind == "baseline"]
    if not baselines:
        raise ValueError("a leaderboard needs at least one baseline")
    best_b = baselines[0]
    for n in baselines[1:]:
        if _better(results[n].cv.mean[primary], results[best_b].cv.mean[primary], primary):
            best_b = n
    comparisons = {
        n: compare_to_baseline(r.test.metrics, results[best_b].test.metrics, primary=primary,
                               min_improvement=min_improvement)
        for n, r in results.items() if r.kind == "candidate"
    }
    eligible = [n for n, r in results.items() if r.kind == "candidate" and r.fitted.onnx_convertible]
    selected = None
    for n in eligible:
        if selected is None or _better(results[n].cv.mean[primary], results[selected].cv.mean[primary], primary):
            selected = n
    return Leaderboard(primary=primary, min_improvement=min_improvement, results=results, best_baseline=best_b,
                       selected=selected, comparisons=comparisons)


# ---------------------------------------------------------------------------------------------- records
_HYPOTHESES = {
    "logreg": "A regularised linear model on one-hot categoricals and scaled numerics separates the classes "
              "well enough to beat the baselines, and stays easy to explain.",
    "hgb": "Gradient-boosted trees capture non-linear effects and interactions the linear model misses, "
           "improving the primary metric over the baselines.",
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
        meets = not _better(brief.success.threshold, value, primary)
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
                triggered = _better(limit, v, primary)
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
