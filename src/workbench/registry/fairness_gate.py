"""The fairness gates: one per (sensitive feature, gated metric), from a fairness report's gap rows.

Verdicts become gates (round-2 spec, "Fairness verdict vocabulary"):

* "exceeds threshold" -> fail (the sufficient groups' bound, or even the lower bound of a gap involving a group
  with too little evidence, is past the threshold);
* "insufficient evidence — review" -> fail, unless ``brief.fairness.acknowledge`` names every insufficient group
  of that feature with a reason -> pass, with the acknowledgement in the detail;
* "within threshold" -> pass.

Every detail shows the gated interval, the gap over all groups and Fairlearn's whole-population figure, so a
gate can never look better than the groups it leaves out.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..evaluation._gaps import REVIEW, normalise_acks

if TYPE_CHECKING:
    from .gates import Gate, Verdict

__all__ = ["fairness_gates"]


def _f(x: Any) -> str:
    return "n/a" if x is None else f"{x:.4f}"


def _figures(g: dict, level: int) -> str:
    """The gated interval, the all-groups gap and Fairlearn's figure of one gap row."""
    used = len(g.get("groups_used") or [])
    if g.get("value") is None:  # no two groups with enough evidence to compare: no gated interval to show
        parts = [f"no gated figure: {used} group{'' if used == 1 else 's'} with enough evidence (a gap needs two)"]
    else:
        parts = [f"point {_f(g.get('value'))}, {level}% CI [{_f(g.get('ci_low'))}, {_f(g.get('ci_high'))}] over "
                 f"{used} groups"]
    if "value_all_groups" in g:
        n_all = len(g.get("groups_used") or []) + len(g.get("groups_excluded") or [])
        parts.append(f"all {n_all} groups {_f(g.get('value_all_groups'))} (CI high {_f(g.get('ci_high_all_groups'))})")
    if "fairlearn_value" in g:
        parts.append(f"Fairlearn {_f(g.get('fairlearn_value'))}")
    return "; ".join(parts)


def _needing_review(g: dict, acks: dict[str, dict[str, str]] | None) -> tuple[list[str], list[dict]]:
    """(groups still unacknowledged, acknowledgements) of a review gap row; ``acks`` overrides the row's own."""
    if acks is None:
        if "groups_unacknowledged" in g:
            return list(g["groups_unacknowledged"]), list(g.get("acknowledged") or [])
        return list(g.get("groups_excluded") or []) or ["(fewer than two groups)"], []  # a pre-round-2 report
    needed = list(g.get("groups_insufficient") or []) or list(g.get("groups_used") or [])
    mine = acks.get(g["feature"], {})
    return [x for x in needed if not mine.get(x)], [{"group": x, "reason": mine[x]} for x in needed if mine.get(x)]


def fairness_gates(fairness: dict, *, acknowledge: Iterable[Any] | None = None) -> list[Gate]:
    """One gate per (sensitive feature, gated metric) of a fairness report's ``to_dict()``.

    Parameters
    ----------
    fairness:
        The fairness report as a dict (binary, multiclass or regression).
    acknowledge:
        The brief's ``fairness.acknowledge``; when given it decides which insufficient groups are acknowledged
        (otherwise the report's own ``acknowledged`` / ``groups_unacknowledged``, recorded when it was made).
    """
    from .gates import Gate  # gates.py re-exports this module's function: import it lazily, either order works

    acks = None if acknowledge is None else normalise_acks(acknowledge)
    level = int(round(100 * float(fairness.get("confidence_level", 0.95))))
    gates = []
    gated = [g for g in fairness["gaps"] if g.get("threshold") is not None]
    for g in gated:
        metric = g["metric"]
        ratio = metric.endswith("ratio")
        bound = g["ci_low"] if ratio else g["ci_high"]
        figures = _figures(g, level)
        insufficient = g.get("groups_insufficient") or []
        verdict: Verdict
        if g["verdict"] == "exceeds threshold":
            verdict = "fail"
            key = "ci_high_insufficient" if ratio else "ci_low_insufficient"
            worst = g.get(key)
            past = worst is not None and (worst < g["threshold"] if ratio else worst > g["threshold"])
            why = (f"; even the {'upper' if ratio else 'lower'} bound of the gap involving "
                   f"{g.get('insufficient_group')} ({worst:.4f}) is past the threshold" if past else "")
            detail = f"exceeds threshold: {figures}{why}"
        elif g["verdict"] in (REVIEW, "insufficient evidence"):
            missing, acked = _needing_review(g, acks)
            by_reason: dict[str, list[str]] = {}
            for a in acked:  # one reason usually covers several groups: say it once
                by_reason.setdefault(a["reason"], []).append(a["group"])
            ack_text = "; ".join(f"{', '.join(gs)}: {r}" for r, gs in by_reason.items())
            if not missing:
                verdict = "pass"
                detail = f"insufficient evidence — review, acknowledged ({ack_text}): {figures}"
            else:
                verdict = "fail"
                detail = (f"insufficient evidence — review: too little evidence for {', '.join(missing)}; "
                          f"{figures}. Acknowledge these groups of {g['feature']!r} in brief.fairness.acknowledge "
                          "with a reason, or collect more data" + (f" (acknowledged: {ack_text})" if ack_text else ""))
        else:
            verdict = "pass" if g["verdict"] == "within threshold" else "fail"
            detail = figures + (f"; insufficient groups: {', '.join(insufficient)}" if insufficient else "")
        if g.get("class"):
            detail += f" (largest for class {g['class']})"
        gates.append(Gate(f"fairness: {metric} by {g['feature']}", None if bound is None else round(bound, 6),
                          f"{'>=' if ratio else '<='} {g['threshold']:g}", verdict, detail))
    if not gated:
        gates.append(Gate("fairness", None, None, "info", "the brief sets no fairness thresholds"))
    return gates
