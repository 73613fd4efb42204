"""Promotion: certify a run's selected model through the go/no-go gates and register it, or refuse.

Two parts, as TFX's Evaluator and Pusher: :func:`certify` is free of side effects outside memory (it reads the
run folder and the data, exports and measures, and returns a :class:`Certification`); :func:`register` is the
only code that touches the model store, the ledger and the production pointer. :func:`promote` runs both and
writes the attempt folder.

Steps (each hand-off checked against what the previous stage certified):

1. the run must have succeeded with a selected candidate; every file of its evidence (reports, artifacts, frozen
   brief, results.json) must match the sha256 the manifest recorded when the run ended (``integrity: evidence``),
   and the data the sha256 of the run; the verdicts are then recomputed from primary evidence -- the held-out
   predictions (checked to be of the verified test split and, once the model is loaded, to be that model's) with
   the frozen brief's thresholds -- never read from a report or the manifest. The notebook model is a skops file
   loaded only after its hash is verified and only with the trusted types: nothing is ever unpickled;
2. export to ONNX (skl2onnx) and certify parity with the notebook model on the whole test split + edge cases;
3. measure single-row latency of the ONNX predict path;
4. evaluate the gates: integrity, kill criteria, beats the baseline, success threshold, fairness (upper
   confidence bounds), leakage (when the run has a leakage report), parity, latency; model size is reported;
5. when a production model of the same brief exists (the *champion*), the champion/challenger gate: both models
   scored with ONNX (the service's scorer) on this run's test split -- primary metric within
   ``brief.deployment.metric_tolerance`` of the champion's, guardrails (fairness gap upper bounds, calibration
   ECE, single-row latency) within ``guardrail_tolerance`` (latency: within ``latency_ratio``), both figures
   and the difference with a seeded paired bootstrap interval in the gate table, and the contract difference
   (inputs added, removed, changed) shown. Each model takes its own inputs from the test rows (the model frame,
   else the raw test data); **a champion input found nowhere in the test split fails the gate with that reason**
   (a champion scored with a whole input missing would be a strawman, and "not worse than the champion" would
   certify nothing) -- the way forward is a brief whose data still holds the champion's inputs, or a release of
   the first model of a new brief. Different briefs never compare;
6. write the attempt (gate report, parity certificate, model card) under a new ``promotions/<time>-<run>[-N]``;
   if every gate passes, save the model package (with ``package.json``) to the BentoML model store, then, under
   the ledger lock, append the ledger and set the stage: **the first model of a brief** (no champion) is
   released straight to production (``certified`` then ``released``, "first model: no champion to compare";
   the production pointer moves: ``make run`` serves what it promoted); **a later one stops at staging**
   (``certified`` then ``staged``) until ``workbench release <tag> --approve "..."``
   (:mod:`workbench.registry.release`).

A refused promotion registers nothing and moves nothing; it is still written to the ledger as ``refused``.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from .._report import atomic_write_text
from ..artifacts import ModelPackage as P
from ..config import Settings
from ..config import settings as _settings
from ..errors import WorkbenchError
from ..monitoring.profile import build_profile
from . import ledger
from .card import markdown_to_html, model_card_markdown
from .gates import (
    Gate,
    GateReport,
    baseline_gate,
    integrity_gate,
    latency_gate,
    parity_gate,
    size_gate,
    success_gate,
)
from .store import model_name_for, save_model_package, serving_config

__all__ = ["Certification", "PromotionResult", "certify", "register", "promote", "measure_latency",
           "recompute_evidence", "evidence_gate", "leakage_gate", "attempt_folder", "champion_gates"]

log = logging.getLogger(__name__)


@dataclass
class PromotionResult:
    run_id: str
    gates: GateReport
    attempt_dir: Path
    tag: str | None = None
    parity: dict | None = None
    stage: str | None = None  # "production" (first model of its brief) or "staging"; None when refused
    champion: str | None = None

    @property
    def promoted(self) -> bool:
        return self.tag is not None


@dataclass
class Certification:
    """Everything the gates decided and the package would hold; :attr:`passed` is the go/no-go."""

    run_id: str
    brief: Any
    manifest: dict
    selected: str
    gates: GateReport
    parity: dict | None = None
    onnx_bytes: bytes | None = None
    export_info: dict = field(default_factory=dict)
    scorer_inputs: list | None = None
    profile: dict | None = None
    contract: Any = None
    reports: dict = field(default_factory=dict)
    data_sha256: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return self.gates.passed and self.onnx_bytes is not None and self.parity is not None


def paired_latency(a: Any, row_a: dict[str, list], b: Any, row_b: dict[str, list], *, n: int = 1000,
                   warmup: int = 50) -> tuple[float, float]:
    """p99 (ms) of single-row calls of two scorers measured **interleaved** (a, b, a, b, ...): a burst of load on
    a shared machine lands on both, so their ratio is not the noise of two measurements taken at different
    times (the champion/challenger latency guardrail)."""
    calls = [getattr(s, "scores", None) or s.predict_proba for s in (a, b)]
    rows = (row_a, row_b)
    for _ in range(warmup):
        for call, row in zip(calls, rows, strict=True):
            call(row)
    times = np.empty((2, n))
    for i in range(n):
        for k in (0, 1):
            t = time.perf_counter_ns()
            calls[k](rows[k])
            times[k, i] = time.perf_counter_ns() - t
    return float(np.percentile(times[0], 99) / 1e6), float(np.percentile(times[1], 99) / 1e6)


def measure_latency(scorer: Any, row: dict[str, list], *, n: int = 1000, warmup: int = 50) -> tuple[float, float]:
    """p50 and p99 (ms) of single-row ``scorer.scores`` calls (the task's scores)."""
    call = getattr(scorer, "scores", None) or scorer.predict_proba
    for _ in range(warmup):
        call(row)
    times = np.empty(n)
    for i in range(n):
        t = time.perf_counter_ns()
        call(row)
        times[i] = time.perf_counter_ns() - t
    return float(np.percentile(times, 50) / 1e6), float(np.percentile(times, 99) / 1e6)


def certify(ref: str = "latest", *, cfg: Settings | None = None, latency_calls: int = 1000,
            on_step: Callable[[str], None] | None = None, brief: str | None = None) -> Certification:
    """Evaluate every gate for a run's selected candidate; export, certify parity, measure latency, profile.

    Reads the run folder and the data; writes nothing. Every run-folder file read is verified against the
    manifest's ``evidence`` first, and the verdicts are recomputed from primary evidence (the held-out
    predictions, the data, the frozen brief's thresholds): a report's or the manifest's own verdict is never
    trusted. ``ref`` is a run id, a run folder or ``latest`` (the newest promotable run of ``brief``, or of the
    only brief in use: :func:`workbench.runs.choose_run`).

    Raises
    ------
    RunError
        The run does not exist or cannot be promoted (exit code 2; 3 for a run stopped at a gate).
    WorkbenchError
        The run cannot be evaluated at all; a failed gate is in the returned certification, not raised.
    """
    from ..artifacts import MODEL_SUFFIX, EvidenceError, RunFolder, UntrustedModelError, load_model_bytes
    from ..data import DataContract, load_dataset
    from ..experiments import model_frames
    from ..export import export_onnx
    from ..export.parity import parity_certificate
    from ..runs import choose_run
    from ..serving.scorer import OnnxScorer

    step = on_step or (lambda msg: None)
    cfg = cfg or _settings()
    choice = choose_run(ref, cfg.runs_dir, brief=brief, promotable=True)
    if choice.note():
        step(choice.note())
    run = RunFolder(choice.path)
    manifest = run.manifest()
    run_id = manifest["run_id"]
    gates: list[Gate] = []
    ev = run.evidence(manifest)
    problems = ev.problems()
    gates.append(evidence_gate(problems, len(ev.record or {})))

    def verified(read: Callable[[], Any]) -> Any:
        try:
            return read()
        except EvidenceError as exc:
            log.warning("%s", exc.message)
            return None

    brief_obj = run.brief(manifest)  # verified against the frozen sha256; raises when edited
    task = brief_obj.task_spec
    params = manifest["parameters"].get("prototype", {})
    seed = int(params.get("seed", 42))
    data = load_dataset(brief_obj, sample_rows=int(params.get("sample_rows", 0)), seed=seed)
    for split, src in data.sources.items():
        gates.append(integrity_gate(f"{split} data", manifest["data"].get(split, {}).get("sha256"), src.sha256))

    leaderboard = verified(lambda: ev.json("reports/leaderboard.json"))
    claimed = ((manifest.get("results") or {}).get("prototype") or {}).get("selected")
    selected = (leaderboard or {}).get("selected") or claimed
    step(f"run {run_id}: selected candidate {selected}")
    contract_dict = verified(lambda: ev.json("reports/contract.json"))
    if contract_dict is None:  # nothing below can be evaluated without the verified contract: refuse here
        gates.append(Gate("evidence: data contract", "not verified", "reports/contract.json as recorded", "fail",
                          "the data contract did not verify against the run's evidence: no other gate was "
                          "evaluated and no model was loaded"))
        return Certification(run_id=run_id, brief=brief_obj, manifest=manifest, selected=selected or "(none)",
                             gates=GateReport(run_id=run_id, model=selected or "(none)", gates=gates))
    contract = DataContract.model_validate(contract_dict)
    frames = model_frames(data, brief_obj, contract)
    primary = task.choose_metrics(frames.y_train, override=brief_obj.success.metric or None)[0]
    predictions = verified(lambda: ev.frame("artifacts/predictions.parquet"))

    # -- the verdicts, recomputed from the held-out predictions with the frozen brief's thresholds
    evidence = recompute_evidence(predictions, frames=frames, brief=brief_obj, selected=selected, primary=primary,
                                  n_bootstrap=int(params.get("bootstrap_samples") or 0)
                                  or brief_obj.fairness.bootstrap_samples, seed=seed,
                                  audit=verified(lambda: ev.json("reports/audit.json", required=False)))
    gates.append(evidence.predictions_gate)
    gates.extend(evidence.gates)
    reports = {"leaderboard": _with_recomputed_metrics(leaderboard, evidence.metrics),
               "fairness": evidence.fairness or verified(lambda: ev.json("reports/fairness.json")),
               "audit": verified(lambda: ev.json("reports/audit.json", required=False)),
               "shap": verified(lambda: ev.json("reports/shap.json", required=False))}
    leakage = verified(lambda: ev.json("reports/leakage.json", required=False))
    if leakage is not None or "reports/leakage.json" in (ev.record or {}):
        gates.append(_leakage(leakage, reports, brief_obj))
    cert_obj = Certification(run_id=run_id, brief=brief_obj, manifest=manifest, selected=selected or "(none)",
                             gates=GateReport(run_id=run_id, model=selected or "(none)", gates=gates),
                             contract=contract, reports=reports,
                             data_sha256={k: v.sha256 for k, v in data.sources.items()})

    # -- the model: a skops file whose bytes match the evidence, loaded with the trusted types only
    rel = f"{RunFolder.ARTIFACTS}/model_{selected}{MODEL_SUFFIX}"
    path = run.path / rel
    blob = path.read_bytes() if path.is_file() else None
    expected = (ev.record or {}).get(rel)
    actual = hashlib.sha256(blob).hexdigest() if blob is not None else None
    gates.append(integrity_gate(f"model artifact model_{selected}", expected, actual))
    if blob is None or expected is None or actual != expected:
        gates.append(Gate("ONNX export", "skipped", "a verified model artifact", "fail",
                          f"{rel} is missing or its sha256 does not match the run's evidence: it was not loaded"))
        return cert_obj
    try:
        model = load_model_bytes(blob, source=f"run {run_id}: {rel}")
    except UntrustedModelError as exc:
        gates.append(Gate("model artifact loads", "refused", "skops, trusted types only", "fail", exc.message))
        gates.append(Gate("ONNX export", "skipped", "a loaded model", "fail", "the model artifact was not loaded"))
        return cert_obj
    gates.append(_model_matches_predictions(model, task, frames, contract, evidence.selected_scores))
    step("exporting to ONNX")
    try:
        export = export_onnx(model, features=contract.features, numeric=contract.numeric_features, task=task.name)
    except WorkbenchError as exc:
        gates.append(Gate("ONNX export", "failed", "converts", "fail", exc.message))
        return cert_obj
    step(f"certifying parity on {len(frames.y_test)} test rows + edge cases")
    certificate = parity_certificate(model, export, frames.X_test, task=task.name, threshold=brief_obj.threshold,
                                     classes=frames.classes, target_std=frames.target_std, contract=contract)
    cert = certificate.to_dict()
    gates.append(parity_gate(cert))
    step("measuring single-row latency")
    scorer = OnnxScorer(export.model_bytes, export.inputs, task=task.name)
    row = {c: [frames.X_test[c].iloc[0]] for c in contract.features}
    row = {c: [None if (isinstance(v[0], float) and np.isnan(v[0])) or v[0] == "" else v[0]]
           for c, v in row.items()}
    p50, p99 = measure_latency(scorer, row, n=latency_calls)
    gates.append(latency_gate(p99, p50, brief_obj.latency_budget_ms, latency_calls))
    gates.append(size_gate(export.size_bytes))
    from .release import champion_for

    champion = champion_for(brief_obj.name)
    if champion is not None:
        step(f"champion/challenger: comparing with the production model {champion}")
        gates.extend(champion_gates(champion, brief=brief_obj, task=task, frames=frames, raw_test=data.test,
                                    challenger=scorer, challenger_inputs=export.inputs, row=row,
                                    primary=primary, latency_calls=latency_calls, seed=seed, contract=contract,
                                    n_bootstrap=int(params.get("bootstrap_samples") or 0)
                                    or brief_obj.fairness.bootstrap_samples))
    step("profiling the reference data for drift checks")
    live = scorer.scores({c: frames.X_test[c].tolist() for c in contract.features})
    profile = build_profile(data.train, features=contract.features, numeric=contract.numeric_features,
                            task=task.name, scores=live, classes=frames.classes, threshold=brief_obj.threshold,
                            seed=seed, source={"run_id": run_id, "split": "train", "predictions": "test (ONNX)"})
    cert_obj.parity, cert_obj.onnx_bytes, cert_obj.export_info = cert, export.model_bytes, export.to_dict()
    cert_obj.scorer_inputs, cert_obj.profile = export.inputs, profile
    sel_metrics = evidence.metrics.get(selected) or {}
    cert_obj.extras = {"classes": frames.classes, "target_std": frames.target_std, "primary": primary,
                       "certified_value": sel_metrics.get(primary), "metrics": sel_metrics, "champion": champion}
    return cert_obj


def champion_gates(champion: str, *, brief: Any, task: Any, frames: Any, raw_test: Any, challenger: Any,
                   challenger_inputs: list[dict], row: dict, primary: str,
                   latency_calls: int, seed: int, n_bootstrap: int, contract: Any = None) -> list[Gate]:
    """The champion/challenger gates (module docstring, step 5): the champion package loaded and verified as
    the service loads it, both scored with ONNX on the challenger's test split."""
    from .gates import CHAMPION_PREFIX, champion_challenger_gates, contract_diff
    from .release import TestSplit, columns_for, load_verified

    name = f"{CHAMPION_PREFIX}: champion {champion}"
    try:
        pa = load_verified(champion)
    except WorkbenchError as exc:
        return [Gate(name, "does not verify", "the production package verifies", "fail",
                     f"the champion could not be loaded to compare with: {exc.message}")]
    champ_inputs = [i.model_dump() for i in pa.config.inputs]
    specs = {c.name: c for c in getattr(contract, "columns", None) or []}
    chal_rows = [{**dict(i), "nullable": bool(specs[i["name"]].nullable),
                  "categories": specs[i["name"]].categories if i["kind"] == "categorical" else None}
                 if i["name"] in specs else dict(i) for i in challenger_inputs]  # as serving.json holds them
    diff = contract_diff(champ_inputs, chal_rows)
    if pa.config.task != task.name or (frames.classes is not None
                                       and list(pa.config.classes or []) != list(frames.classes)):
        return [Gate(name, f"{pa.config.task} {list(pa.config.classes or [])}", f"{task.name} {frames.classes}",
                     "fail", "the champion answers a different task or set of classes: the two cannot be compared "
                             "on the primary metric")]
    split = TestSplit(X=frames.X_test, y=frames.y_test, task=task.name, raw=raw_test, rows=frames.test_rows)
    cols, from_raw, missing = columns_for(champ_inputs, split)
    if missing:
        return [Gate(name, f"missing inputs: {', '.join(missing)}", "the champion can score the test split", "fail",
                     f"the champion's inputs {', '.join(missing)} are not in the challenger's test split (neither "
                     "its model frame nor the raw test data): the challenger cannot be shown not to be worse. "
                     f"Contract: added {diff['added'] or 'none'}, removed {diff['removed'] or 'none'}, changed "
                     f"{[c['name'] for c in diff['changed']] or 'none'}", figures=diff)]
    a = pa.scorer.scores(cols)
    b = challenger.scores({c: frames.X_test[c].tolist() for c in frames.X_test.columns
                           if c in {i["name"] for i in challenger_inputs}})
    champ_row = {k: [None if (isinstance(v[0], float) and v[0] != v[0]) or v[0] == "" else v[0]]
                 for k, v in ((k, [cols[k][0]]) for k in cols)}
    p99a, p99b = paired_latency(pa.scorer, champ_row, challenger, row, n=latency_calls)
    sensitive = frames.sensitive_test if len(frames.sensitive_test.columns) else None
    fairness = None
    if sensitive is not None:
        fa = task.fairness(frames.y_test, a, sensitive, brief=brief, n_bootstrap=n_bootstrap, seed=seed,
                           classes=frames.classes).to_dict()
        fb = task.fairness(frames.y_test, b, sensitive, brief=brief, n_bootstrap=n_bootstrap, seed=seed,
                           classes=frames.classes).to_dict()
        fairness = (fa, fb)
    d = brief.deployment
    note = f"champion inputs {', '.join(from_raw)} taken from the raw test rows" if from_raw else ""
    return champion_challenger_gates(task=task, y=frames.y_test, champion=a, challenger=b, primary=primary,
                                     metric_tolerance=d.metric_tolerance, guardrail_tolerance=d.guardrail_tolerance,
                                     latency_ratio=d.latency_ratio, champion_tag=champion,
                                     threshold=brief.threshold, classes=frames.classes, fairness=fairness,
                                     latency_p99=(p99a, p99b), contract=diff,
                                     n_bootstrap=min(n_bootstrap, 200), seed=seed, note=note)


def evidence_gate(problems: list[tuple[str, str]], n_files: int) -> Gate:
    """``integrity: evidence``: every file the run recorded still has its sha256, none is missing or added."""
    if not problems:
        return Gate("integrity: evidence", f"{n_files} files verified", "sha256 as recorded when the run ended",
                    "pass", "every report, artifact, the frozen brief and results.json match the run's evidence")
    names = ", ".join(f for f, _ in problems)
    return Gate("integrity: evidence", names, "sha256 as recorded when the run ended", "fail",
                "; ".join(f"{f}: {why}" for f, why in problems))


def leakage_gate(report: dict) -> Gate:
    """``leakage``: fails when the (verified) leakage report blocks on a column not acknowledged by the brief."""
    blocking = list(report.get("blocking") or [])
    warn = [s.get("column") or s.get("signal") for s in report.get("signals") or [] if s.get("level") == "warn"]
    return Gate("leakage", ", ".join(map(str, blocking)) or "none blocking", "no blocking signal",
                "fail" if blocking else "pass",
                (f"blocking: {', '.join(map(str, blocking))}; acknowledge a column in the brief's leakage section "
                 "with a reason only if it is known at prediction time" if blocking else
                 "warnings: " + ", ".join(map(str, warn)) if warn else "no leakage signal"))


def _leakage(saved: dict | None, reports: dict, brief: Any) -> Gate:
    """The leakage gate, recomputed from the verified audit and SHAP reports and the recomputed held-out metrics
    with the frozen brief's acknowledgements (the run's own leakage.json only when recomputing is impossible)."""
    try:
        from ..evaluation.leakage import leakage_report

        if reports.get("leaderboard") is None:
            raise ValueError("no verified leaderboard")
        gate = leakage_gate(leakage_report(reports.get("audit"), reports.get("shap"), reports["leaderboard"],
                                           brief).to_dict())
        gate.detail = f"recomputed: {gate.detail}"
        return gate
    except Exception as exc:  # noqa: BLE001 - fall back to the verified report, saying so
        if saved is None:
            return Gate("leakage", "not evaluated", "no blocking signal", "fail",
                        f"reports/leakage.json did not verify and could not be recomputed ({exc})")
        gate = leakage_gate(saved)
        gate.detail = f"from the run's verified leakage.json (recomputing failed: {exc}); {gate.detail}"
        return gate


@dataclass
class RecomputedEvidence:
    """The gates recomputed from ``artifacts/predictions.parquet`` (see :func:`recompute_evidence`)."""

    predictions_gate: Gate
    gates: list[Gate]
    metrics: dict[str, dict] = field(default_factory=dict)
    fairness: dict | None = None
    selected_scores: np.ndarray | None = None


def _scores_of(pred: Any, name: str, task: str, n_classes: int | None) -> np.ndarray | None:
    cols = set(pred.columns)
    if task == "binary_classification":
        return pred.get_column(f"proba_{name}").to_numpy().astype(np.float64) if f"proba_{name}" in cols else None
    if task == "multiclass_classification":
        names = [f"proba_{name}_{k}" for k in range(n_classes or 0)]
        if not names or not set(names) <= cols:
            return None
        return np.column_stack([pred.get_column(c).to_numpy().astype(np.float64) for c in names])
    return pred.get_column(f"pred_{name}").to_numpy().astype(np.float64) if f"pred_{name}" in cols else None


def recompute_evidence(pred: Any, *, frames: Any, brief: Any, selected: str | None, primary: str, n_bootstrap: int,
                       seed: int, audit: dict | None = None) -> RecomputedEvidence:
    """Recompute the baseline, success, fairness and kill-criteria gates from the held-out predictions.

    The predictions must be of the test split the verified data gives (same rows, same targets, same sensitive
    groups); the selected candidate is compared with the strongest baseline of the task on the held-out split,
    with the frozen brief's margin, threshold and fairness thresholds. Nothing a report says about itself is used.
    """
    from ..experiments import evaluate_kill_criteria
    from ..modeling import candidates_for
    from .fairness_gate import fairness_gates

    task = brief.task_spec
    bad = [Gate(f"beats baseline ({primary})", "not evaluated", None, "fail", "no verified held-out predictions"),
           Gate(f"success threshold ({primary})", "not evaluated", None, "fail", "no verified held-out predictions"),
           Gate("fairness", "not evaluated", None, "fail", "no verified held-out predictions"),
           Gate("kill criteria", "not evaluated", "none triggered", "fail", "no verified held-out predictions")]
    name = "evidence: held-out predictions"
    if pred is None:
        return RecomputedEvidence(Gate(name, "missing or edited", "the run's test split", "fail",
                                       "artifacts/predictions.parquet did not verify against the run's evidence"),
                                  bad)
    n_classes = len(frames.classes) if frames.classes is not None else None
    mismatch = _predictions_mismatch(pred, frames)
    if mismatch:
        return RecomputedEvidence(Gate(name, "mismatch", "the run's test split", "fail", mismatch), bad)
    y = frames.y_test
    scores = {m: s for m in [*task.baselines, *candidates_for(task.name)]
              if (s := _scores_of(pred, m, task.name, n_classes)) is not None}
    metrics = {m: dict(task.evaluate(y, s, primary=primary, threshold=brief.threshold,
                                     classes=frames.classes).metrics) for m, s in scores.items()}
    baselines = [b for b in task.baselines if b in metrics]
    if not selected or selected not in metrics or not baselines:
        what = (f"no predictions of the selected model {selected}" if selected not in metrics
                else "no baseline predictions")
        return RecomputedEvidence(Gate(name, "incomplete", "the selected model and the baselines", "fail", what),
                                  bad, metrics)
    gate = Gate(name, f"{len(y)} rows, {len(scores)} models", "the run's test split", "pass",
                "rows, targets and sensitive groups match the verified data; every verdict below is recomputed "
                "from these predictions with the frozen brief's thresholds")
    best = baselines[0]
    for b in baselines[1:]:
        if task.better(metrics[b][primary], metrics[best][primary], primary):
            best = b
    margin = brief.baseline.min_improvement
    comparisons = {m: task.compare(metrics[m], metrics[best], primary=primary, min_improvement=margin)
                   for m in metrics if m not in task.baselines}
    gates = [baseline_gate({"comparisons": comparisons, "best_baseline": best}, selected),
             success_gate(metrics[selected][primary], brief.success.threshold, primary,
                          task.greater_is_better(primary))]
    gates[0].detail += " (recomputed from the predictions; the bar is the strongest baseline on the held-out split)"
    sensitive = pred.select(list(frames.sensitive_test.columns)).to_pandas() if len(frames.sensitive_test.columns) \
        else frames.sensitive_test
    fairness = task.fairness(y, scores[selected], sensitive, brief=brief, n_bootstrap=n_bootstrap, seed=seed,
                             classes=frames.classes)
    fdict = fairness.to_dict()
    gates.extend(fairness_gates(fdict))
    board = SimpleNamespace(primary=primary, min_improvement=margin, best_baseline=best, selected=selected,
                            comparisons=comparisons, task=task.name,
                            results={selected: SimpleNamespace(test=SimpleNamespace(metrics=metrics[selected]))})
    quality = ((audit or {}).get("quality") or {}).get("total")
    kill = evaluate_kill_criteria(brief, board=board, quality_total=quality, fairness_verdicts=fairness.gaps_table())
    triggered = [c["id"] for c in kill.triggered]
    gates.insert(0, Gate("kill criteria", ", ".join(map(str, triggered)) or "none triggered", "none triggered",
                         "fail" if triggered else "pass",
                         f"recomputed: {kill.verdict}" + ("; " + "; ".join(c["evidence"] for c in kill.criteria
                                                                         if c["triggered"]) if triggered else "")))
    return RecomputedEvidence(gate, gates, metrics, fdict, scores[selected])


def _predictions_mismatch(pred: Any, frames: Any) -> str | None:
    """Why the predictions are not of the verified test split (rows, targets, sensitive groups), or None."""
    if pred.height != len(frames.y_test):
        return f"{pred.height} prediction rows, the test split has {len(frames.y_test)}"
    for col in ("row", "y_true", *frames.sensitive_test.columns):
        if col not in pred.columns:
            return f"column {col!r} is missing"
    if not np.array_equal(pred.get_column("row").to_numpy(), np.asarray(frames.test_rows)):
        return "the row numbers differ from the test split's"
    y_pred, y = pred.get_column("y_true").to_numpy(), np.asarray(frames.y_test)
    same = (np.allclose(y_pred.astype(np.float64), y.astype(np.float64), rtol=0, atol=1e-12)
            if y.dtype.kind == "f" else np.array_equal(y_pred.astype(np.int64), y.astype(np.int64)))
    if not same:
        return "y_true differs from the test split's target"
    for col in frames.sensitive_test.columns:
        a = pred.get_column(col).cast(str).to_list()
        b = [str(v) for v in frames.sensitive_test[col].tolist()]
        if a != b:
            return f"sensitive column {col!r} differs from the test split's groups"
    return None


def _model_matches_predictions(model: Any, task: Any, frames: Any, contract: Any, saved: np.ndarray | None) -> Gate:
    """The loaded model, scored on the verified test split, gives the predictions the gates were computed from."""
    name = "evidence: predictions are the model's"
    if saved is None:
        return Gate(name, "not evaluated", "max |diff| <= 1e-6", "fail", "no verified predictions of the model")
    live = np.asarray(task.scores(model, frames.X_test[list(contract.features)]), dtype=np.float64)
    diff = float(np.nanmax(np.abs(live - saved))) if live.size else 0.0
    ok = live.shape == saved.shape and diff <= 1e-6
    return Gate(name, f"max |diff| {diff:.1e}", "max |diff| <= 1e-6", "pass" if ok else "fail",
                "the model artifact rescored on the test split reproduces artifacts/predictions.parquet" if ok else
                "the saved predictions are not this model's: the gates' evidence does not describe it")


def _with_recomputed_metrics(leaderboard: dict | None, metrics: dict[str, dict]) -> dict | None:
    """The leaderboard as the card shows it, with every held-out figure replaced by the recomputed one."""
    if leaderboard is None:
        return None
    out = copy.deepcopy(leaderboard)
    for name, m in metrics.items():
        test = ((out.get("models") or {}).get(name) or {}).get("test")
        if isinstance(test, dict):
            test["metrics"] = {**(test.get("metrics") or {}), **m}
    return out


def register(c: Certification, *, attempt: Path, by: str | None = None) -> str:
    """Save a passed certification as a model package in the BentoML model store and append the ledger: the
    first model of its brief is released to production (the pointer moves), a later one is staged (module
    docstring, step 6). Returns the tag; ``c.extras["stage"]`` says where it went."""
    if not c.passed:
        raise WorkbenchError(f"run {c.run_id} did not pass its gates: nothing to register")
    brief, manifest, reports = c.brief, c.manifest, c.reports
    name = model_name_for(brief.name)
    placeholder = f"{name} (the version is this package's tag: `workbench models`)"
    card = model_card_markdown(brief=brief.to_dict(), manifest=manifest, leaderboard=reports["leaderboard"],
                               fairness=reports["fairness"], shap=reports["shap"], audit=reports["audit"],
                               parity=c.parity, gates=c.gates.to_dict(), tag=placeholder, onnx=c.export_info)
    serving = serving_config(contract=c.contract.to_dict(), inputs=c.scorer_inputs,
                             onnx_sha256=c.export_info["sha256"], threshold=brief.threshold, run_id=c.run_id,
                             model_name=name, task=brief.task, classes=c.extras.get("classes"),
                             target_std=c.extras.get("target_std"),
                             title=f"{brief.name}: {brief.task.replace('_', ' ')} of {brief.target.column}",
                             description=brief.objective)
    primary = c.extras["primary"]
    files: dict[str, Any] = {
        P.ONNX: c.onnx_bytes, P.SERVING: serving, P.CONTRACT: c.contract.to_dict(),
        P.PARITY: c.parity, P.GATES: c.gates.to_dict(), P.CARD_MD: card,
        P.CARD_HTML: markdown_to_html(card, title=f"Model card: {brief.name}"),
        P.LEADERBOARD: reports["leaderboard"], P.FAIRNESS: reports["fairness"], P.PROFILE: c.profile,
        P.MONITORING: {**brief.monitoring.model_dump(), "task": brief.task, "classes": c.extras.get("classes"),
                       "primary_metric": primary, "certified_value": c.extras["certified_value"],
                       "sensitive_features": brief.sensitive_features,
                       "sensitive_bins": {k: v.model_dump() for k, v in brief.sensitive_bins.items()},
                       "target": brief.target.column,
                       "positive_label": None if brief.target.positive_label is None
                       else str(brief.target.positive_label),
                       "threshold": brief.threshold, "fairness": brief.fairness.model_dump(),
                       "deployment": brief.deployment.model_dump(), "min_rows": brief.monitoring.min_rows},
    }
    fairness = reports["fairness"]
    metadata = {
        "run_id": c.run_id, "brief": brief.name, "brief_sha256": (manifest.get("brief") or {}).get("sha256"),
        "task": brief.task, "data_sha256": c.data_sha256, "model": c.selected, "metrics": c.extras["metrics"],
        "primary_metric": primary,
        "fairness_gaps": [{k: g.get(k) for k in ("feature", "metric", "value", "ci_low", "ci_high", "threshold",
                                                  "verdict")} for g in fairness["gaps"]],
        "parity": {k: c.parity.get(k) for k in ("passed", "label_agreement", "max_abs_diff", "p99_abs_diff",
                                                 "tolerance")},
        "onnx_sha256": c.export_info["sha256"], "opset": c.export_info["opset"], "features": c.contract.features,
        "contract": {col.name: f"{col.role}:{col.kind}{':sensitive' if col.sensitive else ''}"
                     for col in c.contract.columns},
        "git_commit": manifest["git"].get("commit"),
    }
    tag = save_model_package(files, name=name, labels={"stage": "certified", "brief": brief.name,
                                                        "run": c.run_id[:60]}, metadata=metadata)
    from .store import get_model

    package_sha = (get_model(tag).info.metadata or {}).get("package_sha256")
    card = card.replace(placeholder, tag)
    details = {"sha256": c.export_info["sha256"], "package_sha256": package_sha, "run_id": c.run_id,
               "brief": brief.name, "model": c.selected, "attempt": str(attempt)}
    with ledger.transition():  # the ledger lines and the pointer move together, never interleaved with another
        from ..serving.pointer import production_pointer
        from .release import FIRST_MODEL, champion_for

        ledger.record("certified", tag, reason="passed every promotion gate", by=by, from_stage=None, **details)
        champion = champion_for(brief.name)  # read again under the lock: what certify compared may have moved
        if champion is None:
            current = production_pointer()
            if current and current.get("tag"):  # another brief's model: one production model per home
                ledger.record("retired", current["tag"], reason=f"replaced in production by {tag} (brief "
                              f"{brief.name})", by=by, brief=current.get("brief"), replaced_by=tag)
            ledger.record("released", tag, reason=FIRST_MODEL, by=by, from_stage="certified", **details)
            ledger.set_production(tag, sha256=c.export_info["sha256"], run_id=c.run_id, brief=brief.name,
                                  package_sha256=package_sha)
            c.extras["stage"] = "production"
        elif champion != c.extras.get("champion"):
            ledger.record("staged", tag, reason=f"production changed to {champion} after the champion/challenger "
                          f"gate compared with {c.extras.get('champion')}: compare again before releasing", by=by,
                          from_stage="certified", champion=champion, **details)
            c.extras["stage"] = "staging"
        else:
            ledger.record("staged", tag, reason=f"passed the champion/challenger gate against {champion}", by=by,
                          from_stage="certified", champion=champion, **details)
            c.extras["stage"] = "staging"
    atomic_write_text(attempt / P.CARD_MD, card)
    atomic_write_text(attempt / P.CARD_HTML, markdown_to_html(card, title=f"Model card: {brief.name}"))
    return tag


def attempt_folder(promotions_dir: Path, run_id: str) -> Path:
    """A new, unique attempt folder ``<time>-<run-id>[-N]`` (created exclusively: two concurrent promotions of
    the same run in the same second get two folders)."""
    promotions_dir.mkdir(parents=True, exist_ok=True)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    base = f"{stamp}-{run_id}"
    for i in range(1, 10_000):
        path = promotions_dir / (base if i == 1 else f"{base}-{i}")
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise WorkbenchError(f"could not create a unique attempt folder under {promotions_dir}")


def promote(ref: str = "latest", *, cfg: Settings | None = None, latency_calls: int = 1000,
            on_step: Callable[[str], None] | None = None, brief: str | None = None,
            by: str | None = None) -> PromotionResult:
    """Promote a run's selected candidate (see the module docstring). Returns the result; never raises for a
    failed gate (the result says so), raises :class:`WorkbenchError` when the run cannot be evaluated at all.
    ``latest`` is the newest promotable run of ``brief`` (a name or the brief's YAML; default: the only brief
    with runs)."""
    step = on_step or (lambda msg: None)
    cfg = cfg or _settings()
    c = certify(ref, cfg=cfg, latency_calls=latency_calls, on_step=step, brief=brief)
    report = c.gates
    attempt = attempt_folder(cfg.promotions_dir, c.run_id)
    report.save(attempt / "gates.json")
    report.save_html(attempt / "gates.html")
    if c.parity:
        atomic_write_text(attempt / "parity.json", json.dumps(c.parity, indent=2) + "\n")
    tag = None
    if c.passed:
        step("registering in the BentoML model store")
        tag = register(c, attempt=attempt, by=by)
    else:
        ledger.append({"action": "refused", "run_id": c.run_id, "brief": c.brief.name, "model": c.selected,
                       "failed_gates": [g.name for g in report.failed], "attempt": str(attempt),
                       "by": ledger.who(by)})
    stage = c.extras.get("stage") if tag else None
    atomic_write_text(attempt / "result.json", json.dumps({"run_id": c.run_id, "promoted": tag is not None,
                                                           "tag": tag, "stage": stage,
                                                           "champion": c.extras.get("champion")},
                                                          indent=2) + "\n")
    return PromotionResult(run_id=c.run_id, gates=report, attempt_dir=attempt, tag=tag, parity=c.parity,
                           stage=stage, champion=c.extras.get("champion"))
