"""Model cards (Markdown and HTML) generated from the brief, the run manifest and the certified reports.

Sections follow the methodology's template: model details, intended use, out-of-scope uses, training data,
evaluation (with metrics sliced by sensitive group), fairness, explanations, limitations, ethical
considerations, maintenance. Nothing in a card is typed by hand except what the brief's ``model_card`` section
says; every figure comes from a report the gates also read.

The card follows the brief's task (:func:`workbench.tasks.get_task`): the decision threshold and positive label
appear only for binary classification, multiclass cards list the classes and per-class figures, regression
cards give errors in the target's units; the per-group table shows the figures the fairness report itself
carries (each row's ``ci`` keys). The fairness report and the selected model's held-out report are read as their
report objects (:func:`workbench.evaluation.fairness_report_from_dict`,
:func:`~workbench.evaluation.evaluation_report_from_dict`); the metric table is the leaderboard's (the figures
the promotion gates recomputed).
"""

from __future__ import annotations

from typing import Any

from ..tasks import get_task

__all__ = ["model_card_markdown", "markdown_to_html", "METRIC_TEXT", "metric_text", "figure_label", "shap_unit"]

#: One line per metric name, as a reader needs it (every task's catalogue).
METRIC_TEXT: dict[str, str] = {
    # binary
    "pr_auc": "area under the precision-recall curve of P(positive): how well the score ranks the positive "
              "class, informative when it is rare",
    "roc_auc": "area under the ROC curve: the chance a random positive is scored above a random negative",
    "f1": "harmonic mean of precision and recall at the decision threshold",
    "brier": "mean squared error of P(positive)",
    # shared by the classifiers
    "accuracy": "share of rows whose predicted class is the actual one",
    "balanced_accuracy": "mean over classes of the share of each class predicted correctly (recall)",
    "log_loss": "cross-entropy of the predicted probabilities: punishes confident mistakes",
    # multiclass
    "macro_f1": "F1 of each class, averaged with every class weighted equally, so rare classes count as much "
                "as common ones",
    "weighted_f1": "F1 of each class, averaged weighted by the class's rows",
    # regression
    "mae": "mean absolute error, in the target's units: the typical size of a miss",
    "rmse": "root mean squared error, in the target's units: weighs large misses more than MAE",
    "r2": "share of the target's variance the model explains (1 is perfect, 0 is the mean's level)",
    "median_ae": "median absolute error, in the target's units: half the misses are smaller",
    "mape": "mean absolute error as a fraction of the actual value",
}

_FIGURE_LABELS = {"selection_rate": "selection rate", "tpr": "TPR", "fpr": "FPR", "accuracy": "accuracy",
                  "pr_auc": "PR-AUC", "mae": "MAE", "mean_prediction": "mean prediction",
                  "mean_residual": "mean residual"}

_SHAP_UNITS = {"binary_classification": "log-odds of the positive class",
               "regression": "the target's units",
               "multiclass_classification": "raw class score (softmax logit), mean |SHAP| over classes"}


def metric_text(metric: str, task: Any = "binary_classification") -> str:
    """What a metric measures and which way is better, in one line."""
    t = get_task(task)
    better = ("higher is better" if t.greater_is_better(metric) else "lower is better") if metric in t.metrics \
        else ""
    text = METRIC_TEXT.get(metric, metric)
    return f"{text} ({better})" if better else text


def figure_label(figure: str) -> str:
    """A per-group figure's column label: ``recall[Adelie]`` -> ``recall Adelie``."""
    if "[" in figure and figure.endswith("]"):
        name, cls = figure[:-1].split("[", 1)
        return f"{_FIGURE_LABELS.get(name, name.replace('_', ' '))} {cls}"
    return _FIGURE_LABELS.get(figure, figure.replace("_", " "))


def shap_unit(task: str | None) -> str:
    """The unit SHAP values of a task's model are in."""
    return _SHAP_UNITS.get(task or "binary_classification", _SHAP_UNITS["binary_classification"])


def _esc(text: str) -> str:
    return str(text).replace("|", "\\|")


def _table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "_(none)_\n"
    out = "| " + " | ".join(_esc(c) for c in columns) + " |\n|" + "---|" * len(columns) + "\n"
    for r in rows:
        out += "| " + " | ".join(_cell(r.get(c)) for c in columns) + " |\n"
    return out


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}"
    return _esc(v)


def _bullets(items: list[str], default: str) -> str:
    return "".join(f"- {i}\n" for i in items) if items else f"- {default}\n"


def _classes(test: Any, leaderboard: dict) -> list:
    """The class names, from the held-out report (multiclass) or the leaderboard."""
    return list(getattr(test, "classes", None) or leaderboard.get("classes") or [])


