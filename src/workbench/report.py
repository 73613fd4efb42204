"""The run report: one self-contained ``report.html`` per run folder, readable without Jupyter or Python.

:func:`write_run_report` builds it from what the run certified -- ``manifest.json``, ``reports/*.json`` and
``figures/*.png`` -- with every figure embedded as base64 and no external reference (no script, font or
stylesheet is fetched), so the file can be mailed, archived or opened offline. The detailed HTML views the
notebooks saved (``reports/*.html``) are folded in as collapsible sections.

The held-out evaluation and the fairness report are read back as their report objects (the task's class, by
:func:`workbench.evaluation.evaluation_report_from_dict` / :func:`~workbench.evaluation.fairness_report_from_dict`);
the other reports are shown from their saved JSON.

The runner calls it once, at the very end of a run (:func:`workbench.runs.execute_run`); a failure to write the
report is logged and recorded in the manifest but never changes the run's status.
"""

from __future__ import annotations

import base64
import logging
import re
from pathlib import Path
from typing import Any

from ._report import atomic_write_text, esc, html_table
from ._report import read_json as _read_json
from .registry.card import METRIC_TEXT, figure_label, shap_unit
from .tasks import get_task

__all__ = ["REPORT_NAME", "write_run_report", "run_report_html", "effective_parameters"]

REPORT_NAME = "report.html"

log = logging.getLogger(__name__)

# Figures shown in each section, in this order; any other PNG lands under "Other figures".
_DISCOVERY_FIGURES = ["quality", "missingness", "distributions", "target_by_group"]
_PROTOTYPE_FIGURES = ["leaderboard", "evaluation", "calibration"]
_FAIRNESS_PREFIX, _SHAP_PREFIX = "fairness_", "shap_"

_CSS = """<style>
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;font-size:14px;color:#202124;margin:0;
  background:#fafafa}
main{max-width:1080px;margin:0 auto;padding:24px 28px 60px;background:#fff}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 8px;border-bottom:2px solid #e8eaed;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 6px}.muted{color:#5f6368}.small{font-size:12px}
.badge{display:inline-block;padding:2px 10px;border-radius:10px;font-weight:600;font-size:13px;color:#fff}
.b-succeeded,.b-pass{background:#137333}.b-failed,.b-crashed,.b-fail{background:#c5221f}
.b-stopped,.b-interrupted,.b-running{background:#b06000}.b-info{background:#5f6368}
.cards{display:flex;flex-wrap:wrap;gap:12px;margin:14px 0}
.card{border:1px solid #e0e0e0;border-radius:8px;padding:10px 14px;min-width:150px}
.card .v{font-size:20px;font-weight:700}.card .l{font-size:12px;color:#5f6368}
.error{border-left:4px solid #c5221f;background:#fce8e6;padding:8px 12px;margin:10px 0;white-space:pre-wrap}
figure{margin:10px 0 18px}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:12px;color:#5f6368}
details{margin:6px 0 10px}summary{cursor:pointer;color:#1a73e8}
table.wb{border-collapse:collapse;margin:4px 0 12px;font-size:13px}
table.wb th,table.wb td{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}
table.wb th{background:#f4f4f4}
.wb-ok{color:#137333;font-weight:600}.wb-warn{color:#b06000;font-weight:600}.wb-bad{color:#c5221f;font-weight:600}
.wb-report h3{font-size:14px}
p.lead{font-size:15px;line-height:1.5;border-left:4px solid #1f77b4;background:#f3f7fb;padding:6px 12px;margin:6px 0}
</style>"""


def _report_object(reports: dict, name: str) -> Any:
    """``reports[name]`` (``evaluation`` or ``fairness``; the saved dict or the object) as its report object, None
    when the run has none or it does not read back (logged: the run report then shows the rest)."""
    from .evaluation import evaluation_report_from_dict, fairness_report_from_dict

    d = reports.get(name)
    if not d:
        return None
    task = (reports.get("leaderboard") or {}).get("task")
    reader = evaluation_report_from_dict if name == "evaluation" else fairness_report_from_dict
    try:
        return reader(d, task=task)
    except Exception as exc:  # noqa: BLE001 - a report that does not read back is left out, never fatal
        log.warning("reports/%s.json does not read back as a report (%s: %s): left out of the run report", name,
                    type(exc).__name__, exc)
        return None


