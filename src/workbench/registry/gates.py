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


from .fairness_gate import fairness_gates  # noqa: E402 - one module per gate family; re-exported here