def _target_sentence(brief: dict, task_name: str, test: Any, leaderboard: dict) -> str:
    target = brief["target"]["column"]
    if task_name == "binary_classification":
        return f"Target `{target}`, positive label `{brief['target']['positive_label']}`"
    if task_name == "multiclass_classification":
        classes = _classes(test, leaderboard)
        return f"Target `{target}`, {len(classes)} classes: " + ", ".join(f"`{c}`" for c in classes)
    t = getattr(test, "target", None) or {}
    spread = (f" (held-out mean {t['mean']:.4g}, std {t['std']:.4g}, range {t['min']:.4g} to {t['max']:.4g})"
              if t.get("mean") is not None and t.get("std") is not None else "")
    return f"Numeric target `{target}`{spread}"


def _evaluation_detail(task_name: str, test: Any, target: str) -> str:
    """What the binary card does not need: per-class figures (multiclass), residuals (regression)."""
    if task_name == "multiclass_classification" and getattr(test, "per_class", None):
        cols = ["class", "support", "predicted", "precision", "recall", "f1", "pr_auc"]
        return "\n**Per class** (held-out; one-vs-rest PR-AUC):\n\n" + _table(test.per_class, cols)
    if task_name == "regression" and getattr(test, "residual", None):
        r = test.residual
        q = dict(zip(r.get("levels", []), r.get("quantiles", []), strict=False))
        quant = ", ".join(f"{int(100 * lv)}% {q[lv]:.4g}" for lv in (0.05, 0.5, 0.95) if lv in q)
        return (f"\nResiduals (actual - predicted, units of `{target}`): mean {r['mean']:.4g}, std {r['std']:.4g}"
                + (f"; quantiles {quant}" if quant else "") + ". A positive mean residual means the model "
                "under-predicts.\n")
    return ""


def _group_table(task_name: str, fairness: Any, feature: str) -> str:
    rows = fairness.groups[feature]
    if task_name == "binary_classification" and rows and "tpr" in rows[0]:
        out = [{"group": g["group"], "n": g["count"], "selection rate": g["selection_rate"], "TPR": g["tpr"],
                "FPR": g["fpr"], "accuracy": g["accuracy"], "PR-AUC": g["pr_auc"], "evidence": g["evidence"]}
               for g in rows]
        return _table(out, ["group", "n", "selection rate", "TPR", "FPR", "accuracy", "PR-AUC", "evidence"])
    figures = list((rows[0].get("ci") or {}) if rows else [])
    labels = [figure_label(f) for f in figures]
    out = [{"group": g["group"], "n": g["count"], **{lb: g.get(f) for f, lb in zip(figures, labels, strict=True)},
            "evidence": g["evidence"]} for g in rows]
    return _table(out, ["group", "n", *labels, "evidence"])


def _parity_line(parity: dict, task_name: str) -> str:
    tol = parity.get("tolerance")
    tol_text = f" (tolerance {tol:g})" if isinstance(tol, int | float) else ""
    if parity.get("label_agreement") is None:  # regression: no labels, differences in the target's units
        std = parity.get("target_std")
        if std and isinstance(tol, int | float):
            tol_text = f" (tolerance {tol:.3g}: {tol / std:.0e} x the training target's std {std:.4g})"
        return (f"\nONNX parity on {parity['rows']} rows: max |Δprediction| {parity['max_abs_diff']:.2e}, p99 "
                f"{parity['p99_abs_diff']:.2e} in the target's units{tol_text}.\n")
    what = "per-class |Δp|" if task_name == "multiclass_classification" else "|Δp|"
    return (f"\nONNX parity: label agreement {100 * parity['label_agreement']:.3f}% on {parity['rows']} rows, "
            f"max {what} {parity['max_abs_diff']:.2e}, p99 {parity['p99_abs_diff']:.2e}{tol_text}.\n")


def _primary_reason(brief: dict, primary: str, task: Any) -> str:
    if task.name == "binary_classification" and primary == "pr_auc":
        return "chosen for the task: rare positive class"
    if (brief.get("success") or {}).get("metric"):
        return "the brief's success metric"
    return f"the default for {task.describe()}" if primary == task.default_primary else "per the brief"