def _figure(path: Path, caption: str | None = None) -> str:
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    name = caption or path.stem.replace("_", " ")
    return (f"<figure><img alt='{esc(path.stem)}' src='data:image/png;base64,{data}'>"
            f"<figcaption>{esc(name)}</figcaption></figure>")


def _fragment(path: Path) -> str:
    """The body of a saved report view (``reports/<name>.html``): its ``wb-report`` div, without the page shell,
    and with nothing that would fetch from outside."""
    text = path.read_text()
    i = text.find("<div class='wb-report'>")
    body = text[i:] if i >= 0 else re.sub(r"(?is)^.*?</style>", "", text)
    body = re.sub(r"(?is)<script.*?</script>", "", body)
    return re.sub(r"(?i)\s(src|href)=(['\"])(?!data:|#)[^'\"]*\2", "", body)


def _badge(text: str) -> str:
    return f"<span class='badge b-{esc(text)}'>{esc(text)}</span>"


def _card(value: Any, label: str) -> str:
    return f"<div class='card'><div class='v'>{esc(value)}</div><div class='l'>{esc(label)}</div></div>"


def _fmt(v: Any, spec: str = ".4f") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float):
        return format(v, spec)
    return str(v)


class _Figures:
    """The run's PNGs, each placed once."""

    def __init__(self, folder: Path) -> None:
        self.paths = {p.stem: p for p in sorted(folder.glob("*.png"))} if folder.is_dir() else {}
        self.used: set[str] = set()

    def take(self, names: list[str]) -> str:
        out = []
        for n in names:
            if n in self.paths and n not in self.used:
                self.used.add(n)
                out.append(_figure(self.paths[n]))
        return "".join(out)

    def take_prefix(self, prefix: str) -> str:
        return self.take([n for n in self.paths if n.startswith(prefix)])

    def rest(self) -> str:
        return self.take([n for n in self.paths if n not in self.used])


def _details(reports_dir: Path, names: list[str]) -> str:
    out = []
    for n in names:
        p = reports_dir / f"{n}.html"
        if p.exists():
            out.append(f"<details><summary>full {esc(n.replace('_', ' '))} report</summary>{_fragment(p)}</details>")
    return "".join(out)


def _header(m: dict, results: dict) -> str:
    brief = (m.get("brief") or {}).get("content") or {}
    git = m.get("git") or {}
    status = m.get("status", "unknown")
    head = (f"<h1>Run {esc(m.get('run_id', ''))} {_badge(status)}</h1>"
            f"<p class='muted'>brief <b>{esc(brief.get('name', ''))}</b> · started {esc(m.get('started_at') or '')} · "
            f"finished {esc(m.get('finished_at') or '')} · {_fmt(m.get('duration_s'), '.1f')} s · "
            f"phases {esc(', '.join(m.get('phases') or []))} · seed {esc(m.get('seed'))} · git "
            f"{esc((git.get('commit') or 'unknown')[:10])}{' (dirty)' if git.get('dirty') else ''}</p>")
    if brief.get("objective"):
        head += f"<p><b>Objective.</b> {esc(brief['objective'])}</p>"
    err = m.get("error")
    if err:
        where = f" ({esc(err.get('notebook'))}, cell {esc(err.get('cell'))})" if err.get("notebook") else ""
        head += (f"<div class='error'><b>{esc(err.get('type', 'error'))}{where}:</b> {esc(err.get('message', ''))}"
                 f"{'<br>fix: ' + esc(err['hint']) if err.get('hint') else ''}</div>")
    audit, proto = results.get("audit") or {}, results.get("prototype") or {}
    cards = []
    if audit.get("quality_score") is not None:
        cards.append(_card(f"{audit['quality_score']}/30 {audit.get('quality_verdict', '')}", "data quality score"))
    if proto.get("selected"):
        cards.append(_card(f"{proto['selected']} {_fmt(proto.get('primary_value'), '.3f')}",
                           f"selected model ({proto.get('primary_metric')}, held-out)"))
        cards.append(_card(f"{proto.get('best_baseline')} {_fmt(proto.get('baseline_value'), '.3f')}", "best baseline"))
        if proto.get("delta_vs_baseline") is not None:
            cards.append(_card(f"{proto['delta_vs_baseline']:+.3f}", "lift over the baseline"))
    if proto.get("fairness_verdict"):
        cards.append(_card(proto["fairness_verdict"], "fairness verdict"))
    if proto.get("kill_verdict"):
        cards.append(_card(proto["kill_verdict"], "kill criteria"))
    return head + (f"<div class='cards'>{''.join(cards)}</div>" if cards else "")


