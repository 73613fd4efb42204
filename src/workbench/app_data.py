"""What the stakeholder app (``notebooks/stakeholder_app.py``) shows, read from run folders and the model registry.

Every function here reads artifacts that earlier stages certified -- run manifests, ``reports/*.json``, the
SHAP contributions Parquet, the BentoML model packages, the promotion attempts and the prediction log -- and
returns plain dicts, polars frames, matplotlib figures or altair charts (the app's interactive charts, built from
the same frames). Nothing trains and nothing writes: the app is a window on the runs, not a stage of the
lifecycle.

The run's held-out evaluation and fairness reports are read back as their report objects
(:meth:`workbench.artifacts.RunFolder.report_object`; :func:`load_run` gives them as ``evaluation`` and
``fairness``), and the helpers below take either that object or its saved dict. A report object that owns a chart
draws it: the fairness slice chart is :meth:`FairnessReport.chart <workbench.evaluation.FairnessReport.chart>`
(:func:`chart_fairness_slice` and :func:`plot_fairness_slice` hand its frame to the same drawing code). The
same holds for the SHAP charts -- :class:`SavedShap <workbench.evaluation._shap_saved.SavedShap>` reads
``shap.json`` with the contributions Parquet (:func:`shap_importance`, :func:`group_drivers` are its frames,
:func:`chart_importance` / :func:`chart_group_drivers` its charts) -- and the performance chart,
:meth:`Leaderboard.chart <workbench.experiments.Leaderboard.chart>`, drawn from the saved leaderboard dict
(:func:`chart_performance`). Only the what-if charts are drawn here.

Two calls go beyond reading JSON, both for the what-if form:

* :func:`score_whatif` scores one row with the *production ONNX model* through :class:`OnnxScorer` for the
  package's task, exactly as the service does (same inputs; binary: the same ``p > threshold`` rule, multiclass:
  the argmax class and per-class probabilities, regression: the prediction in the target's units), so the
  answer a stakeholder sees is the served one;
* :func:`explain_whatif` explains that row with the run's notebook model (skops), which
  :func:`verified_model` loads only after its sha256 matches the run manifest (the app is not the serving
  path, so scikit-learn and SHAP are allowed here).
"""

from __future__ import annotations

import hashlib
import math
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from ._report import (
    BLUE,
    CHART_WIDTH,
    DARK,
    DOWN,
    GREEN,
    GREY,
    GROUP_COLOURS,
    ORANGE,
    RED,
    UP,
    Report,
)
from ._report import chart_id as _chart_id
from ._report import read_json as _read_json
from .config import Settings
from .config import settings as _settings
from .errors import DataError, WorkbenchError

__all__ = [
    "MISSING_OPTION",
    "prototype_runs",
    "default_run",
    "load_run",
    "production_package",
    "load_package",
    "promotion_status",
    "gate_frame",
    "card_sections",
    "performance_frame",
    "plot_performance",
    "chart_performance",
    "metric_label",
    "task_of",
    "fairness_choices",
    "fairness_slice",
    "fairness_gaps",
    "plot_fairness_slice",
    "chart_fairness_slice",
    "shap_importance",
    "load_contributions",
    "driver_features",
    "group_drivers",
    "shap_unit",
    "plot_importance",
    "plot_group_drivers",
    "chart_importance",
    "chart_group_drivers",
    "whatif_fields",
    "whatif_row",
    "score_whatif",
    "whatif_headline",
    "plot_class_probabilities",
    "verified_model",
    "explain_whatif",
    "plot_contributions",
    "chart_contributions",
    "chart_class_probabilities",
    "CHART_WIDTH",
    "drift_status",
    "prediction_drift_summary",
    "run_error",
    "GLOSSARY",
    "term",
    "explain",
    "glossary",
    "model_name",
    "gap_value_text",
    "gap_sentence",
    "lead_overview",
    "lead_performance",
    "lead_fairness",
    "lead_shap",
    "lead_whatif",
    "lead_drift",
    "gate_plain",
    "gate_rows",
    "records",
]

MISSING_OPTION = "(missing)"
"""What the what-if form shows for a missing categorical value (sent to the model as ``None``)."""

BINARY = "binary_classification"


def metric_label(metric: str) -> str:
    """A per-group figure as a reader names it: ``tpr`` -> "true positive rate (TPR)", ``recall[Adelie]`` ->
    "recall of Adelie", ``selection_rate[Adelie]`` -> "share predicted Adelie" (the fairness charts' labels)."""
    from .evaluation._charts import figure_label

    return figure_label(metric)


def task_of(*reports: Any) -> str:
    """The task a run or package is for: the first ``task`` any of the given dicts records (leaderboard,
    brief, serving.json, fairness report ...) or the task of the first report object given, else binary
    classification (what runs before round 2 were)."""
    for r in reports:
        if isinstance(r, Report):
            return str(r.task)
        if r and r.get("task"):
            return str(r["task"])
    return BINARY

# The colour convention of every chart (workbench._report): orange raises a score and blue lowers it (a direction,
# never good/bad); red only marks a failure; grey is a baseline or too little evidence; _GROUPS tell groups apart.
_BLUE, _GREY, _ORANGE, _RED, _GREEN = BLUE, GREY, ORANGE, RED, GREEN
_UP, _DOWN, _DARK, _GROUPS = UP, DOWN, DARK, GROUP_COLOURS


def _cfg(cfg: Settings | None) -> Settings:
    return cfg or _settings()


# =============================================================================================== runs
def prototype_runs(cfg: Settings | None = None) -> list[dict]:
    """Succeeded runs that include the prototype phase (what the app can show), newest first.

    Each item: ``run_id``, ``label`` (for a dropdown), ``brief``, ``finished_at``, ``selected``, ``primary``,
    ``value``.
    """
    from .runs import list_runs

    runs_dir = _cfg(cfg).runs_dir
    out = []
    for m in list_runs(runs_dir):
        if m.get("status") != "succeeded" or "prototype" not in (m.get("phases") or []):
            continue
        if not (runs_dir / m["run_id"] / "reports" / "leaderboard.json").exists():
            continue
        proto = (m.get("results") or {}).get("prototype") or {}
        selected, primary, value = proto.get("selected"), proto.get("primary_metric"), proto.get("primary_value")
        detail = f" · {selected} {term(primary)} {value:.3f}" if selected and primary and value is not None else ""
        out.append({"run_id": m["run_id"], "label": f"{m['run_id']}{detail}", "brief": m.get("brief", {}).get("name"),
                    "finished_at": m.get("finished_at"), "selected": selected, "primary": primary, "value": value})
    return out


def default_run(runs: list[dict], *, requested: str | None = None, production_run: str | None = None) -> str | None:
    """The run the app opens on: ``requested`` (``--run``), else the production model's run, else the newest."""
    ids = [r["run_id"] for r in runs]
    for candidate in (requested, production_run):
        if candidate and candidate in ids:
            return candidate
    return ids[0] if ids else None


def load_run(run_id: str, cfg: Settings | None = None) -> dict:
    """One run's manifest and reports: ``run_id``, ``dir``, ``manifest``, ``reports`` (name -> dict),
    ``evaluation`` and ``fairness`` (the selected model's held-out report and the fairness report, read back as
    their objects for the run's task; None when the run has none or the file does not read back), ``figures`` (PNG
    names), ``selected`` (candidate), ``brief`` (the brief as recorded in the manifest), ``task`` and ``classes``
    (multiclass: class names in code order, else None).

    Raises
    ------
    RunError
        The run does not exist or has no manifest.
    """
    from .artifacts import RunFolder
    from .runs import read_manifest, resolve_run

    run_dir = resolve_run(run_id, _cfg(cfg).runs_dir)
    manifest = read_manifest(run_dir)
    folder = RunFolder(run_dir)
    reports = {}
    for name in folder.report_names():
        data = _read_json(folder.report_path(name))
        if data is not None:
            reports[name] = data
    objects = {name: _report_object(folder, name) for name in ("evaluation", "fairness")}
    figures = sorted(p.name for p in (run_dir / "figures").glob("*.png")) if (run_dir / "figures").is_dir() else []
    proto = (manifest.get("results") or {}).get("prototype") or {}
    brief = (manifest.get("brief") or {}).get("content") or {}
    return {"run_id": manifest.get("run_id", run_dir.name), "dir": run_dir, "manifest": manifest,
            "reports": reports, **objects, "figures": figures,
            "selected": proto.get("selected") or reports.get("leaderboard", {}).get("selected"),
            "brief": brief, "task": task_of(reports.get("leaderboard"), brief, reports.get("contract")),
            "classes": (reports.get("leaderboard") or {}).get("classes") or (reports.get("contract") or {}).get(
                "classes")}


def _report_object(folder: Any, name: str) -> Any:
    """``folder.report_object(name)``, or None when the run has no such report or it does not read back (the
    screen that needs it then says so)."""
    try:
        return folder.report_object(name, required=False)
    except WorkbenchError:
        return None


def _evaluation(evaluation: Any, task: str) -> Any:
    """A held-out evaluation report object, from the object or its saved dict (None for none)."""
    if not evaluation:
        return None
    from .evaluation import evaluation_report_from_dict

    return evaluation_report_from_dict(evaluation, task=task)


