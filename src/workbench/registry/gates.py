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
           "size_gate", "integrity_gate", "contract_diff", "paired_bootstrap", "champion_challenger_gates",
           "CHAMPION_PREFIX"]

Verdict = Literal["pass", "fail", "info"]


@dataclass
class Gate:
    name: str
    value: Any
    threshold: Any
    verdict: Verdict
    detail: str = ""
    figures: dict | None = None  # structured figures behind value/detail (champion/challenger gates)

    def to_dict(self) -> dict:
        out = {"gate": self.name, "value": self.value, "threshold": self.threshold, "verdict": self.verdict,
               "detail": self.detail}
        if self.figures is not None:
            out["figures"] = self.figures
        return out


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


# ------------------------------------------------------------------------------------ champion / challenger
CHAMPION_PREFIX = "champion/challenger"


def contract_diff(champion: list[dict], challenger: list[dict]) -> dict:
    """How the challenger's inputs (``serving.json`` ``inputs``) differ from the champion's: ``added``,
    ``removed`` (field names) and ``changed`` (``{"name", "what": [...], "champion", "challenger"}``: kind,
    nullable, or the set of categories). Training ranges are not compared (they move with every sample)."""
    a = {i["name"]: i for i in champion}
    b = {i["name"]: i for i in challenger}
    changed = []
    for name in [n for n in a if n in b]:
        x, y = a[name], b[name]
        what = [k for k in ("kind", "nullable") if x.get(k) != y.get(k)]
        if sorted(x.get("categories") or []) != sorted(y.get("categories") or []):
            what.append("categories")
        if what:
            changed.append({"name": name, "what": what, "champion": {k: x.get(k) for k in what},
                            "challenger": {k: y.get(k) for k in what}})
    return {"added": [n for n in b if n not in a], "removed": [n for n in a if n not in b], "changed": changed}


def paired_bootstrap(stat: Any, a: Any, b: Any, y: Any, *, n: int, seed: int, confidence: float = 0.95
                     ) -> tuple[float, float]:
    """Interval of ``stat(y, b) - stat(y, a)`` over ``n`` paired resamples (the same rows for both models each
    time), seeded with ``numpy.random.default_rng(seed)``. Resamples where ``stat`` is undefined (NaN, or it
    raises: a resample with one class) are dropped."""
    import numpy as np

    rng = np.random.default_rng(seed)
    m = len(y)
    diffs = []
    for _ in range(max(int(n), 0)):
        idx = rng.integers(0, m, m)
        try:
            d = float(stat(y[idx], b[idx])) - float(stat(y[idx], a[idx]))
        except ValueError:
            continue
        if d == d:
            diffs.append(d)
    if not diffs:
        return float("nan"), float("nan")
    lo = (1 - confidence) / 2
    return float(np.quantile(diffs, lo)), float(np.quantile(diffs, 1 - lo))


def _r(v: float | None) -> float | None:
    return None if v is None or v != v else round(float(v), 6)


