"""Model cards (Markdown and HTML) generated from the brief, the run manifest and the certified reports.

Sections follow the methodology's template: model details, intended use, out-of-scope uses, training data,
evaluation (with metrics sliced by sensitive group), fairness, explanations, limitations, ethical
considerations, maintenance. Nothing in a card is typed by hand except what the brief's ``model_card`` section
says; every figure comes from a report the gates also read.
"""

from __future__ import annotations

from typing import Any

__all__ = ["model_card_markdown", "markdown_to_html"]


def _table(rows: list[dict], columns: list[str]) -> str:
    if not rows:
        return "_(none)_\n"
    out = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    for r in rows:
        out += "| " + " | ".join(_cell(r.get(c)) for c in columns) + " |\n"
    return out


def _cell(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.4f}"
    return str(v).replace("|", "\\|")


def _bullets(items: list[str], default: str) -> str:
    return "".join(f"- {i}\n" for i in items) if items else f"- {default}\n"


def model_card_markdown(*, brief: dict, manifest: dict, leaderboard: dict, fairness: dict, shap: dict | None,
                        audit: dict | None, parity: dict, gates: dict, tag: str | None, onnx: dict) -> str:
    sel = leaderboard["selected"]
    model = leaderboard["models"][sel]
    primary = leaderboard["primary"]
    test = model["test"]["metrics"]
    base_name = leaderboard["best_baseline"]
    base = leaderboard["models"][base_name]["test"]["metrics"]
    card = brief.get("model_card") or {}
    data = manifest.get("data", {})
    md = [f"# Model card: {brief['name']} ({sel})\n"]
    md.append("## Model details\n")
    md.append(_table([
        {"field": "model", "value": f"{sel}: {model['fitted'].get('description', '')}"},
        {"field": "registered as", "value": tag or "(not registered: promotion refused)"},
        {"field": "format", "value": f"ONNX opset {onnx.get('opset')}, {onnx.get('size_bytes', 0) / 1024:.1f} KiB, "
                                     f"sha256 {onnx.get('sha256', '')[:16]}…"},
        {"field": "run", "value": manifest["run_id"]},
        {"field": "code", "value": f"git {str(manifest['git'].get('commit'))[:10]}"
                                   f"{' (dirty)' if manifest['git'].get('dirty') else ''}"},
        {"field": "owner", "value": brief.get("owner") or "—"},
        {"field": "objective", "value": brief["objective"]},
        {"field": "decision threshold", "value": brief["target"].get("decision_threshold", 0.5)},
        {"field": "hyperparameters", "value": ", ".join(f"{k}={v}" for k, v in model["fitted"]["params"].items())},
    ], ["field", "value"]))
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
    md.append(f"\nTarget `{brief['target']['column']}`, positive label `{brief['target']['positive_label']}`; "
              f"sensitive features: {', '.join(brief.get('sensitive_features', [])) or 'none'}.\n")
    md.append("\n## Evaluation\n")
    md.append(f"Primary metric **{primary}** (chosen for the task: "
              f"{'rare positive class' if primary == 'pr_auc' else 'per the brief'}), on the held-out test split "
              f"({model['test']['n']} rows), against the best baseline `{base_name}`.\n\n")
    mrows = [{"metric": m, sel: test[m], base_name: base.get(m), "delta (better > 0)":
              leaderboard["comparisons"][sel]["deltas"].get(m)} for m in test]
    md.append(_table(mrows, ["metric", sel, base_name, "delta (better > 0)"]))
    cv = model["cv"]
    md.append(f"\n{cv['n_splits']}-fold cross-validation on the training split: {primary} "
              f"{cv['mean'][primary]:.4f} ± {cv['std'][primary]:.4f}.\n")
    md.append("\n### Metrics by group\n")
    for feature in fairness["features"]:
        rows = [{"group": g["group"], "n": g["count"], "selection rate": g["selection_rate"], "TPR": g["tpr"],
                 "FPR": g["fpr"], "accuracy": g["accuracy"], "PR-AUC": g["pr_auc"], "evidence": g["evidence"]}
                for g in fairness["groups"][feature]]
        md.append(f"\n**{feature}**\n\n")
        md.append(_table(rows, ["group", "n", "selection rate", "TPR", "FPR", "accuracy", "PR-AUC", "evidence"]))
    md.append("\n## Fairness\n")
    grows = [{"feature": g["feature"], "gap": g["metric"], "value": g["value"],
              "CI": f"[{_cell(g['ci_low'])}, {_cell(g['ci_high'])}]", "threshold": g["threshold"],
              "verdict": g["verdict"]} for g in fairness["gaps"]]
    md.append(_table(grows, ["feature", "gap", "value", "CI", "threshold", "verdict"]))
    md.append("\n" + " ".join(fairness.get("notes", [])) + "\n")
    if shap:
        md.append("\n## Explanations\n")
        imp = shap.get("importance") or {}
        top = list(imp.items())[:8] if isinstance(imp, dict) else []
        md.append(f"SHAP ({shap.get('explainer', '')}) on {shap.get('rows', shap.get('n_rows', ''))} held-out rows; "
                  f"additivity check {'passed' if shap.get('additivity_passed', shap.get('additivity', {}).get('passed')) else 'FAILED'}.\n\n")
        if top:
            md.append(_table([{"feature": k, "mean |SHAP|": v} for k, v in top], ["feature", "mean |SHAP|"]))
    md.append("\n## Promotion gates\n")
    md.append(_table(gates["gates"], ["gate", "value", "threshold", "verdict", "detail"]))
    md.append(f"\nONNX parity: label agreement {100 * parity['label_agreement']:.3f}% on {parity['rows']} rows, "
              f"max |Δp| {parity['max_abs_diff']:.2e}, p99 {parity['p99_abs_diff']:.2e} "
              f"(tolerance {parity['tolerance']:g}).\n")
    md.append("\n## Limitations\n")
    lim = list(card.get("limitations", []))
    insufficient = [f"{f}: {g['group']} (n={g['count']})" for f in fairness["features"]
                    for g in fairness["groups"][f] if g["evidence"] != "ok"]
    if insufficient:
        lim.append("Too few rows to judge fairness for " + "; ".join(insufficient) + ".")
    if audit:
        lim += [w for w in audit.get("warnings", []) if "leakage" in w or "overlap" in w or "test rows" in w]
    md.append(_bullets(lim, "None recorded beyond the figures above."))
    md.append("\n## Ethical considerations\n")
    md.append(_bullets(card.get("ethical_considerations", []),
                       "Sliced metrics above show for whom the model works less well."))
    mon = brief.get("monitoring", {})
    md.append("\n## Maintenance\n")
    md.append(f"- Drift: PSI warning at {mon.get('psi_warning', 0.1)}, critical at {mon.get('psi_critical', 0.25)} "
              f"(`workbench drift`); a drop of the primary metric beyond {mon.get('metric_tolerance', 0.05)} on "
              "labelled live traffic counts as concept drift (`workbench feedback`).\n")
    md.append("- Rollback to the previous certified model: `workbench rollback`.\n")
    md.append(f"- Latency budget: {brief['latency_budget_ms']} ms p99 for a single row.\n")
    md.append(f"- Owner: {brief.get('owner') or 'unassigned'}.\n")
    return "".join(md)


def markdown_to_html(markdown: str, *, title: str) -> str:
    from markdown_it import MarkdownIt

    body = MarkdownIt("commonmark").enable("table").render(markdown)
    style = ("<style>body{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em}"
             "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;"
             "font-size:13px}th{background:#f4f4f4}</style>")
    import html

    return f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>{style}</head><body>{body}</body></html>"
