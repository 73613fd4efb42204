"""Promotion: certify a run's selected model through the go/no-go gates and register it, or refuse.

Two parts, as TFX's Evaluator and Pusher: :func:`certify` is free of side effects outside memory (it reads the
run folder and the data, exports and measures, and returns a :class:`Certification`); :func:`register` is the
only code that touches the model store, the ledger and the production pointer. :func:`promote` runs both and
writes the attempt folder.

Steps (each hand-off checked against what the previous stage certified):

1. the run must have succeeded; its model artifact and data must match the sha256 in its manifest (an
   artifact is unpickled only after its hash is verified -- and only here, never in the serving path);
2. export to ONNX (skl2onnx) and certify parity with the notebook model on the whole test split + edge cases;
3. measure single-row latency of the ONNX predict path;
4. evaluate the gates: integrity, kill criteria, beats the baseline, success threshold, fairness (upper
   confidence bounds), parity, latency; model size is reported;
5. write the attempt (gate report, parity certificate, model card) under ``promotions/``; if every gate passes,
   save the model package to the BentoML model store, append the ledger and move the production pointer.

A refused promotion registers nothing and moves nothing; it is still written to the ledger as ``refused``.
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .._report import atomic_write_text
from ..artifacts import ModelPackage as P
from ..config import Settings
from ..config import settings as _settings
from ..errors import RunError, WorkbenchError
from ..monitoring.profile import build_profile
from . import ledger
from .card import markdown_to_html, model_card_markdown
from .gates import (
    Gate,
    GateReport,
    baseline_gate,
    fairness_gates,
    integrity_gate,
    latency_gate,
    parity_gate,
    size_gate,
    success_gate,
)
from .store import model_name_for, save_model_package, serving_config

__all__ = ["Certification", "PromotionResult", "certify", "register", "promote", "measure_latency"]

log = logging.getLogger(__name__)


@dataclass
class PromotionResult:
    run_id: str
    gates: GateReport
    attempt_dir: Path
    tag: str | None = None
    parity: dict | None = None

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
            on_step: Callable[[str], None] | None = None) -> Certification:
    """Evaluate every gate for a run's selected candidate; export, certify parity, measure latency, profile.

    Reads the run folder and the data; writes nothing. Raises :class:`WorkbenchError` when the run cannot be
    evaluated at all; a failed gate is in the returned certification, not raised.
    """
    from ..artifacts import RunFolder
    from ..data import load_dataset
    from ..experiments import model_frames
    from ..export import export_onnx
    from ..export.parity import parity_certificate
    from ..runs import resolve_run
    from ..serving.scorer import OnnxScorer

    step = on_step or (lambda msg: None)
    cfg = cfg or _settings()
    run = RunFolder(resolve_run(ref, cfg.runs_dir))
    manifest = run.manifest()
    run_id = manifest["run_id"]
    gates: list[Gate] = []
    if manifest["status"] != "succeeded":
        raise WorkbenchError(f"run {run_id} ended '{manifest['status']}', only a succeeded run can be promoted",
                             hint="fix the run (see `workbench show`) and run it again")
    proto = manifest.get("results", {}).get("prototype") or {}
    selected = proto.get("selected")
    if not selected:
        raise WorkbenchError(f"run {run_id} has no selected candidate", hint="run the prototype phase")
    step(f"run {run_id}: selected candidate {selected}")
    kill = manifest.get("gates", {}).get("kill_criteria")
    gates.append(Gate("kill criteria", "none triggered" if kill and kill["passed"] else kill and kill.get("value"),
                      "none triggered", "pass" if kill and kill["passed"] else "fail",
                      (kill or {}).get("message", "no kill-criteria verdict in the run")))

    # -- integrity: the model artifact and the data are what the run certified
    blob, art, actual = run.model_bytes(selected, manifest)
    gates.append(integrity_gate(f"model artifact model_{selected}", art and art["sha256"], actual))
    brief = run.brief(manifest)
    task = brief.task_spec
    params = manifest["parameters"].get("prototype", {})
    data = load_dataset(brief, sample_rows=int(params.get("sample_rows", 0)), seed=int(params.get("seed", 42)))
    for split, src in data.sources.items():
        gates.append(integrity_gate(f"{split} data", manifest["data"].get(split, {}).get("sha256"), src.sha256))
    contract = run.contract()
    leaderboard, fairness = run.report("leaderboard"), run.report("fairness")
    reports = {"leaderboard": leaderboard, "fairness": fairness, "audit": run.report("audit", required=False),
               "shap": run.report("shap", required=False)}

    gates.append(baseline_gate(leaderboard, selected))
    sel_metrics = leaderboard["models"][selected]["test"]
    primary = leaderboard["primary"]
    gates.append(success_gate(sel_metrics["metrics"][primary], brief.success.threshold, primary,
                              task.greater_is_better(primary)))
    gates.extend(fairness_gates(fairness))

    cert_obj = Certification(run_id=run_id, brief=brief, manifest=manifest, selected=selected,
                             gates=GateReport(run_id=run_id, model=selected, gates=gates), contract=contract,
                             reports=reports, data_sha256={k: v.sha256 for k, v in data.sources.items()})
    if not (actual is not None and art and actual == art["sha256"]):
        gates.append(Gate("ONNX export", "skipped", "a verified model artifact", "fail",
                          "the model artifact is missing or its sha256 does not match: it was not unpickled"))
        return cert_obj
    model = pickle.loads(blob)  # noqa: S301 - verified against the sha256 the run recorded
    step("exporting to ONNX")
    try:
        export = export_onnx(model, features=contract.features, numeric=contract.numeric_features, task=task.name)
    except WorkbenchError as exc:
        gates.append(Gate("ONNX export", "failed", "converts", "fail", exc.message))
        return cert_obj
    frames = model_frames(data, brief, contract)
    step(f"certifying parity on {len(frames.y_test)} test rows + edge cases")
    certificate = parity_certificate(model, export, frames.X_test, task=task.name, threshold=brief.threshold,
                                     classes=frames.classes, target_std=frames.target_std, contract=contract)
    cert = certificate.to_dict()
    gates.append(parity_gate(cert))
    step("measuring single-row latency")
    scorer = OnnxScorer(export.model_bytes, export.inputs, task=task.name)
    row = {c: [frames.X_test[c].iloc[0]] for c in contract.features}
    row = {c: [None if (isinstance(v[0], float) and np.isnan(v[0])) or v[0] == "" else v[0]]
           for c, v in row.items()}
    p50, p99 = measure_latency(scorer, row, n=latency_calls)
    gates.append(latency_gate(p99, p50, brief.latency_budget_ms, latency_calls))
    gates.append(size_gate(export.size_bytes))
    step("profiling the reference data for drift checks")
    live = scorer.scores({c: frames.X_test[c].tolist() for c in contract.features})
    profile = build_profile(data.train, features=contract.features, numeric=contract.numeric_features,
                            task=task.name, scores=live, classes=frames.classes, threshold=brief.threshold,
                            seed=int(params.get("seed", 42)),
                            source={"run_id": run_id, "split": "train", "predictions": "test (ONNX)"})
    cert_obj.parity, cert_obj.onnx_bytes, cert_obj.export_info = cert, export.model_bytes, export.to_dict()
    cert_obj.scorer_inputs, cert_obj.profile = export.inputs, profile
    cert_obj.extras = {"classes": frames.classes, "target_std": frames.target_std, "primary": primary,
                       "certified_value": sel_metrics["metrics"][primary], "metrics": sel_metrics["metrics"]}
    return cert_obj


def register(c: Certification, *, attempt: Path) -> str:
    """Save a passed certification as a model package in the BentoML model store, append the ledger and move
    the production pointer. Returns the tag."""
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
                             target_std=c.extras.get("target_std"))
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
                       "threshold": brief.threshold, "fairness": brief.fairness.model_dump()},
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
    card = card.replace(placeholder, tag)
    ledger.append({"action": "promote", "tag": tag, "sha256": c.export_info["sha256"], "run_id": c.run_id,
                   "brief": brief.name, "model": c.selected, "attempt": str(attempt)})
    ledger.set_production(tag, sha256=c.export_info["sha256"], run_id=c.run_id, brief=brief.name)
    atomic_write_text(attempt / P.CARD_MD, card)
    atomic_write_text(attempt / P.CARD_HTML, markdown_to_html(card, title=f"Model card: {brief.name}"))
    return tag


def promote(ref: str = "latest", *, cfg: Settings | None = None, latency_calls: int = 1000,
            on_step: Callable[[str], None] | None = None) -> PromotionResult:
    """Promote a run's selected candidate (see the module docstring). Returns the result; never raises for a
    failed gate (the result says so), raises :class:`WorkbenchError` when the run cannot be evaluated at all."""
    step = on_step or (lambda msg: None)
    cfg = cfg or _settings()
    c = certify(ref, cfg=cfg, latency_calls=latency_calls, on_step=step)
    report = c.gates
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    attempt = cfg.promotions_dir / f"{stamp}-{c.run_id}"
    attempt.mkdir(parents=True, exist_ok=True)
    report.save(attempt / "gates.json")
    report.save_html(attempt / "gates.html")
    if c.parity:
        atomic_write_text(attempt / "parity.json", json.dumps(c.parity, indent=2) + "\n")
    tag = None
    if c.passed:
        step("registering in the BentoML model store")
        tag = register(c, attempt=attempt)
    else:
        ledger.append({"action": "refused", "run_id": c.run_id, "brief": c.brief.name, "model": c.selected,
                       "failed_gates": [g.name for g in report.failed], "attempt": str(attempt)})
    atomic_write_text(attempt / "result.json", json.dumps({"run_id": c.run_id, "promoted": tag is not None,
                                                           "tag": tag}, indent=2) + "\n")
    return PromotionResult(run_id=c.run_id, gates=report, attempt_dir=attempt, tag=tag, parity=c.parity)
