"""The fairness gates: one per (sensitive feature, gated metric), from a fairness report's gaps."""

from __future__ import annotations

from .gates import Gate, Verdict

__all__ = ["fairness_gates"]


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