def _gates(m: dict) -> str:
    rows = [{"gate": name.replace("_", " "),
             "verdict": "pass" if g.get("passed") else "fail",
             "value": g.get("value") if not isinstance(g.get("value"), list) else (", ".join(map(str, g["value"]))
                                                                                 or "none"),
             "threshold": g.get("threshold"), "message": g.get("message")}
            for name, g in (m.get("gates") or {}).items()]
    body = html_table(rows) if rows else "<p><em>No gate was recorded (the run ended before its first gate).</em></p>"
    for verdict in ("pass", "fail"):
        body = body.replace(f"<td>{verdict}</td>", f"<td>{_badge(verdict)}</td>")
    return ("<h2 id='gates'>Gates</h2><p class='muted'>Go/no-go verdicts recorded by the notebooks. Promotion adds its "
            "own gates later (baseline, fairness bounds, ONNX parity, latency); see <code>workbench promote</code>.</p>"
            + body)


def _target_text(contract: dict) -> str:
    """The target as the contract records it: binary with its positive label, multiclass with its classes."""
    task = contract.get("task") or "binary_classification"
    t = f"Target <b>{esc(contract.get('target'))}</b>"
    if task == "multiclass_classification":
        classes = contract.get("classes") or []
        return f"{t} ({len(classes)} classes: <b>{esc(', '.join(map(str, classes)))}</b>)"
    if task == "regression":
        return f"{t} (numeric, regression)"
    return f"{t} (positive label <b>{esc(contract.get('positive_label'))}</b>)"


def _secondary_metrics(lb: dict, task: Any, primary: str, limit: int = 3) -> list[str]:
    """The task's other metrics shown beside the primary one (binary: roc_auc, accuracy, f1 as before)."""
    if task.name == "binary_classification":
        return ["roc_auc", "accuracy", "f1"]
    seen: list[str] = []
    for mdl in (lb.get("models") or {}).values():
        for m in ((mdl.get("test") or {}).get("metrics") or {}):
            if m != primary and m not in seen:
                seen.append(m)
    ordered = [m for m in task.metrics if m in seen] + [m for m in seen if m not in task.metrics]
    return ordered[:limit]


def _evaluation(ev: Any, task: str, lb: dict) -> str:
    """The selected model on held-out data, per task (the evaluation report object's own fields)."""
    head = "<h3>Selected model on held-out data</h3>"
    if task == "multiclass_classification":
        classes = getattr(ev, "classes", None) or lb.get("classes") or []
        conf = [{"actual \\ predicted": c, **{k: v for k, v in zip(classes, row, strict=False)}}
                for c, row in zip(classes, getattr(ev, "confusion", None) or [], strict=False)]
        per_class = [{k: r.get(k) for k in ("class", "support", "predicted", "precision", "recall", "f1", "pr_auc",
                                             "ece")} for r in getattr(ev, "per_class", None) or []]
        return (head + f"<p>{esc(ev.n)} rows, {len(classes)} classes; the decision is the class with the "
                f"highest probability. Macro calibration ECE {_fmt(getattr(ev, 'macro_ece', None), '.4f')}.</p>"
                + html_table(per_class, formats={k: ".4f" for k in ("precision", "recall", "f1", "pr_auc", "ece")})
                + "<p class='muted'>Confusion counts (rows: actual class, columns: predicted class)</p>"
                + html_table(conf))
    if task == "regression":
        t, r = getattr(ev, "target", None) or {}, getattr(ev, "residual", None) or {}
        quant = [{"residual quantile": f"{lv:g}", "value": v}
                 for lv, v in zip(r.get("levels") or [], r.get("quantiles") or [], strict=False)]
        return (head + f"<p>{esc(ev.n)} rows; actual mean {_fmt(t.get('mean'), '.4g')} (std "
                f"{_fmt(t.get('std'), '.4g')}, range {_fmt(t.get('min'), '.4g')} to {_fmt(t.get('max'), '.4g')}); "
                f"predicted mean {_fmt(t.get('prediction_mean'), '.4g')} (std {_fmt(t.get('prediction_std'), '.4g')})."
                f" Residuals (actual - predicted, in the target's units): mean {_fmt(r.get('mean'), '.4g')}, std "
                f"{_fmt(r.get('std'), '.4g')}; a positive mean residual means the model under-predicts.</p>"
                + html_table(quant, formats={"value": ".4g"}))
    conf = getattr(ev, "confusion", None) or {}
    cal = getattr(ev, "calibration", None) or {}
    return (head + f"<p>{esc(ev.n)} rows, threshold "
            f"{esc(getattr(ev, 'threshold', None))}: positive rate {_fmt(getattr(ev, 'positive_rate', None), '.3f')}, "
            f"predicted {_fmt(getattr(ev, 'predicted_positive_rate', None), '.3f')}; confusion tn {esc(conf.get('tn'))}, "
            f"fp {esc(conf.get('fp'))}, fn {esc(conf.get('fn'))}, tp {esc(conf.get('tp'))}; calibration ECE "
            f"{_fmt(cal.get('ece'), '.4f')}.</p>")