def model_card_markdown(*, brief: dict, manifest: dict, leaderboard: dict, fairness: Any, shap: dict | None,
                        audit: dict | None, parity: dict, gates: dict, tag: str | None, onnx: dict) -> str:
    """The model card as Markdown. ``fairness`` is the fairness report (its object or saved dict); the selected
    model's held-out report is the leaderboard's ``models[selected]["test"]``."""
    from ..evaluation import evaluation_report_from_dict, fairness_report_from_dict

    task = get_task(brief.get("task") or leaderboard.get("task") or "binary_classification")
    binary = task.name == "binary_classification"
    sel = leaderboard["selected"]
    model = leaderboard["models"][sel]
    primary = leaderboard["primary"]
    test_report = evaluation_report_from_dict(model["test"], task=task.name)
    fairness = fairness_report_from_dict(fairness, task=task.name)
    test = model["test"]["metrics"]  # the leaderboard's figures (promotion recomputes them)
    base_name = leaderboard["best_baseline"]
    base = leaderboard["models"][base_name]["test"]["metrics"]
    card = brief.get("model_card") or {}
    data = manifest.get("data", {})
    target = brief["target"]["column"]
    md = [f"# Model card: {brief['name']} ({sel})\n"]
    md.append("## Model details\n")
    details = [
        {"field": "model", "value": f"{sel}: {model['fitted'].get('description', '')}"},
        {"field": "task", "value": task.describe()},
        {"field": "registered as", "value": tag or "(not registered: promotion refused)"},
        {"field": "format", "value": f"ONNX opset {onnx.get('opset')}, {onnx.get('size_bytes', 0) / 1024:.1f} KiB, "
                                     f"sha256 {onnx.get('sha256', '')[:16]}…"},
        {"field": "run", "value": manifest["run_id"]},
        {"field": "code", "value": f"git {str(manifest['git'].get('commit'))[:10]}"
                                   f"{' (dirty)' if manifest['git'].get('dirty') else ''}"},
        {"field": "owner", "value": brief.get("owner") or "—"},
        {"field": "objective", "value": brief["objective"]},
    ]
    if binary:
        details.append({"field": "decision threshold", "value": brief["target"].get("decision_threshold") or 0.5})
        details.append({"field": "positive label", "value": brief["target"].get("positive_label")})
    elif task.name == "multiclass_classification":
        classes = _classes(test_report, leaderboard)
        details.append({"field": "classes", "value": ", ".join(map(str, classes))})
        details.append({"field": "decision", "value": "the class with the highest probability (ties: first class)"})
    else:
        details.append({"field": "output", "value": f"predicted `{target}`, in the target's units"})
    details.append({"field": "served answer", "value": ", ".join(task.answer_fields)})
    details.append({"field": "hyperparameters",
                    "value": ", ".join(f"{k}={v}" for k, v in model["fitted"]["params"].items())})
    md.append(_table(details, ["field", "value"]))
    md.append("\n## Intended use\n")
    md.append(_bullets(card.get("intended_use", []), brief["objective"]))
    md.append("\n## Out-of-scope uses\n")
    md.append(_bullets(card.get("out_of_scope", []), "Any use not covered by the intended use above."))
    md.append("\n## Training data\n")
    rows = [{"split": k, "file": v.get("path", "").split("/")[-1], "rows": v.get("rows"),
             "sha256": str(v.get("sha256", ""))[:16] + "…"} for k, v in data.items()]
    md.append(_table(rows, ["split", "file", "rows", "sha256"]))
    if audit:
        q = audit["quality"]
        md.append(f"\nData quality score **{q['total']}/30** ({q['verdict']}): "
                  + ", ".join(f"{d['name']} {d['score']}/5" for d in q["dimensions"]) + ".\n")
    md.append(f"\n{_target_sentence(brief, task.name, test_report, leaderboard)}; "
              f"sensitive features: {', '.join(_sensitive_names(brief)) or 'none'}.\n")
    md.append("\n## Evaluation\n")
    md.append(f"Primary metric **{primary}** ({_primary_reason(brief, primary, task)}): "
              f"{metric_text(primary, task)}. Measured on the held-out test split ({test_report.n} rows), "
              f"against the best baseline `{base_name}`.\n\n")
    deltas = (leaderboard.get("comparisons", {}).get(sel) or {}).get("deltas", {})
    mrows = [{"metric": m, "better": ("higher" if task.greater_is_better(m) else "lower") if m in task.metrics
              else None, sel: test[m], base_name: base.get(m), "delta (better > 0)": deltas.get(m)} for m in test]
    md.append(_table(mrows, ["metric", "better", sel, base_name, "delta (better > 0)"]))
    md.append(_evaluation_detail(task.name, test_report, target))
    cv = model["cv"]
    if cv.get("mean") and primary in cv["mean"]:
        md.append(f"\n{cv['n_splits']}-fold cross-validation on the training split: {primary} "
                  f"{cv['mean'][primary]:.4f} ± {cv['std'][primary]:.4f}.\n")
    md.append("\n### Metrics by group\n")
    if not binary:
        md.append("\n" + _group_intro(task.name, target) + "\n")
    for feature in fairness.features:
        md.append(f"\n**{feature}**\n\n")
        md.append(_group_table(task.name, fairness, feature))
    md.append("\n## Fairness\n")
    grows = [{"feature": g["feature"], "gap": g["metric"], "class": g.get("class"), "value": g["value"],
              "CI": f"[{_cell(g['ci_low'])}, {_cell(g['ci_high'])}]", "threshold": g["threshold"],
              "verdict": g["verdict"]} for g in fairness.gaps]
    cols = ["feature", "gap", *(["class"] if fairness.per_class else []), "value", "CI", "threshold", "verdict"]
    md.append(_table(grows, cols))
    md.append("\n" + " ".join(fairness.notes) + "\n")
    if shap:
        md.append(_shap_section(shap, task.name))
    md.append("\n## Promotion gates\n")
    md.append(_table(gates["gates"], ["gate", "value", "threshold", "verdict", "detail"]))
    md.append(_parity_line(parity, task.name))
    md.append("\n## Limitations\n")
    lim = list(card.get("limitations", []))
    insufficient = [f"{f}: {g['group']} (n={g['count']})" for f in fairness.features
                    for g in fairness.groups.get(f, []) if g["evidence"] != "ok"]
    if insufficient:
        lim.append("Too few rows to judge fairness for " + "; ".join(insufficient) + ".")
    if audit:
        lim += [w for w in audit.get("warnings", []) if "leakage" in w or "overlap" in w or "test rows" in w]
    md.append(_bullets(lim, "None recorded beyond the figures above."))
    md.append("\n## Ethical considerations\n")
    md.append(_bullets(card.get("ethical_considerations", []),
                       "Sliced metrics above show for whom the model works less well."))
    mon = brief.get("monitoring", {})
    worse = "drop" if task.greater_is_better(primary) else "rise" if primary in task.metrics else "change"
    md.append("\n## Maintenance\n")
    md.append(f"- Drift: PSI warning at {mon.get('psi_warning', 0.1)}, critical at {mon.get('psi_critical', 0.25)} "
              f"(`workbench drift`; predictions: {task.prediction_drift}); a {worse} of the primary metric "
              f"({primary}) beyond {mon.get('metric_tolerance', 0.05)} on labelled live traffic counts as concept "
              "drift (`workbench feedback`).\n")
    md.append("- Rollback to the previous certified model: `workbench rollback`.\n")
    md.append(f"- Latency budget: {brief['latency_budget_ms']} ms p99 for a single row.\n")
    md.append(f"- Owner: {brief.get('owner') or 'unassigned'}.\n")
    return "".join(md)