def _fairness(fairness: Any) -> Any:
    """A fairness report object, from the object or its saved dict."""
    from .evaluation import fairness_report_from_dict

    return fairness_report_from_dict(fairness or {})


# =============================================================================================== registry
def load_package(tag: str) -> dict:
    """A registered model package: ``tag``, ``path``, ``serving``, ``gates``, ``card`` (markdown),
    ``monitoring``, ``profile``, ``contract``, ``metadata``, ``labels``, ``created``.

    Raises
    ------
    WorkbenchError
        The tag is not in the model store.
    """
    from .registry.store import get_model

    try:
        model = get_model(tag)
    except Exception:  # noqa: BLE001 - bentoml raises its own NotFound
        raise WorkbenchError(f"model {tag} is not in the model store",
                             hint="`workbench models` lists the registered models") from None
    path = Path(model.path)
    card = path / "model_card.md"
    return {
        "tag": str(model.tag), "path": path,
        "serving": _read_json(path / "serving.json"), "gates": _read_json(path / "gates.json"),
        "card": card.read_text() if card.exists() else "", "monitoring": _read_json(path / "monitoring.json") or {},
        "profile": _read_json(path / "reference_profile.json"), "contract": _read_json(path / "contract.json"),
        "metadata": dict(model.info.metadata), "labels": dict(model.info.labels),
        "created": model.info.creation_time.isoformat(timespec="seconds"),
    }


def production_package() -> dict:
    """The model in production, or why there is none.

    Returns ``{"status": "ok", "package": {...}, "run_id": ...}``, ``{"status": "none", "message": ...}`` when
    nothing has been promoted, or ``{"status": "missing", "message": ...}`` when the pointer names a model the
    store does not hold.
    """
    from .serving.pointer import production_pointer, production_tag

    try:
        tag = production_tag()
    except LookupError:
        return {"status": "none", "message": "Nothing promoted yet: no model is in production. "
                                             "Promote a run with `workbench promote latest`."}
    try:
        package = load_package(tag)
    except WorkbenchError as exc:
        return {"status": "missing", "message": f"The production pointer names {tag}, which the model store "
                                                f"does not hold ({exc.message})."}
    run_id = (package["serving"] or {}).get("run_id") or package["metadata"].get("run_id") \
        or (production_pointer() or {}).get("run_id")
    return {"status": "ok", "package": package, "tag": tag, "run_id": run_id}


def _attempts(run_id: str, cfg: Settings | None) -> list[Path]:
    d = _cfg(cfg).promotions_dir
    if not d.is_dir():
        return []
    return sorted((p for p in d.iterdir() if p.is_dir() and p.name.endswith(f"-{run_id}")), reverse=True)


def promotion_status(run: dict, production: dict, cfg: Settings | None = None) -> dict:
    """What became of a run's candidate: ``status`` (``production``, ``certified``, ``refused`` or
    ``not promoted``), ``tag``, ``gates`` (the gate report that decided), ``card`` (model card markdown),
    ``attempt`` (folder) and a one-line ``message``."""
    run_id = run["run_id"]
    prod_tag = production.get("tag") if production.get("status") == "ok" else None
    if production.get("status") == "ok" and production.get("run_id") == run_id:
        pkg = production["package"]
        return {"status": "production", "tag": pkg["tag"], "gates": pkg["gates"], "card": pkg["card"],
                "attempt": None, "message": f"{pkg['tag']} from this run is in production."}
    from .registry.store import list_models

    try:
        registered = [m for m in list_models() if m.info.metadata.get("run_id") == run_id]
    except Exception:  # noqa: BLE001 - an unreadable store is reported, not fatal
        registered = []
    if registered:
        newest = max(registered, key=lambda m: m.info.creation_time)
        pkg = load_package(str(newest.tag))
        where = f"; production is {prod_tag}" if prod_tag else ""
        return {"status": "certified", "tag": pkg["tag"], "gates": pkg["gates"], "card": pkg["card"],
                "attempt": None, "message": f"{pkg['tag']} from this run passed every gate but is not in "
                                            f"production{where}."}
    attempts = _attempts(run_id, cfg)
    if attempts:
        a = attempts[0]
        card = a / "model_card.md"
        result = _read_json(a / "result.json") or {}
        base = {"gates": _read_json(a / "gates.json"), "card": card.read_text() if card.exists() else "", "attempt": a}
        if result.get("promoted"):
            return {**base, "status": "certified", "tag": result.get("tag"),
                    "message": f"This run was promoted as {result.get('tag')} ({a.name}), but the model store at "
                               "$BENTOML_HOME does not hold it."}
        return {**base, "status": "refused", "tag": None,
                "message": f"Promotion of this run was refused ({a.name}): see the failed gates below."}
    return {"status": "not promoted", "tag": None, "gates": None, "card": "", "attempt": None,
            "message": f"This run has not been through the promotion gates: `workbench promote {run_id}`."}


def gate_frame(gates: dict | None, manifest: dict | None = None) -> pl.DataFrame:
    """Gate verdicts as one table: the run's own gates (data quality, kill criteria) then the promotion gates.

    Columns: ``stage``, ``gate``, ``verdict`` (pass/fail/info), ``value``, ``threshold``, ``detail``.
    """
    rows = []
    for name, g in ((manifest or {}).get("gates") or {}).items():
        rows.append({"stage": "run", "gate": name.replace("_", " "), "verdict": "pass" if g.get("passed") else "fail",
                     "value": _text(g.get("value")), "threshold": _text(g.get("threshold")),
                     "detail": _text(g.get("message"))})
    for g in (gates or {}).get("gates", []):
        rows.append({"stage": "promotion", "gate": g.get("gate", ""), "verdict": g.get("verdict", ""),
                     "value": _text(g.get("value")), "threshold": _text(g.get("threshold")),
                     "detail": _text(g.get("detail"))})
    schema = {k: pl.String for k in ("stage", "gate", "verdict", "value", "threshold", "detail")}
    return pl.DataFrame(rows, schema=schema)


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(map(str, v)) if v else "none"
    return str(v)


def card_sections(markdown: str) -> dict[str, str]:
    """Split a model card into its ``## `` sections: title -> markdown body (``"title"`` holds the ``# `` line)."""
    out: dict[str, str] = {}
    current, lines = None, []
    for line in markdown.splitlines():
        if line.startswith("# ") and "title" not in out and current is None:
            out["title"] = line[2:].strip()
            continue
        if line.startswith("## "):
            if current is not None:
                out[current] = "\n".join(lines).strip()
            current, lines = line[3:].strip(), []
        elif current is not None:
            lines.append(line)
    if current is not None:
        out[current] = "\n".join(lines).strip()
    return out


# =============================================================================================== performance
def performance_frame(leaderboard: dict) -> pl.DataFrame:
    """Every model of the run on the held-out split against the best baseline
    (:func:`workbench.evaluation._charts.performance_frame`, what :meth:`Leaderboard.chart
    <workbench.experiments.Leaderboard.chart>` draws).

    Columns: ``model``, ``kind``, ``role`` (selected / best baseline / candidate / baseline), the primary metric
    (held-out), ``cv_mean``, ``cv_std``, ``delta_vs_baseline``, ``beats_baseline``, then the other held-out
    metrics.
    """
    from .evaluation._charts import performance_frame as frame

    return frame(leaderboard)


def plot_performance(leaderboard: dict, *, success_threshold: float | None = None) -> Any:
    """Horizontal bars of the primary metric per model (baselines grey, the selected candidate orange), with the
    bar to beat (best baseline + required improvement) and the brief's success threshold (the static twin of
    :func:`chart_performance`)."""
    from .evaluation._charts import performance_figure

    return performance_figure(leaderboard, success_threshold=success_threshold,
                              metric_label=term(leaderboard["primary"]))


# =============================================================================================== fairness
def fairness_choices(fairness: Any) -> dict[str, Any]:
    """Selector options: ``features`` (sensitive features and their intersections, as in the report) and
    ``metrics`` (label -> metric key): the per-group figures the report carries with a confidence interval, in
    the report's order (binary: selection rate, TPR, FPR, accuracy; regression: MAE, mean prediction, mean
    residual; multiclass: accuracy, then recall and share predicted of each class). ``fairness`` is the report
    object or its saved dict."""
    report = _fairness(fairness)
    features = [f for f in report.features if report.groups.get(f)]
    return {"features": features, "metrics": {metric_label(key): key for key in report.figures}}


def fairness_slice(fairness: Any, feature: str, metric: str) -> pl.DataFrame:
    """One metric in each group of ``feature``, with its bootstrap confidence interval
    (:meth:`FairnessReport.slice_frame <workbench.evaluation.FairnessReport.slice_frame>`).

    Columns: ``group``, ``n``, ``positives``, ``value``, ``ci_low``, ``ci_high``, ``evidence``, ``note``.
    ``positives`` is the group's rows of the positive class (binary) or of the class a multiclass ``recall[c]``
    is about, and null for the other figures; ``evidence`` is the figure's own (binary TPR/FPR and multiclass
    per-class recall need enough rows of the class).

    Raises
    ------
    DataError
        The report has no such feature.
    """
    report = _fairness(fairness)
    if feature not in report.groups:
        raise DataError(f"the fairness report has no slices for '{feature}'", column=feature,
                        hint=f"choose one of: {', '.join(report.groups)}")
    return report.slice_frame(feature, metric)