def _fairness_units(task: str, fair: Any) -> str:
    """What the gaps measure, for the tasks whose figures are not rates."""
    per_group = ", ".join(figure_label(f) for f in fair.figures)
    if task == "regression":
        return (" Gaps of MAE and mean residual are in the target's units; mae_relative_difference is a fraction "
                f"of the overall MAE. Per group: {esc(per_group)}.")
    if task == "multiclass_classification":
        return (" recall_difference and selection_rate_difference are the largest over classes (the class "
                f"column names it). Per group: {esc(per_group)}.")
    return ""


def _discovery(reports: dict, reports_dir: Path, figs: _Figures) -> str:
    contract, audit = reports.get("contract"), reports.get("audit")
    if not contract and not audit:
        return ""
    out = ["<h2 id='discovery'>Discovery</h2>"]
    if contract:
        cols = contract.get("columns", [])
        feats = [c for c in cols if c.get("role") == "feature"]
        out.append(f"<p>{_target_text(contract)}, {len(feats)} features: "
                   f"{sum(c.get('kind') == 'numeric' for c in feats)} numeric, "
                   f"{sum(c.get('kind') == 'categorical' for c in feats)} categorical; sensitive: "
                   f"{esc(', '.join(c['name'] for c in cols if c.get('sensitive')) or 'none')}.</p>")
        excluded = [{"column": c["name"], "reason": c.get("reason")} for c in cols if c.get("role") == "excluded"]
        if excluded:
            out.append("<h3>Excluded columns</h3>" + html_table(excluded))
    if audit:
        q = audit.get("quality") or {}
        out.append(f"<h3>Data quality: {esc(q.get('total'))}/{esc(q.get('max', 30))} "
                   f"{_badge('pass' if q.get('verdict') == 'proceed' else 'fail')} "
                   f"<span class='muted small'>(proceed at {esc(q.get('threshold'))})</span></h3>")
        out.append(html_table([{"dimension": d["name"], "score": f"{d['score']}/{d.get('max', 5)}",
                                "evidence": "; ".join(d.get("evidence") or [])} for d in q.get("dimensions", [])]))
        if audit.get("warnings"):
            out.append("<p class='muted'>Warnings: " + esc("; ".join(map(str, audit["warnings"]))) + "</p>")
    out.append(figs.take(_DISCOVERY_FIGURES))
    out.append(_details(reports_dir, ["contract", "audit"]))
    return "".join(out)


