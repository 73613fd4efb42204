"""Go/no-go promotion gates. Each gate has a value, a threshold and a verdict; one failed gate refuses the model.

The gates read only certified evidence: the run's reports (leaderboard, fairness), the parity certificate and a
latency measurement of the exported model. Nothing here is advisory: :attr:`GateReport.passed` is what promotion
obeys.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Literal

from .._report import Report, esc, html_table

__all__ = ["Gate", "GateReport", "baseline_gate", "success_gate", "fairness_gates", "parity_gate", "latency_gate",
           "size_gate", "integrity_gate"]

Verdict = Literal["pass", "fail", "info"]


@dataclass
class Gate:
    name: str
    value: Any
    threshold: Any
    verdict: Verdict
    detail: str = ""

    def to_dict(self) -> dict:
        return {"gate": self.name, "value": self.value, "threshold": self.threshold, "verdict": self.verdict,
                "detail": self.detail}


@dataclass
class GateReport(Report):
    run_id: str
    model: str
    gates: list[Gate]
    created_at: str = field(default_factory=lambda: _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    title: str = "Promotion gates"

    @property
    def passed(self) -> bool:
        return all(g.verdict != "fail" for g in self.gates)

    @property
    def failed(self) -> list[Gate]:
        return [g for g in self.gates if g.verdict == "fail"]

    def to_dict(self) -> dict:
        return {"run_id": self.run_id, "model": self.model, "passed": self.passed, "created_at": self.created_at,
                "gates": [g.to_dict() for g in self.gates]}

    def summary(self) -> dict:
        return {"passed": self.passed, "failed": [g.name for g in self.failed]}

    def _html_body(self) -> str:
        css = "wb-ok" if self.passed else "wb-bad"
        verdict = "GO: all gates pass" if self.passed else f"NO-GO: {len(self.failed)} gate(s) failed"
        rows = [{"gate": g.name, "value": _fmt(g.value), "threshold": _fmt(g.threshold), "verdict": g.verdict,
                 "detail": g.detail} for g in self.gates]
        return (f"<p>run {esc(self.run_id)}, model {esc(self.model)}: <span class='{css}'>{verdict}</span></p>"
                + html_table(rows))


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return "" if v is None else str(v)


def integrity_gate(name: str, expected: str | None, actual: str | None) -> Gate:
    ok = expected is not None and expected == actual
    return Gate(f"integrity: {name}", (actual or "")[:12], (expected or "(none recorded)")[:12],
                "pass" if ok else "fail", "sha256 matches the run manifest" if ok else "sha256 differs from the run "
                "manifest: the artifact or data changed after the run")


def baseline_gate(leaderboard: dict, selected: str) -> Gate:
    cmp = leaderboard["comparisons"][selected]
    delta, margin = cmp["primary_delta"], cmp["min_improvement"]
    ok = delta > margin
    return Gate(f"beats baseline ({cmp['primary']})", round(delta, 6), f"> {margin:g}", "pass" if ok else "fail",
                f"{selected} vs {leaderboard['best_baseline']}: {cmp['candidate'][cmp['primary']]:.4f} vs "
                f"{cmp['baseline'][cmp['primary']]:.4f} on the held-out split")


def success_gate(value: float, threshold: float, metric: str, greater_is_better: bool = True) -> Gate:
    ok = value >= threshold if greater_is_better else value <= threshold
    return Gate(f"success threshold ({metric})", round(value, 6), f"{'>=' if greater_is_better else '<='} {threshold:g}",
                "pass" if ok else "fail", "held-out value against the brief's success.threshold")


def fairness_gates(fairness: dict) -> list[Gate]:
    """One gate per (sensitive feature, gated metric): the upper confidence bound (lower, for ratios) must be within
    the brief's threshold. A slice without enough evidence is reported as such and does not count as passing;
    if no slice of a metric has enough evidence the metric's gate fails (nothing certifies it)."""
    gates = []
    gated = [g for g in fairness["gaps"] if g.get("threshold") is not None]
    by_metric: dict[str, list[dict]] = {}
    for g in gated:
        by_metric.setdefault(g["metric"], []).append(g)
    for metric, rows in by_metric.items():
        judged = [g for g in rows if g["verdict"] != "insufficient evidence"]
        for g in rows:
            ratio = metric.endswith("ratio")
            bound = g["ci_low"] if ratio else g["ci_high"]
            if g["verdict"] == "insufficient evidence":
                verdict: Verdict = "info"
                detail = "insufficient evidence (fewer than two groups with enough rows): not counted as passing"
            else:
                verdict = "pass" if g["verdict"] == "within threshold" else "fail"
                detail = (f"point {g['value']:.4f}, {int(100 * fairness['confidence_level'])}% CI "
                          f"[{g['ci_low']:.4f}, {g['ci_high']:.4f}] over {len(g['groups_used'])} groups")
            gates.append(Gate(f"fairness: {metric} by {g['feature']}", None if bound is None else round(bound, 6),
                              f"{'>=' if ratio else '<='} {g['threshold']:g}", verdict, detail))
        if not judged:
            gates.append(Gate(f"fairness: {metric}", None, "evidence for at least one feature", "fail",
                              "no sensitive feature has two groups with enough rows: fairness cannot be certified"))
    if not gated:
        gates.append(Gate("fairness", None, None, "info", "the brief sets no fairness thresholds"))
    return gates


def parity_gate(cert: dict) -> Gate:
    headline = cert.get("headline") or (f"labels {100 * cert['label_agreement']:.3f}%, "
                                        f"p99 |dp| {cert['p99_abs_diff']:.2e}")
    return Gate("ONNX parity", headline,
                cert.get("policy_short") or f"100% labels, p99 <= {cert['tolerance']:g}",
                "pass" if cert["passed"] else "fail", cert.get("reason", ""))


def latency_gate(p99_ms: float, p50_ms: float, budget_ms: float, n: int) -> Gate:
    return Gate("single-row latency p99 (ms)", round(p99_ms, 4), f"<= {budget_ms:g}", "pass" if p99_ms <= budget_ms else "fail",
                f"ONNX predict path in-process, {n} calls, p50 {p50_ms:.3f} ms")


def size_gate(size_bytes: int) -> Gate:
    return Gate("model size", f"{size_bytes / 1024:.1f} KiB", None, "info", "reported, not gated")
