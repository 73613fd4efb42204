"""The leakage report after the prototype (``reports/leakage.json``): every signal that a result is too good to
be honest, each with its evidence, and the columns that block promotion.

Signals: Discovery's (the audit's ``leakage_signals``: ``single_feature``, ``name_mirror``,
``post_prediction_time``), then the model's -- ``shap_share`` (one feature carries more than
``brief.leakage.shap_share_warn`` of the mean |SHAP| mass: warn) and ``too_good`` (the selected model's held-out
metric at or above the task's plausible ceiling, column ``"held_out_metric"``; and the one-feature rule baseline
itself near that ceiling, naming its feature: block). A block-level signal is ``blocking`` unless
``brief.leakage.acknowledge`` names its column (or ``"held_out_metric"``) with a reason. The ``leakage``
promotion gate fails when ``blocking`` is not empty.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from .._report import Report, esc, html_table

__all__ = ["CEILINGS", "RULE_NEAR_CEILING", "LeakageReport", "leakage_report"]

#: held-out metric values no honest model is expected to reach (greater is better for each)
CEILINGS: dict[str, float] = {"roc_auc": 0.99, "pr_auc": 0.99, "accuracy": 0.99, "balanced_accuracy": 0.99,
                              "f1": 0.99, "macro_f1": 0.99, "weighted_f1": 0.99, "r2": 0.99}
#: the metric checked when the primary one has no ceiling (a loss: log_loss, brier, mae, rmse...)
_FALLBACK = {"binary_classification": "roc_auc", "multiclass_classification": "macro_f1", "regression": "r2"}
#: a one-feature rule scoring this on the checked metric is itself a leak signal
RULE_NEAR_CEILING = 0.95

_LEVEL_ORDER = {"block": 0, "warn": 1}


@dataclass
class LeakageReport(Report):
    """Leakage signals with their evidence, the blocking columns and the verdict ("pass" | "warn" | "block")."""

    signals: list[dict]
    title: str = "Leakage report"
    notes: list[str] = field(default_factory=list)

    @property
    def blocking(self) -> list[str]:
        out: list[str] = []
        for s in self.signals:
            col = s["column"] or "held_out_metric"
            if s["level"] == "block" and not s.get("acknowledged") and col not in out:
                out.append(col)
        return out

    @property
    def verdict(self) -> Literal["pass", "warn", "block"]:
        if self.blocking:
            return "block"
        return "warn" if self.signals else "pass"

    def to_dict(self) -> dict:
        return {"signals": [dict(s) for s in self.signals], "blocking": self.blocking, "verdict": self.verdict,
                "notes": list(self.notes)}

    @classmethod
    def from_dict(cls, d: dict) -> LeakageReport:
        return cls(signals=[dict(s) for s in d.get("signals", [])], notes=list(d.get("notes", [])))

    def summary(self) -> dict:
        return {"verdict": self.verdict, "blocking": self.blocking,
                "warnings": sorted({s["column"] or "held_out_metric" for s in self.signals
                                    if s["level"] == "warn"})}

    def _html_body(self) -> str:
        css = {"pass": "wb-ok", "warn": "wb-warn", "block": "wb-bad"}[self.verdict]
        head = f"<p>Verdict: <span class='{css}'>{esc(self.verdict)}</span>"
        if self.blocking:
            head += (f"; blocking: <b>{esc(', '.join(self.blocking))}</b> (exclude each in features.exclude, or "
                     "acknowledge it in leakage.acknowledge with the reason it is not a leak)")
        head += "</p>"
        notes = "".join(f"<li>{esc(n)}</li>" for n in self.notes)
        return head + html_table(self.signals) + (f"<ul>{notes}</ul>" if notes else "")


def _signal(signal: str, column: str | None, value: float | None, threshold: float | None, level: str,
            evidence: str, brief: Any) -> dict:
    ack = brief.leakage.acknowledge.get(column if column is not None else "held_out_metric")
    return {"signal": signal, "column": column, "value": None if value is None else round(float(value), 4),
            "threshold": threshold, "level": level, "evidence": evidence, "acknowledged": ack}


def _shap_signals(shap: dict | None, brief: Any) -> list[dict]:
    imp = {k: float(v) for k, v in ((shap or {}).get("importance") or {}).items() if v is not None}
    total = sum(abs(v) for v in imp.values())
    if not imp or total <= 0:
        return []
    top = max(imp, key=lambda c: abs(imp[c]))
    share = abs(imp[top]) / total
    cut = float(brief.leakage.shap_share_warn)
    if share <= cut:
        return []
    return [_signal("shap_share", top, share, cut, "warn",
                    f"carries {share:.1%} of the model's mean |SHAP| mass over {len(imp)} features "
                    f"(> {cut:.0%})", brief)]


def _rule_feature(rule: dict) -> str | None:
    fitted = rule.get("fitted", {})
    scores = fitted.get("rule_scores") or {}
    if scores:
        return max(scores, key=lambda c: scores[c])
    desc = str(fitted.get("description", ""))
    marker = "rule on "
    if marker in desc:
        return desc.split(marker, 1)[1].split(":")[0].split(" ")[0].strip() or None
    return None


def _too_good_signals(leaderboard: dict, brief: Any) -> list[dict]:
    task = leaderboard.get("task") or brief.task
    primary = leaderboard.get("primary") or brief.primary_metric
    metric = primary if primary in CEILINGS else _FALLBACK[task]
    models = leaderboard.get("models", {})
    out = []
    sel = leaderboard.get("selected")
    value = models.get(sel, {}).get("test", {}).get("metrics", {}).get(metric) if sel else None
    ceiling = CEILINGS[metric]
    if value is not None and value >= ceiling:
        out.append(_signal("too_good", "held_out_metric", value, ceiling, "block",
                           f"the selected model ({sel}) reaches held-out {metric} {value:.4f} (>= {ceiling:g}, the "
                           f"plausible ceiling of a {task.replace('_', ' ')}): too good to be true unless the "
                           "problem is known to be this easy", brief))
    rule = models.get("rule")
    rvalue = rule.get("test", {}).get("metrics", {}).get(metric) if rule else None
    if rvalue is not None and rvalue >= RULE_NEAR_CEILING:
        feat = _rule_feature(rule)
        out.append(_signal("too_good", feat, rvalue, RULE_NEAR_CEILING, "block",
                           f"a one-feature rule on {feat} alone reaches held-out {metric} {rvalue:.4f} "
                           f"(>= {RULE_NEAR_CEILING:g}, near the ceiling {ceiling:g})", brief))
    return out


def leakage_report(audit: dict | None, shap: dict | None, leaderboard: dict, brief: Any) -> LeakageReport:
    """Discovery's leakage signals plus the model's (SHAP share, too good to be true), acknowledged per the brief.

    Parameters
    ----------
    audit:
        ``reports/audit.json`` as a dict (its ``leakage_signals``), or None when Discovery did not run.
    shap:
        ``reports/shap.json`` as a dict (its ``importance``: mean |SHAP| per original column), or None.
    leaderboard:
        ``reports/leaderboard.json`` as a dict (the selected model's and the rule baseline's held-out metrics).
    brief:
        The (frozen) brief: its ``leakage`` section sets the SHAP share level and the acknowledgements.
    """
    notes = []
    signals = []
    if audit is None:
        notes.append("no Discovery audit in this run: only the model's signals were checked")
    else:
        for s in audit.get("leakage_signals", []):
            col = s.get("column")
            signals.append({**s, "acknowledged": brief.leakage.acknowledge.get(
                col if col is not None else "held_out_metric")})
    if shap is None:
        notes.append("no SHAP report: the SHAP-share signal was not checked")
    signals += _shap_signals(shap, brief)
    signals += _too_good_signals(leaderboard, brief)
    signals.sort(key=lambda x: (_LEVEL_ORDER.get(x["level"], 2), x["column"] or "", x["signal"]))
    unused = sorted(set(brief.leakage.acknowledge) - {s["column"] or "held_out_metric" for s in signals})
    if unused:
        notes.append(f"acknowledged in the brief but not signalled: {', '.join(unused)}")
    return LeakageReport(signals=signals, notes=notes)