def _prototype(reports: dict, reports_dir: Path, figs: _Figures) -> str:
    lb = reports.get("leaderboard")
    if not lb:
        return ""
    primary, selected, best = lb.get("primary"), lb.get("selected"), lb.get("best_baseline")
    task = get_task(lb.get("task") or "binary_classification")
    comps = lb.get("comparisons") or {}
    secondary = _secondary_metrics(lb, task, primary)
    rows = []
    for name, mdl in (lb.get("models") or {}).items():
        test = (mdl.get("test") or {}).get("metrics") or {}
        cv = mdl.get("cv") or {}
        role = "selected" if name == selected else "best baseline" if name == best else mdl.get("kind", "")
        rows.append({"model": name, "role": role, f"{primary} (held-out)": test.get(primary),
                     f"{primary} CV": (f"{cv['mean'][primary]:.4f} ± {cv['std'][primary]:.4f}"
                                       if cv.get("mean") and primary in cv["mean"] else None),
                     "delta vs baseline": (comps.get(name) or {}).get("primary_delta"),
                     **{m: test.get(m) for m in secondary}})
    better = ""
    if primary in task.metrics:
        better = " (higher is better)" if task.greater_is_better(primary) else " (lower is better)"
    out = ["<h2 id='prototype'>Prototype</h2>",
           f"<p>Task <b>{esc(task.describe())}</b>. Primary metric <b>{esc(primary)}</b>{better}: "
           f"{esc(METRIC_TEXT.get(primary, primary))}. A candidate must beat the best baseline (<b>{esc(best)}</b>) "
           f"by more than {esc(lb.get('min_improvement'))}. Selected: <b>{esc(selected)}</b>.</p>",
           html_table(rows, formats={f"{primary} (held-out)": ".4f", "delta vs baseline": "+.4f",
                                     **{m: ".4f" for m in secondary}}),
           figs.take(_PROTOTYPE_FIGURES)]
    ev = _report_object(reports, "evaluation")
    if ev is not None:
        out.append(_evaluation(ev, task.name, lb))
    fair = _report_object(reports, "fairness")
    if fair is not None:
        keys = ("feature", "metric", *(("class",) if fair.per_class else ()), "value", "ci_low", "ci_high",
                "threshold", "verdict")
        gaps = [{k: g.get(k) for k in keys} for g in fair.gaps]
        out.append(f"<h3 id='fairness'>Fairness: {esc(fair.verdict)}</h3>"
                   f"<p class='muted'>{_fmt(fair.confidence_level, '.0%')} bootstrap intervals "
                   f"({esc(fair.n_bootstrap)} resamples); slices smaller than {esc(fair.min_slice_size)} "
                   f"are reported, not compared.{_fairness_units(task.name, fair)}</p>"
                   + html_table(gaps, formats={"value": ".4f", "ci_low": ".4f", "ci_high": ".4f"}))
    out.append(figs.take_prefix(_FAIRNESS_PREFIX))
    shap = reports.get("shap")
    if shap:
        imp = [{"column": k, "mean |SHAP|": v} for k, v in list((shap.get("importance") or {}).items())[:10]]
        add = shap.get("additivity") or {}
        out.append(f"<h3 id='shap'>Explanations (SHAP)</h3><p>{esc(shap.get('explainer'))} explainer on "
                   f"{esc(shap.get('sample_size'))} held-out rows of <b>{esc(shap.get('model'))}</b>, in "
                   f"{esc(shap_unit(shap.get('task') or task.name))}; additivity "
                   f"max error {_fmt(add.get('max_abs_error'), '.1e')} "
                   f"{_badge('pass' if add.get('passed') else 'fail')}.</p>"
                   + html_table(imp, formats={"mean |SHAP|": ".4f"}))
        by_class = shap.get("importance_by_class") or {}
        if by_class and imp:
            cls = list(by_class)
            rows = [{"column": r["column"], **{c: (by_class[c] or {}).get(r["column"]) for c in cls}} for r in imp]
            out.append("<p class='muted'>Mean |SHAP| per class (each class's raw score):</p>"
                       + html_table(rows, formats={c: ".4f" for c in cls}))
    out.append(figs.take_prefix(_SHAP_PREFIX))
    kill = reports.get("kill_criteria")
    if kill:
        out.append(f"<h3 id='kill'>Kill criteria: {esc(kill.get('verdict'))}</h3>"
                   + html_table([{k: c.get(k) for k in ("id", "description", "triggered", "evidence")}
                                 for c in kill.get("criteria", [])]))
    out.append(_details(reports_dir, ["leaderboard", "cv", "evaluation", "fairness", "shap", "experiments",
                                      "kill_criteria", "prototype"]))
    return "".join(out)