def _num(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def fairness_gaps(fairness: Any, feature: str) -> pl.DataFrame:
    """The between-group gaps of ``feature``: ``metric``, ``value``, ``ci_low``, ``ci_high``, ``threshold``,
    ``verdict``, ``groups_excluded``; multiclass reports add ``class`` (the class a per-class gap is largest
    for) after ``metric``."""
    report = _fairness(fairness)
    per_class = report.per_class
    rows = [{"metric": g["metric"], **({"class": g.get("class")} if per_class else {}),
             "value": _num(g.get("value")), "ci_low": _num(g.get("ci_low")),
             "ci_high": _num(g.get("ci_high")), "threshold": _num(g.get("threshold")), "verdict": g.get("verdict", ""),
             "groups_excluded": ", ".join(map(str, g.get("groups_excluded") or []))}
            for g in report.feature_gaps(feature)]
    schema = {"metric": pl.String, **({"class": pl.String} if per_class else {}), "value": pl.Float64,
              "ci_low": pl.Float64, "ci_high": pl.Float64, "threshold": pl.Float64, "verdict": pl.String,
              "groups_excluded": pl.String}
    return pl.DataFrame(rows, schema=schema)


def plot_fairness_slice(frame: pl.DataFrame, *, feature: str, metric: str, overall: float | None = None,
                        confidence_level: float | None = None) -> Any:
    """Point estimate and confidence interval per group; groups with too little evidence are hollow and grey (the
    static twin of the fairness report's chart, from :func:`fairness_slice`'s frame)."""
    from .evaluation._charts import fairness_slice_figure

    return fairness_slice_figure(frame, feature=feature, metric=metric, overall=overall,
                                 confidence_level=confidence_level)


def _is_rate(metric: str) -> bool:
    """Whether a per-group figure is a share in [0, 1] (every classification figure), not a target-unit value."""
    from .evaluation._charts import is_rate

    return is_rate(metric)


# =============================================================================================== SHAP
def _saved_shap(shap: dict | None, contributions: pl.DataFrame | None = None) -> Any:
    from .evaluation._shap_saved import SavedShap

    return SavedShap.from_saved(shap, contributions)


def shap_unit(shap: dict | None, task: str | None = None) -> str:
    """The unit of a SHAP report's values: log-odds (binary), the target's units (regression), the raw class
    score (multiclass; importance averages |SHAP| over classes)."""
    from .evaluation._shap_saved import shap_unit as unit

    return unit(shap, task)


def shap_importance(shap: dict) -> pl.DataFrame:
    """Global importance: ``feature``, ``mean_abs_shap`` (in :func:`shap_unit`), largest first
    (:meth:`SavedShap.importance_frame <workbench.evaluation._shap_saved.SavedShap.importance_frame>`)."""
    return _saved_shap(shap).importance_frame()


def load_contributions(run_dir: str | Path) -> pl.DataFrame | None:
    """The per-row SHAP values saved beside ``reports/shap.json`` (``shap_contributions.parquet``), or None."""
    p = Path(run_dir) / "reports" / "shap_contributions.parquet"
    return pl.read_parquet(p) if p.exists() else None


def driver_features(shap: dict, contributions: pl.DataFrame | None, sensitive: list[str]) -> list[str]:
    """Sensitive features (and ``a & b`` intersections) whose per-group drivers can be shown."""
    return _saved_shap(shap, contributions).driver_features(sensitive)


def group_drivers(shap: dict, contributions: pl.DataFrame | None, feature: str) -> pl.DataFrame:
    """Per group of ``feature``: mean |SHAP| and mean signed SHAP of every column (long format;
    :meth:`SavedShap.drivers_frame <workbench.evaluation._shap_saved.SavedShap.drivers_frame>`).

    Columns: ``group``, ``n``, ``feature``, ``mean_abs_shap``, ``mean_shap`` (direction: > 0 pushes towards the
    positive label, or raises the prediction), ``rank`` (1 = the group's strongest driver). Computed from the
    contributions Parquet; when it is missing, from ``shap.json`` (mean |SHAP| only, ``mean_shap`` null).
    Multiclass contributions are unsigned (mean |SHAP| over classes), so ``mean_shap`` is null there too.

    Raises
    ------
    DataError
        Neither the contributions nor ``shap.json`` have the feature.
    """
    return _saved_shap(shap, contributions).drivers_frame(feature)


def plot_importance(importance: pl.DataFrame, *, title: str = "Global importance", top: int = 15,
                    unit: str = "log-odds") -> Any:
    """Bars of mean |SHAP| per column, largest on top (the static twin of :func:`chart_importance`)."""
    from .evaluation._charts import importance_figure

    return importance_figure(importance, title=title, top=top, unit=unit)


def plot_group_drivers(drivers: pl.DataFrame, *, feature: str, top: int = 8, unit: str = "log-odds") -> Any:
    """Grouped bars of mean |SHAP| for the strongest columns, one bar per group (legend gives each group's n; the
    static twin of :func:`chart_group_drivers`)."""
    from .evaluation._charts import drivers_figure

    return drivers_figure(drivers, feature=feature, top=top, unit=unit)


# =============================================================================================== what-if
def whatif_fields(serving: dict, profile: dict | None = None) -> list[dict]:
    """The what-if form, built from the serving contract (``serving.json`` inputs).

    One item per model input, in model order: ``name``, ``kind``, and for categoricals ``options`` (the training
    categories, plus :data:`MISSING_OPTION` when the column was missing in training), for numerics ``min``/``max``
    (the training range) and ``step`` (1 for whole-number columns); ``default`` is the training median / most
    common category from the reference profile (the middle of the range without one).
    """
    feats = (profile or {}).get("features") or {}
    out = []
    for i in serving["inputs"]:
        name, ref = i["name"], feats.get(i["name"]) or {}
        if i["kind"] == "categorical":
            options = [str(c) for c in (i.get("categories") or [])]
            if i.get("nullable"):
                options.append(MISSING_OPTION)
            shares = {k: v for k, v in (ref.get("shares") or {}).items() if k in options and k != MISSING_OPTION}
            default = max(shares, key=shares.get) if shares else (options[0] if options else MISSING_OPTION)
            out.append({"name": name, "kind": "categorical", "options": options, "default": default,
                        "nullable": bool(i.get("nullable"))})
        else:
            lo, hi = i.get("min"), i.get("max")
            sample = np.asarray([v for v in ref.get("sample", []) if v is not None], dtype=np.float64)
            whole = (sample.size > 0 and bool(np.all(np.mod(sample, 1) == 0))
                     and all(v is None or float(v).is_integer() for v in (lo, hi)))
            if sample.size:
                default = float(np.median(sample))
            elif lo is not None and hi is not None:
                default = (float(lo) + float(hi)) / 2
            else:
                default = 0.0
            if whole:
                default = float(round(default))
            if lo is not None:
                default = max(default, float(lo))
            if hi is not None:
                default = min(default, float(hi))
            out.append({"name": name, "kind": "numeric", "min": _num(lo), "max": _num(hi),
                        "step": 1.0 if whole else None, "default": default, "nullable": bool(i.get("nullable"))})
    return out


def whatif_row(fields: list[dict], values: dict[str, Any] | None) -> dict[str, Any]:
    """One person as model inputs: form values (defaults for anything not given), :data:`MISSING_OPTION` and
    empty numbers become ``None``.

    Raises
    ------
    DataError
        A numeric value is not a number or lies outside the training range, or a category is not one the form
        offers.
    """
    values = values or {}
    row: dict[str, Any] = {}
    for f in fields:
        v = values.get(f["name"], f["default"])
        if f["kind"] == "categorical":
            if v is None or v == MISSING_OPTION:
                row[f["name"]] = None
            elif str(v) not in f["options"]:
                raise DataError(f"'{v}' is not a category the model was trained on", column=f["name"],
                                hint=f"choose one of: {', '.join(f['options'][:10])}")
            else:
                row[f["name"]] = str(v)
        else:
            if v is None or v == "":
                row[f["name"]] = None
                continue
            try:
                x = float(v)
            except (TypeError, ValueError):
                raise DataError(f"'{v}' is not a number", column=f["name"]) from None
            if not math.isfinite(x) or (f["min"] is not None and x < f["min"]) or \
                    (f["max"] is not None and x > f["max"]):
                raise DataError(f"{x:g} is outside the training range [{f['min']:g}, {f['max']:g}]",
                                column=f["name"], hint="the model would extrapolate; stay within the range")
            row[f["name"]] = x
    return row


def score_whatif(package: dict, row: dict[str, Any]) -> dict:
    """Score one row with the package's ONNX model, as the service does, through the scorer of the package's
    task (``serving.json`` ``task``; binary for packages written before it existed).

    Returns ``task``, ``tag``, ``onnx_sha256`` (of the file scored, checked against ``serving.json``) and the
    task's answer:

    * binary: ``probability``, ``label`` (positive if ``probability > threshold``), ``threshold``,
      ``positive_label``, ``negative_label``;
    * multiclass: ``label`` (the most probable class; ties go to the first), ``probability`` (its probability),
      ``probabilities`` (class -> probability, summing to 1, in code order), ``classes``;
    * regression: ``prediction`` (in the target's units), ``target`` (the target column), ``target_std`` (its
      training standard deviation, when the package records it).

    Raises
    ------
    WorkbenchError
        The package's ``model.onnx`` does not match the sha256 its ``serving.json`` certifies.
    """
    from .serving.scorer import OnnxScorer

    serving = package["serving"]
    task = task_of(serving)
    blob = (Path(package["path"]) / serving.get("onnx_file", "model.onnx")).read_bytes()
    sha = hashlib.sha256(blob).hexdigest()
    if serving.get("onnx_sha256") and sha != serving["onnx_sha256"]:
        raise WorkbenchError(f"the ONNX model of {package['tag']} does not match its certified sha256",
                             hint="the model store was altered: promote the run again")
    scorer = OnnxScorer(blob, serving["inputs"], task=task)
    scores = scorer.scores({k: [v] for k, v in row.items()})
    out: dict[str, Any] = {"task": task, "tag": package["tag"], "onnx_sha256": sha}
    if task == "multiclass_classification":
        proba = np.asarray(scores, dtype=np.float64)[0]
        classes = [str(c) for c in (serving.get("classes") or range(proba.size))]
        k = int(np.argmax(proba))
        return {**out, "label": classes[k], "probability": float(proba[k]), "classes": classes,
                "probabilities": {c: float(v) for c, v in zip(classes, proba, strict=True)}}
    if task == "regression":
        std = serving.get("target_std")
        return {**out, "prediction": float(np.asarray(scores)[0]), "target": serving.get("target")
                or (package.get("contract") or {}).get("target"), "target_std": None if std is None else float(std)}
    p = float(np.asarray(scores)[0])
    t = float(serving["threshold"])
    return {**out, "probability": p, "label": serving["positive_label"] if p > t else serving["negative_label"],
            "threshold": t, "positive_label": serving["positive_label"], "negative_label": serving["negative_label"]}


def whatif_headline(score: dict) -> str:
    """The what-if answer in one line of Markdown-free text (what the app's headline says after "Score for ...:")."""
    task = score.get("task", BINARY)
    if task == "multiclass_classification":
        others = ", ".join(f"{c} {p:.3f}" for c, p in sorted(score["probabilities"].items(), key=lambda kv: -kv[1])
                           if c != score["label"])
        return f"{score['label']} (probability {score['probability']:.3f}; {others})"
    if task == "regression":
        return f"predicted {score['target'] or 'value'} {score['prediction']:.4g}"
    return f"{score['probability']:.3f} -> {score['label']} (threshold {score['threshold']:g})"


def plot_class_probabilities(score: dict) -> Any:
    """Bars of a multiclass what-if answer's probability per class (the predicted class orange)."""
    from matplotlib.figure import Figure

    classes = list(score["probabilities"])
    values = [score["probabilities"][c] for c in classes]
    fig = Figure(figsize=(6.5, 0.4 * len(classes) + 1.2), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(classes[::-1], values[::-1], color=[_ORANGE if c == score["label"] else _BLUE for c in classes[::-1]])
    for y, v in enumerate(values[::-1]):
        ax.text(v, y, f" {v:.3f}", va="center", fontsize=8)
    ax.set_xlim(0, 1.1)
    ax.set_xlabel("probability (ONNX model)")
    ax.set_title(f"Predicted class: {score['label']}")
    return fig


def verified_model(run: dict, name: str | None = None) -> Any:
    """The run's notebook model ``artifacts/model_<name>.skops`` as a :class:`FittedModel`, loaded (skops, trusted types only) only
    after its sha256 matches the one the run manifest recorded.

    Raises
    ------
    WorkbenchError
        The manifest records no such artifact, the file is missing, or its sha256 differs (then it is not
        loaded).
    """
    from .data import DataContract
    from .modeling.train import FittedModel

    name = name or run["selected"]
    art = (run["manifest"].get("artifacts") or {}).get(f"model_{name}")
    if not art:
        raise WorkbenchError(f"run {run['run_id']} records no model artifact model_{name}",
                             hint="run the prototype phase with a run folder")
    path = Path(run["dir"]) / art["path"]
    if not path.is_file():
        raise WorkbenchError(f"{path} is missing", hint="the run folder is incomplete; run again")
    blob = path.read_bytes()
    actual = hashlib.sha256(blob).hexdigest()
    if actual != art["sha256"]:
        raise WorkbenchError(f"{path.name} has sha256 {actual[:12]}, the run manifest certified "
                             f"{art['sha256'][:12]}: not loaded", hint="the run folder was altered; run again")
    from .artifacts import load_model_bytes

    model = load_model_bytes(blob, source=str(path))
    contract = DataContract.load(Path(run["dir"]) / "reports" / "contract.json")
    seed = int((run["manifest"].get("seed")) or 0)
    return FittedModel(model=model, name=name, kind="candidate", fit_seconds=0.0, params={},
                       features=list(contract.features), seed=seed)


def explain_whatif(fitted: Any, run: dict, row: dict[str, Any], *, background: pl.DataFrame | None = None,
                   class_name: str | None = None) -> dict:
    """SHAP contributions of one row (per original column) from the run's notebook model.

    ``background`` (rows with the feature columns, e.g. :func:`load_contributions`) is the linear explainer's
    reference; the tree explainer ignores it. Returns ``contributions`` (frame: ``feature``, ``value``,
    ``contribution``, largest |contribution| first), ``base_value``, ``margin``, ``unit``, ``task`` and the
    notebook model's answer, to compare with the ONNX one:

    * binary: contributions in log-odds; ``probability`` = sigmoid(margin);
    * regression: contributions in the target's units; ``prediction`` = margin;
    * multiclass: the signed contributions to ``class_name``'s raw score (default: the predicted class), in
      ``class``; ``probabilities`` (softmax of every class's score) and ``probability`` (of ``class``).

    ``calibrated`` is True when the model is a calibrated classifier: the contributions (and ``margin``) are then
    the estimator's score before calibration, and ``probability`` / ``probabilities`` the calibrated model's.
    """
    from .data import DataContract
    from .evaluation.explain import explain
    from .modeling import to_model_frame

    contract = DataContract.load(Path(run["dir"]) / "reports" / "contract.json")
    frame = pl.DataFrame({f: [row.get(f)] for f in contract.features},
                         schema={f: (pl.Float64 if f in contract.numeric_features else pl.String)
                                 for f in contract.features})
    X = to_model_frame(frame, contract)
    bg = to_model_frame(background.select(contract.features), contract) if background is not None else None
    task = run.get("task") or task_of((run.get("reports") or {}).get("leaderboard"), run.get("brief"))
    classes = list(contract.classes or run.get("classes") or []) if task == "multiclass_classification" else None
    kwargs: dict[str, Any] = {"task": task, "classes": classes} if task != BINARY else {}
    report = explain(fitted, X, sample_size=1, seed=0, background=bg, **kwargs)
    out: dict[str, Any] = {"model": fitted.name, "explainer": report.explainer, "task": task}
    if task == "multiclass_classification":
        scores = np.asarray(report.margin, dtype=np.float64).reshape(-1)
        e = np.exp(scores - scores.max())
        proba = e / e.sum()
        name = class_name if class_name is not None else classes[int(np.argmax(proba))]
        if name not in report.class_contributions:
            raise DataError(f"no class '{name}'", hint=f"choose one of: {', '.join(classes)}")
        k = classes.index(name)
        contrib = report.class_contributions[name].iloc[0]
        out.update(base_value=float(report.class_base_values[name]), margin=float(scores[k]), probability=float(
            proba[k]), probabilities={c: float(v) for c, v in zip(classes, proba, strict=True)}, **{"class": name},
            unit=f"raw score of {name}")
    else:
        contrib = report.contributions.iloc[0]
        margin = float(np.asarray(report.margin).reshape(-1)[0])
        out.update(base_value=float(report.base_value), margin=margin)
        if task == "regression":
            out.update(prediction=margin, unit="target units")
        else:
            out.update(probability=1.0 / (1.0 + math.exp(-margin)), unit="log-odds")
    if task != "regression" and _is_calibrated(fitted.model):
        # SHAP explains the estimator inside the calibration (what ranks the rows); the answer is the calibrated
        # model's, as the ONNX export serves it: the contributions add up to the score before calibration.
        proba = np.asarray(fitted.model.predict_proba(X[list(contract.features)]), dtype=np.float64)[0]
        out["calibrated"] = True
        if task == "multiclass_classification":
            out.update(probabilities={c: float(v) for c, v in zip(classes, proba, strict=True)},
                       probability=float(proba[classes.index(out["class"])]))
        else:
            out["probability"] = float(proba[-1])
    else:
        out["calibrated"] = False
    values = X.iloc[0]
    out["contributions"] = pl.DataFrame({
        "feature": list(contrib.index),
        "value": [_show(v) for v in values[list(contrib.index)]],
        "contribution": [float(v) for v in contrib.to_numpy()],
    }).sort(pl.col("contribution").abs(), descending=True, maintain_order=True)
    return out


def _is_calibrated(model: Any) -> bool:
    """Whether a notebook pipeline's final step is a ``CalibratedClassifierCV`` (SHAP explains its estimator)."""
    steps = getattr(model, "named_steps", None) or {}
    return type(steps.get("model")).__name__ == "CalibratedClassifierCV"


def _show(v: Any) -> str:
    if v is None or v == "" or (isinstance(v, float) and math.isnan(v)):
        return MISSING_OPTION
    if isinstance(v, float) and v.is_integer():
        return str(int(v))
    return str(v)


def plot_contributions(explanation: dict, *, top: int = 10) -> Any:
    """Waterfall-style bars of one row's strongest contributions (orange raises the answer, blue lowers it: a
    direction, not a judgement; red is kept for failures), in the
    explanation's unit (log-odds, target units, or a class's raw score)."""
    from matplotlib.figure import Figure

    t = explanation["contributions"].head(top)
    labels = [f"{f} = {v}" for f, v in zip(t["feature"], t["value"], strict=True)][::-1]
    vals = t["contribution"].to_list()[::-1]
    fig = Figure(figsize=(6.5, 0.36 * len(vals) + 1.3), layout="constrained")
    ax = fig.add_subplot()
    ax.barh(labels, vals, color=[_UP if v > 0 else _DOWN for v in vals])
    ax.axvline(0, color="#555", linewidth=0.8)
    from matplotlib.patches import Patch

    ax.legend(handles=[Patch(color=_UP, label="raises it"), Patch(color=_DOWN, label="lowers it")], fontsize=7,
              loc="lower right")
    unit = explanation.get("unit", "log-odds")
    what = "the prediction" if explanation.get("task") == "regression" else "the score"
    ax.set_xlabel(f"contribution to {what} ({unit}; > 0 raises it)")
    if explanation.get("task") == "regression":
        title = f"Why this prediction: base {explanation['base_value']:.4g}, total {explanation['margin']:.4g}"
    else:
        cls = f" of {explanation['class']}" if explanation.get("class") is not None else ""
        title = (f"Why this score{cls}: base {explanation['base_value']:+.2f}, "
                 f"total {explanation['margin']:+.2f}") + (" (before calibration)" if explanation.get("calibrated")
                                                          else "")
    ax.set_title(title)
    ax.tick_params(axis="y", labelsize=8)
    return fig


# =============================================================================================== interactive charts
# The app's on-screen charts: altair (Vega-Lite) specs built from the same frames as the matplotlib figures above
# (which report.html and the static exports keep using), with the same colours. The app wraps each one in
# ``mo.ui.altair_chart``; every chart has tooltips, and a selection where picking something helps reading.
def _alt() -> Any:
    import altair as alt

    return alt


def chart_performance(leaderboard: dict, *, success_threshold: float | None = None) -> Any:
    """The performance chart, interactive: the primary metric per model (the selected candidate orange, baselines
    grey, other candidates blue) against the bar to beat (dashed grey) and the brief's success threshold (dotted
    green); hover a bar for the model, its role and its figure, click one to pick it out. The chart
    :meth:`Leaderboard.chart <workbench.experiments.Leaderboard.chart>` draws, from the saved dict (the
    leaderboard object's module loads the training code, which the app does not need to show a chart)."""
    from .evaluation._charts import performance_chart

    return performance_chart(leaderboard, success_threshold=success_threshold,
                             metric_label=term(leaderboard["primary"]), model_label=model_name)


def chart_fairness_slice(frame: pl.DataFrame, *, feature: str, metric: str, overall: float | None = None,
                         confidence_level: float | None = None) -> Any:
    """The fairness slice chart, interactive, from :func:`fairness_slice`'s frame: the chart
    :meth:`FairnessReport.chart <workbench.evaluation.FairnessReport.chart>` draws (the app calls that)."""
    from .evaluation._charts import fairness_slice_chart

    return fairness_slice_chart(frame, feature=feature, metric=metric, overall=overall,
                                confidence_level=confidence_level)


def chart_importance(importance: pl.DataFrame, *, title: str = "Global importance", top: int = 15,
                     unit: str = "log-odds") -> Any:
    """The SHAP importance chart, interactive, from :func:`shap_importance`'s frame: mean |SHAP| per column
    (blue, largest on top); hover for the figure and its rank, click a column to pick it out. The chart
    :meth:`SavedShap.chart <workbench.evaluation._shap_saved.SavedShap.chart>` draws."""
    from .evaluation._charts import importance_chart

    return importance_chart(importance, title=title, top=top, unit=unit)


def chart_group_drivers(drivers: pl.DataFrame, *, feature: str, top: int = 8, unit: str = "log-odds") -> Any:
    """The group-driver chart, interactive, from :func:`group_drivers`'s frame: mean |SHAP| of the strongest
    columns, one bar per group (group colours, never the orange/blue direction pair nor red). Hover for the
    group, its people, the rank and the average direction; click a group in the legend to show it alone. The
    chart :meth:`SavedShap.drivers_chart <workbench.evaluation._shap_saved.SavedShap.drivers_chart>` draws."""
    from .evaluation._charts import drivers_chart

    return drivers_chart(drivers, feature=feature, top=top, unit=unit)


def chart_contributions(explanation: dict, *, top: int = 10) -> Any:
    """The what-if contribution chart, interactive, from :func:`explain_whatif`'s ``contributions``: one row's
    strongest contributions (orange raises the answer, blue lowers it: a direction, not a judgement); hover for
    the input, its value and its contribution."""
    alt = _alt()
    t = explanation["contributions"].head(top)
    data = t.with_columns(pl.format("{} = {}", "feature", "value").alias("label"),
                          pl.when(pl.col("contribution") > 0).then(pl.lit("raises it")).otherwise(pl.lit("lowers it"))
                          .alias("direction"))
    unit = explanation.get("unit", "log-odds")
    what = "the prediction" if explanation.get("task") == "regression" else "the score"
    if explanation.get("task") == "regression":
        title = f"Why this prediction: base {explanation['base_value']:.4g}, total {explanation['margin']:.4g}"
    else:
        cls = f" of {explanation['class']}" if explanation.get("class") is not None else ""
        title = f"Why this score{cls}: base {explanation['base_value']:+.2f}, total {explanation['margin']:+.2f}"
        if explanation.get("calibrated"):
            title += " (before calibration)"
    y = alt.Y("label:N", sort=data["label"].to_list(), title=None, axis=alt.Axis(labelLimit=300))
    bars = alt.Chart(data).mark_bar().encode(
        x=alt.X("contribution:Q", title=f"contribution to {what} ({unit}; > 0 raises it)"), y=y,
        color=alt.Color("direction:N", scale=alt.Scale(domain=["raises it", "lowers it"], range=[_UP, _DOWN]),
                        legend=alt.Legend(title=None, orient="bottom")),
        tooltip=[alt.Tooltip("feature:N", title="input"), alt.Tooltip("value:N", title="value"),
                 alt.Tooltip("contribution:Q", title=f"contribution ({unit})", format="+.4f"),
                 alt.Tooltip("direction:N", title="effect")],
    )
    zero = alt.Chart(pl.DataFrame({"x": [0.0]})).mark_rule(color="#555").encode(x="x:Q")
    chart = alt.layer(bars, zero).properties(width=CHART_WIDTH, height=24 * max(data.height, 2), title=title)
    return _chart_id(chart, "contributions")


def chart_class_probabilities(score: dict) -> Any:
    """A multiclass what-if answer's probability per class, interactive (the predicted class orange)."""
    alt = _alt()
    classes = list(score["probabilities"])
    data = pl.DataFrame({"class": classes, "probability": [score["probabilities"][c] for c in classes],
                         "answer": ["predicted" if c == score["label"] else "other" for c in classes]})
    y = alt.Y("class:N", sort=classes, title=None)
    bars = alt.Chart(data).mark_bar().encode(
        x=alt.X("probability:Q", scale=alt.Scale(domain=[0, 1.1], nice=False), title="probability (ONNX model)"),
        y=y, color=alt.Color("answer:N", scale=alt.Scale(domain=["predicted", "other"], range=[_ORANGE, _BLUE]),
                             legend=None),
        tooltip=[alt.Tooltip("class:N"), alt.Tooltip("probability:Q", format=".3f")])
    text = alt.Chart(data).mark_text(align="left", dx=3).encode(x="probability:Q", y=y,
                                                                text=alt.Text("probability:Q", format=".3f"))
    chart = alt.layer(bars, text).properties(width=CHART_WIDTH, height=26 * max(len(classes), 2),
                                             title=f"Predicted class: {score['label']}")
    return _chart_id(chart, "classes")


# =============================================================================================== plain language
GLOSSARY: dict[str, tuple[str, str]] = {
    # model quality, binary
    "pr_auc": ("PR-AUC", "how well the scores put the real positive cases at the top of the list, from 0 to 1; "
                         "higher is better, and it stays honest when positive cases are rare"),
    "roc_auc": ("ROC-AUC", "the chance that a real positive case gets a higher score than a real negative one, "
                           "from 0.5 (a coin toss) to 1"),
    "f1": ("F1", "a balance of how many flagged cases are right and how many real cases are flagged, 0 to 1"),
    "brier": ("Brier score", "the average squared gap between the predicted chance and what happened; lower is "
                             "better"),
    "accuracy": ("accuracy", "the share of cases the model gets right"),
    "balanced_accuracy": ("balanced accuracy", "the share right within each class, averaged so that small classes "
                                               "count as much as large ones"),
    "log_loss": ("log loss", "how much confident mistakes are punished; lower is better"),
    # multiclass
    "macro_f1": ("macro F1", "how well each class is recognised (a balance of hits and false alarms), averaged "
                             "with every class counting equally, 0 to 1"),
    "weighted_f1": ("weighted F1", "how well each class is recognised, averaged by the size of each class"),
    # regression
    "mae": ("mean absolute error", "how far off a prediction typically is, in the target's own units; "
                                         "lower is better"),
    "rmse": ("RMSE", "like the mean absolute error but large misses weigh more; lower is better"),
    "r2": ("R²", "how much of the variation in the target the model explains, from 0 (no better than the "
                 "average) to 1 (perfect)"),
    "median_ae": ("median absolute error", "half of the predictions miss by less than this"),
    "mape": ("mean percentage error", "how far off a prediction typically is, as a share of the actual value"),
    # per-group figures
    "selection_rate": ("selection rate", "the share of a group the model flags"),
    "tpr": ("true positive rate", "of the people who really are positive, the share the model finds"),
    "fpr": ("false positive rate", "of the people who are not positive, the share the model wrongly flags"),
    "recall": ("recall", "of the cases that really are a class, the share the model recognises"),
    "mean_prediction": ("mean prediction", "the model's average prediction for the group"),
    "mean_residual": ("mean residual", "actual minus predicted, on average: above zero means the model "
                                       "under-estimates the group, below zero that it over-estimates it"),
    # fairness gaps
    "demographic_parity_difference": ("selection-rate gap", "the largest difference between groups in the share "
                                                            "the model flags"),
    "demographic_parity_ratio": ("selection-rate ratio", "the lowest group's selection rate divided by the "
                                                         "highest's (1 means equal)"),
    "equalized_odds_difference": ("equalized-odds gap", "the largest difference between groups in how often real "
                                                        "positives are found or negatives wrongly flagged"),
    "accuracy_difference": ("accuracy gap", "the largest difference in accuracy between groups"),
    "recall_difference": ("recall gap", "for the class where it is largest, the difference between groups in the "
                                        "share of that class the model recognises"),
    "selection_rate_difference": ("prediction-share gap", "for the class where it is largest, the difference "
                                                          "between groups in the share predicted as that class"),
    "mae_difference": ("error gap", "the largest difference between groups in the typical size of a miss, in the "
                                    "target's units"),
    "mae_relative_difference": ("relative error gap", "the error gap as a share of the overall typical miss"),
    "mean_residual_difference": ("bias gap", "the largest difference between groups in how much the model under- "
                                             "or over-estimates them, in the target's units"),
    # other words the app uses
    "baseline": ("baseline", "a simple rule (such as always giving the most common answer) that a model must beat "
                             "to be worth using"),
    "confidence_interval": ("confidence interval", "the range the true figure is likely to lie in, given how many "
                                                   "people the test data had"),
    "shap": ("contribution (SHAP)", "how much one input moved the model's answer up or down for a person"),
    "no_threshold": ("reported, not gated", "the brief sets no limit for this figure, so it is shown for "
                                            "information and cannot stop the model"),
}
"""Plain names and one-line meanings, for readers who are not data scientists: ``key -> (name, meaning)``."""

MODEL_NAMES = {"majority": "always the most common answer", "rule": "a one-question rule",
               "median": "always the median", "mean": "always the average", "logreg": "logistic regression",
               "ridge": "linear regression", "hgb": "gradient-boosted trees", "lgbm": "LightGBM trees",
               "lightgbm": "LightGBM trees", "xgb": "XGBoost trees"}
"""Model names as a reader says them (the run's own names stay beside them)."""

GAP_VERDICTS = {"within threshold": "within the limit", "exceeds threshold": "over the limit",
                "insufficient evidence": "too few people to tell: a person must review",
                "insufficient evidence — review": "too few people to tell: a person must review",
                "no threshold": "reported, not gated (the brief sets no limit for it)"}


def _base_key(key: str) -> tuple[str, str | None]:
    if key.endswith("]") and "[" in key:
        name, cls = key[:-1].split("[", 1)
        return name, cls
    return key, None


def term(key: str) -> str:
    """A metric or figure by its plain name: ``pr_auc`` -> "PR-AUC", ``recall[Adelie]`` -> "recall of Adelie"."""
    name, cls = _base_key(key)
    if cls is not None:
        if name == "selection_rate":
            return f"share predicted {cls}"
        return f"{GLOSSARY.get(name, (name.replace('_', ' '),))[0]} of {cls}"
    return GLOSSARY.get(key, (key.replace("_", " "),))[0]


def explain(key: str) -> str:
    """A metric named and explained for a first use: "PR-AUC (how well the scores put ...)"."""
    name, cls = _base_key(key)
    entry = GLOSSARY.get(name)
    return f"{term(key)} ({entry[1]})" if entry else term(key)


def glossary(keys: list[str]) -> list[dict[str, str]]:
    """Glossary rows (``term``, ``meaning``) for the given keys, each once, unknown keys left out."""
    out, seen = [], set()
    for k in keys:
        name, _ = _base_key(k)
        if name in GLOSSARY and name not in seen:
            seen.add(name)
            out.append({"term": GLOSSARY[name][0], "meaning": GLOSSARY[name][1]})
    return out


def model_name(name: str | None) -> str:
    """A model as a reader says it, with the run's own name: "gradient-boosted trees (hgb)"."""
    if not name:
        return "no model"
    plain = MODEL_NAMES.get(name)
    return f"{plain} ({name})" if plain else name


def _pct(v: float | None, digits: int = 1) -> str:
    return "n/a" if v is None else f"{100 * v:.{digits}f}".removesuffix(".0") + "%"


def _num_text(v: float | None, digits: int = 3) -> str:
    return "n/a" if v is None else f"{v:.{digits}g}"


def gap_value_text(metric: str, value: float | None, *, units: str = "") -> str:
    """A fairness gap's value in reading units: rate gaps in percentage points, ratios as ratios, regression gaps
    in the target's units, the relative error gap as a percentage."""
    if value is None:
        return "n/a"
    if metric == "demographic_parity_ratio":
        return f"{value:.2f}"
    if metric == "mae_relative_difference":
        return f"{100 * value:.0f}%"
    if metric in ("mae_difference", "mean_residual_difference"):
        return f"{value:.3g}{' ' + units if units else ''}"
    pp = f"{100 * value:.1f}".removesuffix(".0")
    return f"{pp} percentage points"


def gap_sentence(gap: dict, *, confidence_level: float | None = 0.95, units: str = "") -> str:
    """One fairness gap in a sentence, with its verdict in plain words (and "no threshold" explained)."""
    m = gap.get("metric", "")
    cls = f", largest for {gap['class']}," if gap.get("class") else ""
    what = f"The {term(m)}{cls}"
    value = gap_value_text(m, _num(gap.get("value")), units=units)
    verdict = gap.get("verdict", "")
    if verdict == "no threshold" or gap.get("threshold") is None:
        return f"{what} is {value}: reported, not gated (the brief sets no limit for it)."
    level = f"{confidence_level:.0%}" if confidence_level else "95%"
    limit = gap_value_text(m, _num(gap.get("threshold")), units=units)
    upper = gap_value_text(m, _num(gap.get("ci_high")), units=units)
    said = GAP_VERDICTS.get(verdict, verdict)
    if _num(gap.get("value")) is None:
        return f"The brief allows the {term(m)} to be at most {limit}; here it cannot be measured: {said}."
    return (f"The brief allows the {term(m)} to be at most {limit}; here it is {value}{cls} (at most {upper} with "
            f"{level} confidence): {said}.")


def _group_phrase(metric: str, value: float, group: str, *, positive: str | None, task: str, units: str = "",
                  first: bool = True) -> str:
    """How the model treats one group on one figure; ``first=False`` gives the short form that follows the first
    group in a list ("and 24.8% of Male")."""
    name, cls = _base_key(metric)
    u = f" {units}" if units else ""
    if task == "regression":
        if name == "mean_residual":
            if abs(value) < 1e-9:
                return f"gets {group} right on average"
            how = "under-estimates" if value > 0 else "over-estimates"
            return f"{how} {group} by {abs(value):.3g}{u} on average"
        if name == "mae":
            return f"misses {group} by {value:.3g}{u} on average" if first else f"{group} by {value:.3g}{u}"
        return f"predicts {value:.3g}{u} on average for {group}" if first else f"{value:.3g}{u} for {group}"
    if name == "selection_rate":
        what = f"“{cls}”" if cls else (f"“{positive}”" if positive else "positive")
        return f"predicts {what} for {_pct(value)} of {group}" if first else f"{_pct(value)} of {group}"
    if name == "tpr":
        real = f"who really are “{positive}”" if positive else "who really are positive"
        return f"finds {_pct(value)} of the {group} {real}" if first else f"{_pct(value)} of the {group}"
    if name == "fpr":
        return (f"wrongly flags {_pct(value)} of the {group} who are not “{positive}”" if first and positive
                else f"wrongly flags {_pct(value)} of the {group} who are not" if first
                else f"{_pct(value)} of the {group}")
    if name == "recall":
        return f"recognises {_pct(value)} of the {cls} among {group}" if first else f"{_pct(value)} among {group}"
    if name == "accuracy":
        return f"is right for {_pct(value)} of {group}" if first else f"{_pct(value)} of {group}"
    return f"has a {term(metric)} of {value:.3g} for {group}" if first else f"{value:.3g} for {group}"


def _and(items: list[str]) -> str:
    items = [str(i) for i in items]
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def lead_fairness(fairness: Any, feature: str, metric: str, *, positive_label: str | None = None,
                  units: str = "") -> str:
    """The lead sentence of the fairness screen: how the model treats each group of ``feature`` on ``metric``
    ("By sex, the model predicts “>50K” for 8.1% of Female and 24.8% of Male"), then the gated gap(s) of the
    feature with their verdicts in plain words. ``fairness`` is the report object or its saved dict."""
    report = _fairness(fairness)
    task = report.task
    rows = [r for r in report.groups.get(feature, []) if _num(r.get(metric)) is not None]
    ok = sorted([r for r in rows if r.get("evidence") == "ok"] or rows, key=lambda r: float(r[metric]))

    def phrase(r: dict, first: bool) -> str:
        return _group_phrase(metric, float(r[metric]), str(r["group"]), positive=positive_label, task=task,
                             units=units, first=first or (task == "regression" and metric == "mean_residual"))

    if not ok:
        head = f"No group of {feature} has a {term(metric)} to show."
    elif len(ok) <= 3:
        head = f"By {feature}, the model " + _and([phrase(r, i == 0) for i, r in enumerate(ok)]) + "."
    else:
        head = (f"By {feature}, the model {phrase(ok[0], True)}, and {phrase(ok[-1], False)}; the other "
                f"{len(ok) - 2} groups lie between.")
    small = [str(r["group"]) for r in rows if r.get("evidence") != "ok"]
    if small:
        head += f" {_and(small)} {'has' if len(small) == 1 else 'have'} too few people in the test data to compare."
    gaps = report.feature_gaps(feature)
    gated = [g for g in gaps if g.get("threshold") is not None] or gaps[:1]
    level = 0.95 if report.confidence_level is None else report.confidence_level
    return " ".join([head, *[gap_sentence(g, confidence_level=level, units=units) for g in gated]])


def _metric_value_text(metric: str, value: float | None, units: str = "") -> str:
    if value is None:
        return "n/a"
    if metric in ("mae", "rmse", "median_ae"):
        return f"{value:.3g}{' ' + units if units else ''}"
    if metric == "mape":
        return _pct(value)
    return f"{value:.3f}"


def lead_performance(leaderboard: dict, *, brief: dict | None = None, evaluation: Any = None) -> str:
    """The lead sentence of the performance screen: the selected model against the best simple rule and the
    brief's bar, in the task's words; multiclass adds how often each class is recognised, regression how far off
    a prediction typically is. ``evaluation`` is the selected model's held-out report (the object or its saved
    dict)."""
    from .evaluation import MulticlassReport, RegressionReport
    from .tasks import get_task

    brief = brief or {}
    task = get_task(task_of(leaderboard))
    primary, sel, best = leaderboard.get("primary"), leaderboard.get("selected"), leaderboard.get("best_baseline")
    models = leaderboard.get("models") or {}
    target = ((brief.get("target") or {}).get("column") or "") if task.name == "regression" else ""
    units = ""
    unit_txt = ""
    if not sel or sel not in models:
        return (f"No model beat the simple rules by the margin the brief asks for, so this run selected none "
                f"(measured by {explain(primary)}).")
    v = ((models[sel].get("test") or {}).get("metrics") or {}).get(primary)
    b = ((models.get(best, {}).get("test") or {}).get("metrics") or {}).get(primary) if best else None
    higher = task.greater_is_better(primary) if primary in task.metrics else True
    thr = (brief.get("success") or {}).get("threshold")
    margin = leaderboard.get("min_improvement")
    s = (f"The selected model, {model_name(sel)}, scores {_metric_value_text(primary, v, units)} on "
         f"{explain(primary)}, on test data it never saw")
    if b is not None and v is not None:
        diff = (v - b) if higher else (b - v)
        word = "better" if diff > 0 else "worse"
        s += (f"; the best simple rule, {model_name(best)}, scores {_metric_value_text(primary, b, units)}, so the "
              f"model is {_metric_value_text(primary, abs(diff), units)} {word}")
    bar = []
    if margin is not None:
        bar.append(f"beat the rule by more than {margin:g}")
    if thr is not None:
        bar.append(f"reach {'at least' if higher else 'at most'} {thr:g}")
    s += f" (the brief asks it to {' and '.join(bar)})." if bar else "."
    ev = _evaluation(evaluation, task.name)
    if task.name == "multiclass_classification" and isinstance(ev, MulticlassReport) and ev.per_class:
        per = sorted(ev.per_class, key=lambda r: -(r.get("recall") or 0))
        parts = [f"{r['class']} {_pct(r.get('recall'), 0)}" for r in per[1:]]
        s += (f" {per[0]['class']} is recognised {_pct(per[0].get('recall'), 0)} of the time"
              + (f", {', '.join(parts)}" if parts else "") + f"{unit_txt}.")
    elif task.name == "regression" and isinstance(ev, RegressionReport) and ev.residual.get("mean") is not None:
        r = ev.residual["mean"]
        how = "under-estimates" if r > 0 else "over-estimates"
        s += f" Across everyone, the model {how} {target or 'the target'} by {abs(r):.3g} on average."
    if target:
        s += f" Amounts are in the units of {target}."
    return s


def lead_shap(shap: dict, *, sensitive: list[str] | None = None) -> str:
    """The lead sentence of the drivers screen: which inputs move the answers most, and where the sensitive
    features rank."""
    imp = list((shap.get("importance") or {}).items())
    if not imp:
        return "This run has no explanation of its answers."
    names = [k.replace("_", " ") for k, _ in imp]
    top = names[:3]
    what = {"regression": "predictions depend", "multiclass_classification": "choice of class depends"}.get(
        shap.get("task") or BINARY, "scores depend")
    s = (f"The model's {what} most on {', '.join(top[:-1])} and {top[-1]}." if len(top) > 1
         else f"The model's {what} most on {top[0]}.")
    ranks = [(f, [k for k, _ in imp].index(f) + 1) for f in (sensitive or []) if f in dict(imp)]
    if ranks:
        s += " " + "; ".join(f"{f.replace('_', ' ').capitalize()} ranks {_ordinal(r)} of {len(imp)} inputs"
                             for f, r in ranks) + "."
    return s


def _ordinal(n: int) -> str:
    return f"{n}{'th' if 10 <= n % 100 <= 20 else {1: 'st', 2: 'nd', 3: 'rd'}.get(n % 10, 'th')}"


def lead_whatif(score: dict, *, submitted: bool) -> str:
    """The lead sentence of the what-if screen: the production model's answer for one person, in words."""
    who = "the case you entered" if submitted else "the typical case (change the form and submit to try another)"
    task = score.get("task", BINARY)
    if task == "regression":
        return f"For {who}, the model predicts {score.get('target') or 'a value'} of {score['prediction']:.4g}."
    if task == "multiclass_classification":
        others = sorted(((c, p) for c, p in score["probabilities"].items() if c != score["label"]),
                        key=lambda kv: -kv[1])
        runner = f"; next most likely is {others[0][0]} ({_pct(others[0][1], 0)})" if others else ""
        return f"For {who}, the model answers {score['label']} with {_pct(score['probability'], 0)} confidence{runner}."
    above = score["probability"] > score["threshold"]
    return (f"For {who}, the model gives a {_pct(score['probability'], 0)} chance of “{score['positive_label']}”, "
            f"{'above' if above else 'below'} the {_pct(score['threshold'], 0)} line, so its answer is "
            f"“{score['label']}”.")


def lead_drift(status: dict) -> str:
    """The lead sentence of the drift screen."""
    if status.get("report") is None:
        if status.get("status") == "no log":
            return ("The production model has not answered any request yet, so there is nothing to compare with "
                    "the training data.")
        return f"Drift cannot be measured: {status.get('message', '')}."
    r = status["report"]
    moved = [f["feature"] for f in r.features if f.get("severity") not in ("ok", None)]
    if r.severity == "ok":
        return (f"Over {r.rows} logged requests, the people scored look like the training data: no input has "
                "shifted enough to act on.")
    return (f"Over {r.rows} logged requests, {len(moved)} input(s) differ from the training data "
            f"({', '.join(moved[:5])}): {r.action}")


def gate_plain(name: str, verdict: str, value: Any, threshold: Any, detail: Any) -> str:
    """What a go/no-go gate checked and found, in plain words (no fingerprints, no error magnitudes)."""
    v, t, d = _text(value), _text(threshold), _text(detail)
    low = name.lower()
    ok = verdict == "pass"
    if low.startswith("integrity"):
        what = name.split(":", 1)[-1].strip()
        what = ("the model file" if what.startswith("model artifact") else what).replace(
            "train data", "the training data").replace("test data", "the test data")
        return (f"{what[0].upper() + what[1:]} is exactly the one the run tested (its fingerprint matches)." if ok
                else f"{what} changed after the run: its fingerprint does not match.")
    if low.startswith("data quality") or low == "data quality":
        return f"The data scored {v} of 30 for quality (at least {t} needed)."
    if low.startswith("kill criteria"):
        return ("None of the brief's stop conditions was triggered." if ok
                else f"A stop condition of the brief was triggered: {v}.")
    if low.startswith("beats baseline"):
        m = name[name.find("(") + 1:name.rfind(")")] if "(" in name else ""
        return (f"Better than the best simple rule by {v} on {term(m)} (the brief asks for {t.replace('> ', 'more than ')})."
                if ok else f"Not better than the best simple rule by enough on {term(m)} ({v}; needs {t}).")
    if low.startswith("success threshold"):
        m = name[name.find("(") + 1:name.rfind(")")] if "(" in name else ""
        return f"{_cap(term(m))} on the test data is {v} (the brief asks for {t.replace('>= ', 'at least ').replace('<= ', 'at most ')})."
    if low.startswith("fairness"):
        rest = name.split(":", 1)[-1].strip()
        metric, _, feature = rest.partition(" by ")
        if verdict == "info":
            return (f"Groups of {feature}: too few people in some groups to check the {term(metric)}; reported, "
                    "not counted as a pass.")
        vv, tt = gap_value_text(metric, _float(value)), gap_value_text(metric, _float(t.replace("<= ", "")))
        return (f"Groups of {feature} are treated alike within the brief's limit: the {term(metric)} is at most "
                f"{vv} with 95% confidence, the limit is {tt}." if ok
                else f"The {term(metric)} between groups of {feature} may be over the brief's limit ({vv}; the "
                     f"limit is {tt}).")
    if low.startswith("onnx parity"):
        return ("The copy of the model that serves requests gives the same answers as the one tested." if ok
                else "The serving copy of the model does not give the same answers as the one tested.")
    if "latency" in low:
        v = _num_text(_float(value), 2) if _float(value) is not None else v
        return (f"Answers one request in {v} ms (limit {t.replace('<= ', '')} ms)." if ok
                else f"Too slow: {v} ms per request (limit {t.replace('<= ', '')} ms).")
    if low.startswith("model size"):
        return f"The model file is {v}: reported, not gated."
    if low.startswith("leakage"):
        return ("No sign that an input gives the answer away." if ok
                else f"An input may give the answer away: {d or v}.")
    return f"{d or v}" if verdict != "info" else f"{d or v} (reported, not gated)."


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def _float(v: Any) -> float | None:
    try:
        return float(str(v).strip())
    except (TypeError, ValueError):
        return None


def gate_rows(gates: dict | None, manifest: dict | None = None) -> list[dict]:
    """Gate verdicts for the stakeholder table: ``stage``, ``check``, ``result`` (PASS / FAIL / info) and
    ``in plain words``; the technical values stay in :func:`gate_frame`."""
    icons = {"pass": "PASS", "fail": "FAIL", "info": "info"}
    out = []
    for r in gate_frame(gates, manifest).iter_rows(named=True):
        out.append({"stage": "run" if r["stage"] == "run" else "promotion", "check": _gate_title(r["gate"]),
                    "result": icons.get(r["verdict"], r["verdict"]),
                    "in plain words": gate_plain(r["gate"], r["verdict"], r["value"], r["threshold"], r["detail"])})
    return out


def _gate_title(name: str) -> str:
    low = name.lower()
    if low.startswith("integrity"):
        what = name.split(":", 1)[-1].strip()
        return "unchanged " + ("model file" if what.startswith("model artifact") else what)
    if low.startswith("fairness"):
        rest = name.split(":", 1)[-1].strip()
        metric, _, feature = rest.partition(" by ")
        return f"fairness by {feature} ({term(metric)})"
    if "(" in name and name.endswith(")"):
        head, m = name[:-1].split("(", 1)
        return f"{head.strip()} ({term(m)})"
    if low.startswith("onnx parity"):
        return "serving copy agrees"
    return name


def lead_overview(run: dict, promotion: dict) -> str:
    """The lead sentence of the first screen: what the run is for, the model it chose and what became of it."""
    gates = gate_frame(promotion.get("gates"), run.get("manifest"))
    failed = gates.filter(pl.col("verdict") == "fail")["gate"].to_list()
    sel = run.get("selected")
    status = promotion.get("status")
    if not sel:
        return "This run chose no model: none beat the simple rules by the margin the brief asks for."
    s = f"This run chose {model_name(sel)}. "
    if status == "production":
        s += f"It passed every go/no-go check below and is the model in production ({promotion.get('tag')})."
    elif status == "certified":
        s += "It passed every go/no-go check below but is not the model in production."
    elif status == "refused":
        s += ("It was refused at promotion: " + ", ".join(_gate_title(g) for g in failed) + " failed."
              if failed else "It was refused at promotion.")
    else:
        s += "It has not been through the promotion checks yet, so it is not in production."
    return s


def records(frame: pl.DataFrame | list[dict], *, columns: dict[str, str] | None = None,
            formats: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Rows for a stakeholder table: plain dicts (so no data-type labels under the headers), only ``columns``
    (key -> header shown, in that order) when given, numbers formatted with ``formats`` (column -> format spec),
    missing values as "" rather than ``None``."""
    rows = frame.to_dicts() if isinstance(frame, pl.DataFrame) else list(frame)
    columns = columns or {k: k for k in (rows[0] if rows else {})}
    formats = formats or {}
    out = []
    for r in rows:
        row = {}
        for key, header in columns.items():
            v = r.get(key)
            if v is None or (isinstance(v, float) and not math.isfinite(v)):
                row[header] = ""
            elif key in formats and isinstance(v, (int, float)) and not isinstance(v, bool):
                row[header] = format(v, formats[key])
            elif isinstance(v, bool):
                row[header] = "yes" if v else "no"
            else:
                row[header] = v
        out.append(row)
    return out


# =============================================================================================== drift
def drift_status(package: dict, *, log_root: str | Path | None = None) -> dict:
    """Drift of the production model's logged inputs against its reference profile.

    Returns ``{"status": "no log", "message": "no prediction log yet", "detail": ...}`` when the model has not
    been served yet, else ``status`` = the report's severity (``ok``/``warning``/``critical``), ``report`` (the
    :class:`DriftReport`), ``rows``, ``message`` (the playbook action).
    """
    from .monitoring.drift import drift_report
    from .monitoring.log import read_log

    tag = package["tag"]
    try:
        live = read_log(log_root, model_version=tag)
    except DataError:
        return {"status": "no log", "message": "no prediction log yet",
                "detail": f"{tag} has not logged any request: serve it (`bentoml serve`) and send requests, "
                          "then its drift is measured here", "report": None, "rows": 0}
    if package.get("profile") is None:
        return {"status": "error", "message": f"{tag} has no reference_profile.json", "report": None,
                "rows": live.height}
    mon = package.get("monitoring") or {}
    try:
        report = drift_report(live, package["profile"], psi_warning=mon.get("psi_warning", 0.1),
                              psi_critical=mon.get("psi_critical", 0.25), ks_alpha=mon.get("ks_alpha", 0.01),
                              model_version=tag, window={"first": live["ts"].min(), "last": live["ts"].max()})
    except DataError as exc:
        return {"status": "error", "message": exc.message, "report": None, "rows": live.height}
    return {"status": report.severity, "message": report.action, "report": report, "rows": report.rows}


def prediction_drift_summary(report: Any) -> str:
    """One line on how the production model's predictions moved, in the task's terms (binary: P(positive) and
    the positive rate; multiclass: the predicted class shares; regression: the predicted values)."""
    p = report.prediction
    task = p.get("task", BINARY)
    if task == "multiclass_classification":
        return (f"Predicted classes: PSI {p['psi']:.3f}, chi-square p {p['chi2_p']:.3g}; largest change "
                f"{p['top_change']} ({p['severity']}).")
    if task == "regression":
        ref, live = p.get("reference_mean"), p.get("live_mean")
        means = f"; mean prediction {ref:.4g} -> {live:.4g}" if ref is not None and live is not None else ""
        return f"Predictions: PSI {p['psi']:.3f}, KS {p['ks_stat']:.3f}{means} ({p['severity']})."
    return (f"Predicted probability: PSI {p['psi']:.3f}, KS {p['ks_stat']:.3f}; positive rate "
            f"{p['positive_rate_reference']:.3f} -> {p['positive_rate_live']:.3f} ({p['severity']}).")


def run_error(exc: Exception) -> str:
    """A one-line message for an error the app shows instead of a section."""
    if isinstance(exc, WorkbenchError):
        return exc.message + (f" (fix: {exc.hint})" if exc.hint else "")
    return f"{type(exc).__name__}: {exc}"
