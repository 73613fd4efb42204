"""Promotion: certify a run's selected model through the go/no-go gates and register it, or refuse.

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
import hashlib
import json
import logging
import pickle
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .._report import atomic_write_text
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

__all__ = ["PromotionResult", "promote", "measure_latency"]

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


def measure_latency(scorer: Any, row: dict[str, list], *, n: int = 1000, warmup: int = 50) -> tuple[float, float]:
    """p50 and p99 (ms) of single-row ``scorer.predict_proba`` calls."""
    for _ in range(warmup):
        scorer.predict_proba(row)
    times = np.empty(n)
    for i in range(n):
        t = time.perf_counter_ns()
        scorer.predict_proba(row)
        times[i] = time.perf_counter_ns() - t
    return float(np.percentile(times, 50) / 1e6), float(np.percentile(times, 99) / 1e6)


def _read(run_dir: Path, name: str) -> dict:
    p = run_dir / "reports" / f"{name}.json"
    if not p.exists():
        raise RunError(f"run {run_dir.name} has no reports/{name}.json", hint="was the prototype phase run?")
    return json.loads(p.read_text())


def promote(ref: str = "latest", *, cfg: Settings | None = None, latency_calls: int = 1000,
            on_step: Callable[[str], None] | None = None) -> PromotionResult:
    """Promote a run's selected candidate (see the module docstring). Returns the result; never raises for a
    failed gate (the result says so), raises :class:`WorkbenchError` when the run cannot be evaluated at all."""
    from ..brief import Brief
    from ..data import DataContract, load_dataset
    from ..experiments import model_frames
    from ..export import export_onnx
    from ..export.parity import parity_certificate
    from ..runs import read_manifest, resolve_run
    from ..serving.scorer import OnnxScorer

    step = on_step or (lambda msg: None)
    cfg = cfg or _settings()
    run_dir = resolve_run(ref, cfg.runs_dir)
    manifest = read_manifest(run_dir)
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
    art = manifest.get("artifacts", {}).get(f"model_{selected}")
    blob = (run_dir / art["path"]).read_bytes() if art and (run_dir / art["path"]).exists() else None
    actual = hashlib.sha256(blob).hexdigest() if blob is not None else None
    gates.append(integrity_gate(f"model artifact model_{selected}", art and art["sha256"], actual))
    brief_info = manifest["brief"]
    brief = Brief.model_validate({**brief_info["content"], "source": brief_info["path"]})
    params = manifest["parameters"].get("prototype", {})
    data = load_dataset(brief, sample_rows=int(params.get("sample_rows", 0)), seed=int(params.get("seed", 42)))
    for split, src in data.sources.items():
        gates.append(integrity_gate(f"{split} data", manifest["data"].get(split, {}).get("sha256"), src.sha256))
    contract = DataContract.load(run_dir / "reports" / "contract.json")
    leaderboard, fairness = _read(run_dir, "leaderboard"), _read(run_dir, "fairness")
    audit = json.loads((run_dir / "reports" / "audit.json").read_text()) if (run_dir / "reports" / "audit.json").exists() else None
    shap = _read_optional(run_dir, "shap")

    gates.append(baseline_gate(leaderboard, selected))
    sel_metrics = leaderboard["models"][selected]["test"]
    primary = leaderboard["primary"]
    gates.append(success_gate(sel_metrics["metrics"][primary], brief.success.threshold, primary,
                              sel_metrics.get("greater_is_better", {}).get(primary, True)))
    gates.extend(fairness_gates(fairness))

    export_info: dict = {}
    cert: dict | None = None
    onnx_bytes = None
    scorer_inputs = None
    if actual is not None and art and actual == art["sha256"]:
        model = pickle.loads(blob)  # noqa: S301 - verified against the sha256 the run recorded
        step("exporting to ONNX")
        try:
            export = export_onnx(model, features=contract.features, numeric=contract.numeric_features)
        except WorkbenchError as exc:
            gates.append(Gate("ONNX export", "failed", "converts", "fail", exc.message))
            export = None
        if export is not None:
            onnx_bytes, scorer_inputs, export_info = export.model_bytes, export.inputs, export.to_dict()
            frames = model_frames(data, brief, contract)
            step(f"certifying parity on {len(frames.y_test)} test rows + edge cases")
            certificate = parity_certificate(model, export, frames.X_test, threshold=brief.target.decision_threshold,
                                             contract=contract)
            cert = certificate.to_dict()
            gates.append(parity_gate(cert))
            step("measuring single-row latency")
            scorer = OnnxScorer(onnx_bytes, scorer_inputs)
            row = {c: [frames.X_test[c].iloc[0]] for c in contract.features}
            row = {c: [None if (isinstance(v[0], float) and np.isnan(v[0])) or v[0] == "" else v[0]]
                   for c, v in row.items()}
            p50, p99 = measure_latency(scorer, row, n=latency_calls)
            gates.append(latency_gate(p99, p50, brief.latency_budget_ms, latency_calls))
            gates.append(size_gate(export.size_bytes))
            step("profiling the reference data for drift checks")
            live_proba = scorer.predict_proba({c: frames.X_test[c].tolist() for c in contract.features})
            profile = build_profile(data.train, features=contract.features, numeric=contract.numeric_features,
                                    probabilities=live_proba, threshold=brief.target.decision_threshold,
                                    seed=int(params.get("seed", 42)),
                                    source={"run_id": run_id, "split": "train", "predictions": "test (ONNX)"})
    else:
        gates.append(Gate("ONNX export", "skipped", "a verified model artifact", "fail",
                          "the model artifact is missing or its sha256 does not match: it was not unpickled"))

    report = GateReport(run_id=run_id, model=selected, gates=gates)
    stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%d-%H%M%S")
    attempt = cfg.promotions_dir / f"{stamp}-{run_id}"
    attempt.mkdir(parents=True, exist_ok=True)
    report.save(attempt / "gates.json")
    report.save_html(attempt / "gates.html")
    if cert:
        atomic_write_text(attempt / "parity.json", json.dumps(cert, indent=2) + "\n")

    tag = None
    name = model_name_for(brief.name)
    if report.passed and onnx_bytes is not None and cert is not None:
        card = model_card_markdown(brief=brief.to_dict(), manifest=manifest, leaderboard=leaderboard,
                                   fairness=fairness, shap=shap, audit=audit, parity=cert, gates=report.to_dict(),
                                   tag=f"{name} (the version is this package's tag: `workbench models`)", onnx=export_info)
        serving = serving_config(contract=contract.to_dict(), inputs=scorer_inputs, onnx_sha256=export_info["sha256"],
                                 threshold=brief.target.decision_threshold, run_id=run_id, model_name=name)
        step("registering in the BentoML model store")
        files: dict[str, Any] = {
            "model.onnx": onnx_bytes, "serving.json": serving, "contract.json": contract.to_dict(),
            "parity.json": cert, "gates.json": report.to_dict(), "model_card.md": card,
            "model_card.html": markdown_to_html(card, title=f"Model card: {brief.name}"),
            "leaderboard.json": leaderboard, "fairness.json": fairness, "reference_profile.json": profile,
            "monitoring.json": {**brief.monitoring.model_dump(), "primary_metric": primary,
                                "certified_value": sel_metrics["metrics"][primary],
                                "sensitive_features": brief.sensitive_features, "target": brief.target.column,
                                "positive_label": str(brief.target.positive_label),
                                "threshold": brief.target.decision_threshold,
                                "fairness": brief.fairness.model_dump()},
        }
        metadata = {
            "run_id": run_id, "brief": brief.name, "brief_sha256": brief_info.get("sha256"),
            "data_sha256": {k: v.sha256 for k, v in data.sources.items()}, "model": selected,
            "metrics": sel_metrics["metrics"], "primary_metric": primary,
            "fairness_gaps": [{k: g[k] for k in ("feature", "metric", "value", "ci_low", "ci_high", "threshold",
                                                   "verdict")} for g in fairness["gaps"]],
            "parity": {k: cert[k] for k in ("passed", "label_agreement", "max_abs_diff", "p99_abs_diff", "tolerance")},
            "onnx_sha256": export_info["sha256"], "opset": export_info["opset"], "features": contract.features,
            "contract": {c.name: f"{c.role}:{c.kind}{':sensitive' if c.sensitive else ''}" for c in contract.columns},
            "git_commit": manifest["git"].get("commit"),
        }
        tag = save_model_package(files, name=name, labels={"stage": "certified", "brief": brief.name,
                                                            "run": run_id[:60]}, metadata=metadata)
        card = card.replace(f"{name} (the version is this package's tag: `workbench models`)", tag)
        ledger.append({"action": "promote", "tag": tag, "sha256": export_info["sha256"], "run_id": run_id,
                       "brief": brief.name, "model": selected, "attempt": str(attempt)})
        ledger.set_production(tag, sha256=export_info["sha256"], run_id=run_id, brief=brief.name)
        atomic_write_text(attempt / "model_card.md", card)
        atomic_write_text(attempt / "model_card.html", markdown_to_html(card, title=f"Model card: {brief.name}"))
    else:
        ledger.append({"action": "refused", "run_id": run_id, "brief": brief.name, "model": selected,
                       "failed_gates": [g.name for g in report.failed], "attempt": str(attempt)})
    atomic_write_text(attempt / "result.json", json.dumps({"run_id": run_id, "promoted": tag is not None, "tag": tag},
                                                          indent=2) + "\n")
    return PromotionResult(run_id=run_id, gates=report, attempt_dir=attempt, tag=tag, parity=cert)


def _read_optional(run_dir: Path, name: str) -> dict | None:
    p = run_dir / "reports" / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None