def effective_parameters(m: dict, reports: dict | None = None, passed: dict | None = None) -> list[dict]:
    """The parameters each notebook really ran with, one row per parameter: ``phase``, ``parameter``,
    ``value used`` and ``where it came from``.

    A notebook default that means "decide later" is resolved to what the run used: ``bootstrap_samples=0`` is the
    brief's ``fairness.bootstrap_samples`` (or the replicate count the fairness report records), ``sample_rows=0``
    every row, an empty ``candidates`` the task's candidates, an empty ``as_of`` the run's date; ``shap_sample``
    shows the rows SHAP explained when the test split had fewer. ``passed`` (``params.yaml``: what the run was
    given) tells a value set for the run from a notebook default.
    """
    reports = reports or {}
    passed = passed or {}
    brief = (m.get("brief") or {}).get("content") or {}
    fair = _report_object(reports, "fairness")
    shap, lb = reports.get("shap") or {}, reports.get("leaderboard") or {}
    data = m.get("data") or {}
    rows = []
    for phase, params in (m.get("parameters") or {}).items():
        given = passed.get(phase) or {}
        for key, value in sorted(params.items()):
            if key in ("run_dir", "brief_path"):
                continue
            source = "set for this run" if key in given else "notebook default"
            shown: Any = value
            if key == "bootstrap_samples" and not value:
                brief_n = (brief.get("fairness") or {}).get("bootstrap_samples")
                shown = (fair.n_bootstrap if fair is not None else None) or brief_n
                source = ("the brief (fairness.bootstrap_samples): the notebook's 0 means “use the brief's value”")
            elif key == "sample_rows" and not value:
                counts = ", ".join(f"{v.get('rows')} {k}" for k, v in data.items() if v.get("rows") is not None)
                shown = f"all rows ({counts})" if counts else "all rows"
                source += ": 0 means every row"
            elif key == "candidates" and not value:
                names = [n for n, mdl in (lb.get("models") or {}).items() if mdl.get("kind") == "candidate"]
                shown = ", ".join(names) or "the task's candidates"
                source += ": empty means every candidate of the task"
            elif key == "as_of" and not value:
                shown = (m.get("started_at") or "")[:10] or "the run's date"
                source += ": empty means the day of the run"
            elif key == "shap_sample" and shap.get("sample_size") is not None and shap["sample_size"] != value:
                shown = f"{shap['sample_size']} (asked for {value}; the test split had fewer rows)"
            elif key == "seed" and value is None:
                shown = m.get("seed")
            rows.append({"phase": phase, "parameter": key, "value used": shown, "where it came from": source})
    return rows


def _plain(m: dict, reports: dict) -> str:
    """The run in plain sentences, for readers without Python (the stakeholder app's lead sentences)."""
    from . import app_data as ad

    brief = (m.get("brief") or {}).get("content") or {}
    lb, shap = reports.get("leaderboard"), reports.get("shap")
    fair = _report_object(reports, "fairness")
    target = brief.get("target") or {}
    out = []
    if lb:
        out.append(ad.lead_performance(lb, brief=brief, evaluation=_report_object(reports, "evaluation")))
    gates = m.get("gates") or {}
    if gates:
        failed = [n.replace("_", " ") for n, g in gates.items() if not g.get("passed")]
        out.append("The run's own checks (data quality, the brief's stop conditions) "
                   + (f"failed: {', '.join(failed)}." if failed else "all passed.")
                   + " Promotion to production adds its own checks later.")
    if fair is not None:
        task = fair.task
        figure = {"regression": "mean_residual", "multiclass_classification": "accuracy"}.get(task, "selection_rate")
        for feature in [f for f in fair.features if " & " not in f]:
            out.append(ad.lead_fairness(fair, feature, figure, positive_label=target.get("positive_label")))
        if task == "regression" and target.get("column"):
            out.append(f"Amounts are in the units of {target['column']}.")
    if shap:
        out.append(ad.lead_shap(shap, sensitive=fair.features if fair is not None else None))
    if not out:
        return ""
    keys = [k for k in ((lb or {}).get("primary"),) if k] + [g.get("metric") for g in (fair.gaps if fair else [])]
    terms = ad.glossary([k for k in keys if k] + ["baseline", "confidence_interval", "no_threshold"])
    return ("<h2 id='plain'>In plain words</h2>" + "".join(f"<p class='lead'>{esc(t)}</p>" for t in out)
            + "<details><summary>what the terms mean</summary>" + html_table(terms) + "</details>")