def _sensitive_names(brief: dict) -> list[str]:
    out = []
    for s in brief.get("sensitive_features", []) or []:
        out.append(s if isinstance(s, str) else str((s or {}).get("column", s)))
    return out


def _group_intro(task_name: str, target: str) -> str:
    if task_name == "regression":
        return (f"Per group: MAE, mean prediction and mean residual (actual - predicted), in units of `{target}`; "
                "a positive mean residual means the group is under-predicted.")
    return ("Per group: accuracy, recall of each class (share of the class's rows predicted as it) and selection "
            "rate of each class (share of the group predicted as that class).")


def _shap_section(shap: dict, task_name: str) -> str:
    out = ["\n## Explanations\n"]
    imp = shap.get("importance") or {}
    top = list(imp.items())[:8] if isinstance(imp, dict) else []
    add = shap.get("additivity") or {}
    passed = shap.get("additivity_passed", add.get("passed"))
    n = shap.get("sample_size", shap.get("rows", shap.get("n_rows", "")))
    out.append(f"SHAP ({shap.get('explainer', '')}) on {n} held-out rows of `{shap.get('model', '')}`, in "
               f"{shap_unit(shap.get('task', task_name))}; additivity check "
               f"{'passed' if passed else 'FAILED'}.\n\n")
    if top:
        out.append(_table([{"feature": k, "mean |SHAP|": v} for k, v in top], ["feature", "mean |SHAP|"]))
    by_class = shap.get("importance_by_class") or {}
    if by_class and top:
        classes = list(by_class)
        rows = [{"feature": k, **{c: (by_class[c] or {}).get(k) for c in classes}} for k, _ in top]
        out.append("\nMean |SHAP| per class (each class's raw score):\n\n")
        out.append(_table(rows, ["feature", *classes]))
    return "".join(out)


def markdown_to_html(markdown: str, *, title: str) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown)
    style = ("<style>body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "font-size:13px}th{background:#f4f4f4}</style>")
    import html

    return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{style}</head><body>{body}</body></html>"