def champion_challenger_gates(*, task: Any, y: Any, champion: Any, challenger: Any, primary: str,
                              metric_tolerance: float, guardrail_tolerance: float, latency_ratio: float,
                              champion_tag: str, threshold: float | None = None, classes: list[str] | None = None,
                              fairness: tuple[dict, dict] | None = None,
                              latency_p99: tuple[float, float] | None = None, contract: dict | None = None,
                              n_bootstrap: int = 200, seed: int = 42, confidence: float = 0.95,
                              note: str = "") -> list[Gate]:
    """The champion/challenger gates, from both models' ONNX scores on the challenger's test split.

    ``champion`` / ``challenger`` are the task's scores (binary P(positive), multiclass (n, K) probabilities,
    regression predictions) of the same rows ``y``. Gates (each named ``champion/challenger: ...``):

    - ``contract`` (info): which inputs were added, removed or changed (:func:`contract_diff`);
    - ``primary metric``: the challenger may be worse than the champion by at most ``metric_tolerance`` (point
      figures; the difference's paired bootstrap interval is shown beside them, not gated -- two models equal
      within noise must pass);
    - ``calibration ECE`` (classifiers): the challenger's ECE at most ``guardrail_tolerance`` above the
      champion's (bootstrap interval of the difference shown);
    - ``fairness <metric> by <feature>`` (``fairness``: both fairness reports' ``to_dict()``): each gap's upper
      confidence bound at most ``guardrail_tolerance`` above the champion's;
    - ``single-row latency p99`` (``latency_p99``: champion, challenger in ms): the ratio at most
      ``latency_ratio`` (the brief's ``deployment.latency_ratio``, the ratio that would roll a live challenger
      back), or within 1 ms of the champion (machine noise at sub-millisecond scales).
    """
    import numpy as np

    from ..modeling.calibration import expected_calibration_error

    y = np.asarray(y)
    a, b = np.asarray(champion, dtype=np.float64), np.asarray(challenger, dtype=np.float64)
    gates: list[Gate] = []
    P = CHAMPION_PREFIX
    if contract is not None:
        parts = [f"{k}: {', '.join(contract[k])}" for k in ("added", "removed") if contract.get(k)]
        parts += [f"changed: {c['name']} ({', '.join(c['what'])})" for c in contract.get("changed") or []]
        gates.append(Gate(f"{P}: contract", "; ".join(parts) or "same inputs", "shown, not gated", "info",
                          f"challenger inputs against the champion {champion_tag}'s", figures=contract))

    def metric(yy: Any, s: Any) -> float:
        return float(task.evaluate(yy, s, primary=primary, threshold=threshold, classes=classes).metrics[primary])

    greater = task.greater_is_better(primary)
    va, vb = metric(y, a), metric(y, b)
    lo, hi = paired_bootstrap(metric, a, b, y, n=n_bootstrap, seed=seed, confidence=confidence)
    delta = vb - va
    better = delta if greater else -delta  # > 0: the challenger is better
    ok = better >= -metric_tolerance - 1e-12
    ci = f"{100 * confidence:g}% paired bootstrap CI [{lo:+.4f}, {hi:+.4f}] ({n_bootstrap} resamples, seed {seed})"
    gates.append(Gate(f"{P}: primary metric ({primary})", f"{vb:.4f} vs {va:.4f} (Δ {delta:+.4f})",
                      f"Δ {'>=' if greater else '<='} {'-' if greater else '+'}{metric_tolerance:g}",
                      "pass" if ok else "fail",
                      f"challenger vs champion {champion_tag} on the challenger's test split ({len(y)} rows, both "
                      f"ONNX); {ci}" + (f"; {note}" if note else ""),
                      figures={"metric": primary, "champion": _r(va), "challenger": _r(vb), "delta": _r(delta),
                               "ci_low": _r(lo), "ci_high": _r(hi), "tolerance": metric_tolerance,
                               "greater_is_better": greater, "n_rows": int(len(y)), "n_bootstrap": n_bootstrap,
                               "seed": seed, "confidence": confidence}))
    if task.is_classifier:
        def ece(yy: Any, s: Any) -> float:
            return expected_calibration_error(yy, s)

        ea, eb = ece(y, a), ece(y, b)
        lo, hi = paired_bootstrap(ece, a, b, y, n=n_bootstrap, seed=seed + 1, confidence=confidence)
        ok = eb - ea <= guardrail_tolerance + 1e-12
        gates.append(Gate(f"{P}: calibration ECE", f"{eb:.4f} vs {ea:.4f} (Δ {eb - ea:+.4f})",
                          f"Δ <= +{guardrail_tolerance:g}", "pass" if ok else "fail",
                          f"expected calibration error, challenger vs champion; {100 * confidence:g}% paired "
                          f"bootstrap CI [{lo:+.4f}, {hi:+.4f}]",
                          figures={"champion": _r(ea), "challenger": _r(eb), "delta": _r(eb - ea), "ci_low": _r(lo),
                                   "ci_high": _r(hi), "tolerance": guardrail_tolerance}))
    if fairness is not None:
        fa, fb = fairness
        champ = {(g["feature"], g["metric"]): g for g in fa.get("gaps") or []}
        for g in fb.get("gaps") or []:
            if g.get("threshold") is None:
                continue  # a gap the brief does not gate is reported in the fairness report, not a guardrail
            c = champ.get((g["feature"], g["metric"]))
            ratio = str(g["metric"]).endswith("ratio")  # a ratio gap is better when larger: its lower bound counts
            key = "ci_low" if ratio else "ci_high"
            name = f"{P}: fairness {g['metric']} by {g['feature']} ({'lower' if ratio else 'upper'} bound)"
            hb, ha = g.get(key), (c or {}).get(key)
            if ratio and hb is not None and ha is not None:
                hb, ha = -hb, -ha  # compare "how much worse" the same way for both kinds
            if hb is None or ha is None or hb != hb or ha != ha:
                gates.append(Gate(name, "not comparable", f"Δ <= +{guardrail_tolerance:g}", "info",
                                  "the gap has no bound for one of the models (no such gap, or no evidence)"))
                continue
            ok = hb - ha <= guardrail_tolerance + 1e-12
            shown_b, shown_a = (-hb, -ha) if ratio else (hb, ha)
            gates.append(Gate(name, f"{shown_b:.4f} vs {shown_a:.4f} (worse by {hb - ha:+.4f})",
                              f"worse by <= +{guardrail_tolerance:g}", "pass" if ok else "fail",
                              f"{'lower' if ratio else 'upper'} confidence bound of the gap, challenger vs champion, "
                              "same rows and groups",
                              figures={"champion": _r(ha), "challenger": _r(hb), "delta": _r(hb - ha),
                                       "tolerance": guardrail_tolerance}))
    if latency_p99 is not None:
        la, lb = latency_p99
        ratio = lb / la if la > 0 else float("inf")
        # Single-row p99s of a fraction of a millisecond move by 2x with machine noise alone: a challenger fails
        # only when it is both latency_ratio slower and slower by a millisecond or more.
        ok = ratio <= latency_ratio or lb - la < 1.0
        gates.append(Gate(f"{P}: single-row latency p99", f"{lb:.3f} vs {la:.3f} ms (x{ratio:.2f})",
                          f"ratio <= {latency_ratio:g} (or within 1 ms)", "pass" if ok else "fail",
                          "in-process ONNX single-row calls, same row, same process",
                          figures={"champion_ms": _r(la), "challenger_ms": _r(lb), "ratio": _r(ratio),
                                   "max_ratio": latency_ratio}))
    return gates


from .fairness_gate import fairness_gates  # noqa: E402 - one module per gate family; re-exported here