def _provenance(m: dict, reports: dict | None = None, passed: dict | None = None) -> str:
    nbs = [{"notebook": n.get("output"), "phase": n.get("phase"), "status": n.get("status"),
            "seconds": n.get("duration_s"), "kernel start (s)": n.get("kernel_start_s")}
           for n in m.get("notebooks") or []]
    data = [{"split": k, "file": Path(v.get("path", "")).name, "rows": v.get("rows"),
             "sha256": (v.get("sha256") or "")[:16] + "…"} for k, v in (m.get("data") or {}).items()]
    params = effective_parameters(m, reports, passed)
    py = m.get("python") or {}
    pk = m.get("packages") or {}
    return ("<h2 id='provenance'>Provenance</h2>"
            + "<h3>Notebooks</h3>" + html_table(nbs, formats={"seconds": ".2f", "kernel start (s)": ".2f"})
            + "<h3>Parameters</h3><p class='muted'>The values each notebook really used, and where each came from "
              "(set for this run, the notebook's default, or the brief).</p>" + html_table(params)
            + "<h3>Data</h3>" + html_table(data)
            + f"<p class='small muted'>Python {esc(py.get('version'))} on {esc(py.get('platform'))}; uv.lock sha256 "
              f"{esc(((m.get('lock') or {}).get('sha256') or '')[:16])}…; "
            + esc(", ".join(f"{k} {v}" for k, v in pk.items() if v)) + "</p>")


def run_report_html(run_dir: str | Path) -> str:
    """The report of a run folder as one HTML string (see :func:`write_run_report`)."""
    run_dir = Path(run_dir)
    m = _read_json(run_dir / "manifest.json") or {"run_id": run_dir.name, "status": "unknown"}
    reports_dir = run_dir / "reports"
    reports = {p.stem: d for p in sorted(reports_dir.glob("*.json")) if (d := _read_json(p)) is not None} \
        if reports_dir.is_dir() else {}
    for name in ("evaluation", "fairness"):  # read back once, as report objects
        if name in reports:
            reports[name] = _report_object(reports, name)
    results = m.get("results") or {}
    figs = _Figures(run_dir / "figures")
    try:
        import yaml

        passed = yaml.safe_load((run_dir / "params.yaml").read_text()) or {}
    except (OSError, ValueError, AttributeError):
        passed = {}
    passed = passed if isinstance(passed, dict) else {}
    nav = " · ".join(f"<a href='#{a}'>{t}</a>" for a, t in (("plain", "In plain words"), ("gates", "Gates"),
                                                             ("discovery", "Discovery"),
                                                             ("prototype", "Prototype"), ("provenance", "Provenance")))
    body = (_header(m, results) + f"<p class='small'>{nav}</p>" + _plain(m, reports) + _gates(m)
            + _discovery(reports, reports_dir, figs) + _prototype(reports, reports_dir, figs))
    rest = figs.rest()
    if rest:
        body += "<h2>Other figures</h2>" + rest
    body += _provenance(m, reports, passed)
    body += ("<p class='small muted'>Written by workbench from manifest.json, reports/*.json and figures/*.png of "
             "this run folder; self-contained (figures embedded), opens without Jupyter.</p>")
    title = f"workbench run {m.get('run_id', run_dir.name)}"
    return (f"<!doctype html><html lang='en'><head><meta charset='utf-8'><meta name='viewport' "
            f"content='width=device-width,initial-scale=1'><title>{esc(title)}</title>{_CSS}</head>"
            f"<body><main>{body}</main></body></html>\n")


def write_run_report(run_dir: str | Path) -> Path:
    """Write ``<run_dir>/report.html``: discovery, prototype and gates of the run with its figures embedded as
    base64, readable without Jupyter and offline. Works for failed and stopped runs too (it shows what exists).

    Returns
    -------
    Path
        The report file.
    """
    run_dir = Path(run_dir)
    return atomic_write_text(run_dir / REPORT_NAME, run_report_html(run_dir))
