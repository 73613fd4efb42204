"""Release: staging -> production, by a human, after an integration check; champion vs challenger comparisons.

Stages and who moves a model (the ledger records every move: :mod:`workbench.registry.ledger`)
-------------------------------------------------------------------------------------------------
- ``workbench promote`` certifies a run's model and registers it. **The first model of a brief** (no production
  model of that brief yet: a fresh registry, or production holds another brief's model) is released straight
  to production -- ledger lines ``certified`` then ``released`` with the reason "first model: no champion to
  compare" -- so ``make run`` serves what it promoted, as before. **Every later promotion of the brief stops at
  staging** (``certified`` then ``staged``), after the champion/challenger gate (:mod:`workbench.registry.gates`)
  compared it with the production model on its own test split.
- :func:`release` (``workbench release <tag> --approve "reason"``) moves a staged model to production: it needs an
  approval reason, runs the integration check (:func:`integration_check`: the staged package loaded and verified
  as the service loads it, :class:`workbench.serving.predictor.Predictor`, scoring the challenger's test split,
  its answers compared with the champion's: agreement and the |delta| distribution; every record must be
  answered), then writes ``retired`` for the model it replaces and ``released`` for this one, and moves the
  production pointer, all under the ledger lock (refused if production changed since the check).
  The bounded load test against a real ``bentoml serve`` of the staged model, the release into ``shadow`` or
  ``canary`` and the service that serves two models are the serving half of issue 14 and are not here:
  ``to="shadow"``/``"canary"`` are refused with that reason until the service can honour them.
- :func:`retire` takes a staged (or shadow/canary) model out of the running; ``ledger.rollback`` returns
  production to the previous model and puts the current one back in staging.

:func:`compare` reports champion vs challenger: from the prediction log when both have logged rows (agreement on
shared request ids, |delta| distribution, rows answered by each, latency of each when the log records it), else
offline on the challenger's test split (the same figures plus each model's metrics against the labels).
:func:`models_overview` is what ``workbench models`` shows: every registered model's stage and the ledger.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._report import Report, esc, html_table
from ..config import Settings
from ..config import settings as _settings
from ..errors import WorkbenchError
from . import ledger

__all__ = ["ReleaseResult", "IntegrationReport", "ComparisonReport", "TestSplit", "release", "retire", "compare",
           "integration_check", "champion_for", "load_verified", "test_split", "answers_scores", "models_overview"]

log = logging.getLogger(__name__)

FIRST_MODEL = "first model: no champion to compare"
BATCH = 1000


# ----------------------------------------------------------------------------------------------- loading
def load_verified(tag: str) -> Any:
    """The registered package ``tag`` loaded and verified as the service loads it (package.json, ONNX sha256
    against serving.json, the store metadata and -- when it names this tag -- the production pointer; self-test).

    Raises
    ------
    WorkbenchError
        The tag is not in the store, or the package does not verify (ModelVerificationError).
    """
    from ..serving.pointer import production_pointer
    from ..serving.predictor import Predictor
    from .store import get_model

    try:
        stored = get_model(tag)
    except Exception:  # noqa: BLE001 - bentoml raises NotFound
        raise WorkbenchError(f"model {tag} is not in the model store", hint="`workbench models` lists them") from None
    resolved = str(stored.tag)
    meta = stored.info.metadata or {}
    ptr = production_pointer() or {}
    certified, package = {}, {}
    if ptr.get("tag") == resolved and ptr.get("sha256"):
        certified["the production pointer"] = str(ptr["sha256"])
    if meta.get("onnx_sha256"):
        certified["the model store metadata"] = str(meta["onnx_sha256"])
    if ptr.get("tag") == resolved and ptr.get("package_sha256"):
        package["the production pointer"] = str(ptr["package_sha256"])
    if meta.get("package_sha256"):
        package["the model store metadata"] = str(meta["package_sha256"])
    return Predictor.load(stored.path, tag=resolved, certified=certified, package_certified=package)


def _meta(tag: str) -> dict:
    from .store import get_model

    try:
        return dict(get_model(tag).info.metadata or {})
    except Exception:  # noqa: BLE001
        raise WorkbenchError(f"model {tag} is not in the model store", hint="`workbench models` lists them") from None


def _brief_of(tag: str) -> str | None:
    meta = _meta(tag)
    if meta.get("brief"):
        return str(meta["brief"])
    return (ledger.stages().get(tag) or {}).get("brief")


def champion_for(brief: str) -> str | None:
    """The production model's tag when it is a model of ``brief`` (the same brief name, so the same BentoML
    model name); None otherwise -- different briefs never compare."""
    from ..serving.pointer import production_pointer
    from .store import model_name_for

    ptr = production_pointer()
    if not ptr or not ptr.get("tag"):
        return None
    same = ptr.get("brief") == brief or str(ptr["tag"]).split(":")[0] == model_name_for(brief)
    return str(ptr["tag"]) if same else None


# ----------------------------------------------------------------------------------------------- test split
@dataclass
class TestSplit:
    """The rows a comparison scores: model-frame columns (``X``, pandas), the raw test rows (``raw``, polars, for
    inputs one model has and the other's frame lacks), the targets ``y`` (the task's encoding) and the task."""

    X: Any
    y: np.ndarray | None
    task: str
    raw: Any = None
    rows: np.ndarray | None = None
    classes: list[str] | None = None
    threshold: float | None = None
    primary: str | None = None
    sensitive: Any = None
    brief: Any = None
    source: str = ""


def test_split(tag: str, *, cfg: Settings | None = None) -> TestSplit:
    """The test split of the run that produced ``tag`` (its metadata's ``run_id``), the data verified against
    the sha256 the run recorded.

    Raises
    ------
    WorkbenchError
        The run folder is gone or the data changed since the run.
    """
    from ..artifacts import RunFolder
    from ..data import DataContract, load_dataset
    from ..experiments import model_frames

    cfg = cfg or _settings()
    meta = _meta(tag)
    run_id = meta.get("run_id")
    path = Path(cfg.runs_dir) / str(run_id)
    if not run_id or not (path / "manifest.json").is_file():
        raise WorkbenchError(f"the run of {tag} ({run_id}) is not under {cfg.runs_dir}: its test split is unknown",
                             hint="pass the records to score, or set WORKBENCH_RUNS_DIR")
    run = RunFolder(path)
    manifest = run.manifest()
    brief = run.brief(manifest)
    ev = run.evidence(manifest)
    contract = DataContract.model_validate(ev.json("reports/contract.json"))
    params = manifest["parameters"].get("prototype", {})
    data = load_dataset(brief, sample_rows=int(params.get("sample_rows", 0)), seed=int(params.get("seed", 42)))
    for split, src in data.sources.items():
        want = manifest["data"].get(split, {}).get("sha256")
        if want and want != src.sha256:
            raise WorkbenchError(f"the {split} data of run {run_id} changed since the run (sha256 {src.sha256[:12]}, "
                                 f"recorded {want[:12]})", hint="restore the data, or compare on given records")
    frames = model_frames(data, brief, contract)
    task = brief.task_spec
    primary = task.choose_metrics(frames.y_train, override=brief.success.metric or None)[0]
    return TestSplit(X=frames.X_test, y=np.asarray(frames.y_test), task=brief.task, raw=data.test,
                     rows=np.asarray(frames.test_rows), classes=frames.classes, threshold=brief.threshold,
                     primary=primary, sensitive=frames.sensitive_test, brief=brief,
                     source=f"test split of run {run_id} ({len(frames.y_test)} rows)")


def columns_for(inputs: list[dict], split: TestSplit) -> tuple[dict[str, list], list[str], list[str]]:
    """Column values for a model's ``inputs`` from the split: the model frame first, else the raw test rows.
    Returns ``(columns, from_raw, missing)``: inputs found only in the raw rows, inputs found nowhere."""
    cols: dict[str, list] = {}
    from_raw, missing = [], []
    raw_cols = set(getattr(split.raw, "columns", []) or [])
    for i in inputs:
        name = i["name"]
        if name in split.X.columns:
            cols[name] = split.X[name].tolist()
        elif name in raw_cols and split.rows is not None:
            vals = split.raw.get_column(name).gather(split.rows).to_list()
            if i["kind"] == "numeric":
                vals = [None if v is None else float(v) for v in vals]
            else:
                vals = [None if v is None else str(v) for v in vals]
            cols[name] = vals
            from_raw.append(name)
        else:
            missing.append(name)
    return cols, from_raw, missing


def _records(columns: dict[str, list], kinds: dict[str, str]) -> list[dict]:
    """JSON-ready records: NaN numerics and the missing category ``""`` become None."""
    names = list(columns)
    out = []
    for values in zip(*(columns[n] for n in names), strict=True):
        rec = {}
        for n, v in zip(names, values, strict=True):
            if kinds.get(n) == "categorical":
                rec[n] = None if v is None or v == "" else str(v)
            else:
                rec[n] = None if v is None or v != v else float(v)
        out.append(rec)
    return out


def answers_scores(predictions: list[dict], task: str, classes: list[str] | None = None
                   ) -> tuple[np.ndarray, np.ndarray | None]:
    """The task's scores and labels from the service's answers: binary (probability, label), multiclass
    ((n, K) probabilities in ``classes`` order, label), regression (prediction, None)."""
    if task == "regression":
        return np.array([p["prediction"] for p in predictions], dtype=np.float64), None
    labels = np.array([str(p["label"]) for p in predictions], dtype=object)
    if task == "multiclass_classification":
        order = classes or (list(predictions[0]["probabilities"]) if predictions else [])
        return np.array([[p["probabilities"][c] for c in order] for p in predictions], dtype=np.float64), labels
    return np.array([p["probability"] for p in predictions], dtype=np.float64), labels


def _answer_all(predictor: Any, split: TestSplit) -> tuple[list[dict], list[str], int]:
    """Every test record answered by ``predictor`` through its request path. Returns (answers, notes, failures)."""
    inputs = [i.model_dump() for i in predictor.config.inputs]
    cols, from_raw, missing = columns_for(inputs, split)
    notes = []
    if from_raw:
        notes.append(f"{predictor.tag}: {', '.join(from_raw)} taken from the raw test rows")
    if missing:
        notes.append(f"{predictor.tag}: inputs {', '.join(missing)} are not in the test split (sent as missing)")
        for n in missing:
            cols[n] = [None] * len(split.X)
    records = _records(cols, {i["name"]: i["kind"] for i in inputs})
    out: list[dict] = []
    failures = 0
    for start in range(0, len(records), BATCH):
        chunk = records[start:start + BATCH]
        try:
            out.extend(predictor.predict(chunk)["predictions"])
        except Exception as exc:  # noqa: BLE001 - counted and said: the check fails on any unanswered record
            failures += len(chunk)
            notes.append(f"{predictor.tag}: records {start}-{start + len(chunk) - 1} not answered: {exc}")
            out.extend([None] * len(chunk))  # type: ignore[list-item]
    return out, notes, failures


def _delta_figures(a: np.ndarray, b: np.ndarray) -> dict:
    d = np.abs(np.asarray(b, dtype=np.float64) - np.asarray(a, dtype=np.float64))
    if d.ndim == 2:
        d = d.max(axis=1)  # multiclass: the largest class-probability difference of each row
    if not d.size:
        return {"mean": None, "p50": None, "p90": None, "p99": None, "max": None}
    return {"mean": float(d.mean()), "p50": float(np.quantile(d, 0.5)), "p90": float(np.quantile(d, 0.9)),
            "p99": float(np.quantile(d, 0.99)), "max": float(d.max())}


def _agreement(task: str, la: Any, lb: Any, sa: np.ndarray, sb: np.ndarray, scale: float | None) -> float | None:
    if not len(sa):
        return None
    if task == "regression":
        tol = 1e-6 + 0.01 * (scale or 0.0)
        return float(np.mean(np.abs(sa - sb) <= tol))
    return float(np.mean(np.asarray(la) == np.asarray(lb)))


# ----------------------------------------------------------------------------------------------- integration
@dataclass
class IntegrationReport(Report):
    """The staged model answering the challenger's test split in-process, against the champion's answers."""

    challenger: str
    champion: str | None
    task: str
    n: int
    answered: int
    failures: int
    agreement: float | None = None
    abs_delta: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    source: str = ""
    title: str = "Release integration check"

    @property
    def passed(self) -> bool:
        return self.n > 0 and self.failures == 0 and self.answered == self.n

    def to_dict(self) -> dict:
        return {"challenger": self.challenger, "champion": self.champion, "task": self.task, "n": self.n,
                "answered": self.answered, "failures": self.failures, "agreement": self.agreement,
                "abs_delta": self.abs_delta, "passed": self.passed, "notes": self.notes, "source": self.source,
                "load_test": "not run: the bounded load test against a real `bentoml serve` is the serving half's"}

    def summary(self) -> dict:
        return {k: self.to_dict()[k] for k in ("n", "answered", "failures", "agreement", "passed")} | {
            "abs_delta_p99": self.abs_delta.get("p99"), "abs_delta_max": self.abs_delta.get("max")}

    def _html_body(self) -> str:
        css = "wb-ok" if self.passed else "wb-bad"
        rows = [{"figure": k, "value": "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)}
                for k, v in {"records": self.n, "answered": self.answered, "failures": self.failures,
                             "agreement": self.agreement, **{f"|Δ| {k}": v for k, v in self.abs_delta.items()}}.items()]
        return (f"<p>{esc(self.challenger)} vs {esc(self.champion or FIRST_MODEL)}: "
                f"<span class='{css}'>{'pass' if self.passed else 'fail'}</span> ({esc(self.source)})</p>"
                + html_table(rows) + "".join(f"<p>{esc(n)}</p>" for n in self.notes))


def integration_check(challenger: str, champion: str | None, *, split: TestSplit) -> IntegrationReport:
    """Load and verify the staged package as the service does and have it answer every record of ``split``
    (in batches, through :meth:`Predictor.predict`); with a champion, compare the answers: label agreement
    (regression: within 1% of the target's standard deviation) and the |delta| distribution of the scores."""
    pc = load_verified(challenger)
    task = pc.config.task
    classes = list(pc.config.classes or []) or None
    answers_c, notes, failures = _answer_all(pc, split)
    n = len(answers_c)
    ok_rows = [i for i, a in enumerate(answers_c) if a is not None]
    report = IntegrationReport(challenger=pc.tag, champion=champion, task=task, n=n, answered=len(ok_rows),
                               failures=failures, notes=notes, source=split.source)
    if champion is None:
        report.notes.append(FIRST_MODEL)
        return report
    pa = load_verified(champion)
    if pa.config.task != task or (task == "multiclass_classification" and list(pa.config.classes or []) != classes):
        report.notes.append(f"the champion {champion} answers a different task or classes: answers not compared")
        return report
    answers_a, notes_a, fail_a = _answer_all(pa, split)
    report.notes.extend(notes_a)
    both = [i for i in ok_rows if answers_a[i] is not None]
    sb, lb = answers_scores([answers_c[i] for i in both], task, classes)
    sa, la = answers_scores([answers_a[i] for i in both], task, classes)
    report.agreement = _agreement(task, la, lb, sa, sb, getattr(pc.config, "target_std", None))
    report.abs_delta = _delta_figures(sa, sb)
    if fail_a:
        report.notes.append(f"the champion did not answer {fail_a} records: compared on {len(both)}")
    return report


# ----------------------------------------------------------------------------------------------- release
@dataclass
class ReleaseResult:
    tag: str
    from_stage: str | None
    to_stage: str
    champion: str | None
    integration: IntegrationReport
    entry: dict

    def to_dict(self) -> dict:
        return {"tag": self.tag, "from_stage": self.from_stage, "to_stage": self.to_stage,
                "champion": self.champion, "integration": self.integration.to_dict(), "ledger": self.entry}


def release(tag: str, *, to: Literal["production", "shadow", "canary"] = "production", approve: str,
            by: str | None = None, split: TestSplit | None = None, cfg: Settings | None = None,
            percent: int | None = None) -> ReleaseResult:
    """Release a staged model to production (see the module docstring).

    Parameters
    ----------
    tag:
        The staged model (``workbench models`` lists the stages).
    to:
        ``"production"``; or ``"shadow"`` (the challenger scores every request off the answer's path) or
        ``"canary"`` (it answers ``percent`` % of requests), beside the production model: the pointer's
        ``challenger`` (:func:`workbench.registry.ledger.set_challenger`), followed by a service started with
        ``WORKBENCH_HOT_SWAP=1``, which also rolls a failing challenger back by itself.
    percent:
        The canary's share of requests (1..100).
    approve:
        Why this release is approved: required, recorded in the ledger line.
    by:
        Who approves (default: the OS user).
    split:
        The records to check on (default: the challenger's own test split, :func:`test_split`).

    Raises
    ------
    WorkbenchError
        No approval; the model is not staged; the integration check failed (nothing moved); production changed
        while the check ran.
    """
    if not (approve or "").strip():
        raise WorkbenchError(f"releasing {tag} needs an approval", hint='pass --approve "why this model may serve"')
    if to not in ("production", "shadow", "canary"):
        raise WorkbenchError(f"unknown release target {to!r}", hint="use production, shadow or canary")
    tag = str(tag)
    stage = ledger.stage_of(tag)
    if stage not in ("staging", "shadow", "canary"):
        raise WorkbenchError(f"{tag} is in {stage or 'no stage (not registered by workbench promote)'}: only a "
                             "staged model can be released", hint="`workbench models` shows every model's stage")
    brief = _brief_of(tag)
    champion = champion_for(brief) if brief else None
    split = split or test_split(tag, cfg=cfg)
    report = integration_check(tag, champion, split=split)
    if not report.passed:
        raise WorkbenchError(f"the integration check of {tag} failed: {report.answered} of {report.n} records "
                             f"answered; " + "; ".join(report.notes[:3]), hint="nothing was released")
    from ..serving.pointer import production_pointer

    meta = _meta(tag)
    if to in ("shadow", "canary"):
        entry = ledger.set_challenger(tag, mode=to, percent=percent, package_sha256=meta.get("package_sha256"),
                                      reason=approve.strip(), by=by)
        return ReleaseResult(tag=tag, from_stage=stage, to_stage=to, champion=champion, integration=report,
                             entry=entry)
    with ledger.transition():
        current = production_pointer()
        if (current or {}).get("tag") != (champion or (current or {}).get("tag")):
            raise WorkbenchError(f"production changed while {tag} was checked (now {(current or {}).get('tag')})",
                                 hint="run the release again")
        if current and current.get("tag") and current["tag"] != tag:
            ledger.record("retired", current["tag"], reason=f"replaced in production by {tag}", by=by,
                          brief=current.get("brief"), replaced_by=tag)
        entry = ledger.record("released", tag, reason=approve.strip(), by=by, sha256=meta.get("onnx_sha256"),
                              package_sha256=meta.get("package_sha256"), run_id=meta.get("run_id"), brief=brief,
                              replaces=(current or {}).get("tag"), integration=report.summary())
        ledger.set_production(tag, sha256=str(meta.get("onnx_sha256") or ""), run_id=str(meta.get("run_id") or ""),
                              brief=str(brief or ""), package_sha256=meta.get("package_sha256"))
    return ReleaseResult(tag=tag, from_stage=stage, to_stage="production", champion=champion, integration=report,
                         entry=entry)


def retire(tag: str, *, reason: str, by: str | None = None) -> dict:
    """Take a staged, shadow or canary model out of the running (a production model is replaced by a release or
    a rollback, never retired alone: the service would have nothing to serve)."""
    if not (reason or "").strip():
        raise WorkbenchError(f"retiring {tag} needs a reason", hint='pass --reason "why"')
    if ledger.stage_of(tag) == "production":
        raise WorkbenchError(f"{tag} is in production: release another model or roll back instead")
    return ledger.record("retired", str(tag), reason=reason.strip(), by=by, brief=_brief_of(str(tag)))


# ----------------------------------------------------------------------------------------------- compare
@dataclass
class ComparisonReport(Report):
    """Champion vs challenger: from the prediction log (``source="log"``) or offline on a test split."""

    champion: str
    challenger: str
    task: str
    source: str
    answered: dict = field(default_factory=dict)
    n_shared: int = 0
    agreement: float | None = None
    abs_delta: dict = field(default_factory=dict)
    latency_ms: dict | None = None
    metrics: dict | None = None
    notes: list[str] = field(default_factory=list)
    title: str = "Champion vs challenger"

    def to_dict(self) -> dict:
        return {"champion": self.champion, "challenger": self.challenger, "task": self.task, "source": self.source,
                "answered": self.answered, "n_shared": self.n_shared, "agreement": self.agreement,
                "abs_delta": self.abs_delta, "latency_ms": self.latency_ms, "metrics": self.metrics,
                "notes": self.notes}

    def summary(self) -> dict:
        return {"source": self.source, "n_shared": self.n_shared, "agreement": self.agreement,
                "abs_delta_p99": self.abs_delta.get("p99")}

    def _html_body(self) -> str:
        def f(v: Any) -> str:
            return "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)

        rows = [{"figure": "answered", "champion": f(self.answered.get("champion")),
                 "challenger": f(self.answered.get("challenger"))}]
        for k, v in (self.latency_ms or {}).get("champion", {}).items():
            rows.append({"figure": f"latency {k} (ms)", "champion": f(v),
                         "challenger": f((self.latency_ms or {}).get("challenger", {}).get(k))})
        for k, v in ((self.metrics or {}).get("champion") or {}).items():
            rows.append({"figure": k, "champion": f(v), "challenger": f(((self.metrics or {}).get("challenger")
                                                                         or {}).get(k))})
        shared = [{"figure": "shared rows", "value": f(self.n_shared)},
                  {"figure": "agreement", "value": f(self.agreement)}]
        shared += [{"figure": f"|Δ| {k}", "value": f(v)} for k, v in self.abs_delta.items()]
        return (f"<p>champion {esc(self.champion)} vs challenger {esc(self.challenger)} ({esc(self.source)})</p>"
                + html_table(rows) + html_table(shared) + "".join(f"<p>{esc(n)}</p>" for n in self.notes))


def _log_frame(root: Path | None, tag: str) -> Any:
    from ..errors import DataError
    from ..monitoring.compact import read_columns

    try:
        return read_columns(root, tag, allow_empty=True)
    except DataError:
        return None


def _log_scores(df: Any, task: str) -> tuple[np.ndarray, np.ndarray | None]:
    if task == "regression":
        return df.get_column("prediction").to_numpy().astype(np.float64), None
    labels = np.asarray(df.get_column("label").cast(str).to_list(), dtype=object)
    if task == "multiclass_classification":
        return np.asarray(df.get_column("probabilities").to_list(), dtype=np.float64), labels
    return df.get_column("probability").to_numpy().astype(np.float64), labels


def compare(champion_tag: str, challenger_tag: str, *, log_dir: str | Path | None = None,
            split: TestSplit | None = None, cfg: Settings | None = None) -> ComparisonReport:
    """Champion vs challenger (see the module docstring): from the prediction log when both models have
    logged rows with shared request ids (shadow traffic), else offline on ``split`` (default: the challenger's
    test split), where the labels give each model's metrics too.

    Raises
    ------
    WorkbenchError
        The two models are of different briefs (never compared) or tasks, or neither form is possible.
    """
    from ..tasks import get_task

    ba, bb = _brief_of(champion_tag), _brief_of(challenger_tag)
    if ba and bb and ba != bb:
        raise WorkbenchError(f"{champion_tag} is a model of brief {ba}, {challenger_tag} of {bb}: models of "
                             "different briefs are never compared")
    pa, pb = load_verified(champion_tag), load_verified(challenger_tag)
    task = pb.config.task
    if pa.config.task != task:
        raise WorkbenchError(f"{champion_tag} is a {pa.config.task} model, {challenger_tag} a {task} model")
    classes = list(pb.config.classes or []) or None
    scale = getattr(pb.config, "target_std", None)
    root = Path(log_dir) if log_dir else None
    la, lb = _log_frame(root, pa.tag), _log_frame(root, pb.tag)
    if la is not None and lb is not None and la.height and lb.height:
        report = ComparisonReport(champion=pa.tag, challenger=pb.tag, task=task, source="prediction log",
                                  answered={"champion": la.height, "challenger": lb.height})
        joined = la.join(lb, on=["request_id", "row"], how="inner", suffix="_challenger")
        report.n_shared = joined.height
        if joined.height:
            cols = {"regression": ["prediction"], "multiclass_classification": ["label", "probabilities"]}.get(
                task, ["probability", "label"])
            a_df = joined.select(cols)
            b_df = joined.select([f"{c}_challenger" for c in cols]).rename(
                {f"{c}_challenger": c for c in cols})
            sa, la_lab = _log_scores(a_df, task)
            sb, lb_lab = _log_scores(b_df, task)
            report.agreement = _agreement(task, la_lab, lb_lab, sa, sb, scale)
            report.abs_delta = _delta_figures(sa, sb)
        else:
            report.notes.append("no request answered by both (shadow mode logs both with the request id)")
        lat = [c for c in ("latency_ms", "duration_ms") if c in la.columns and c in lb.columns]
        if lat:
            report.latency_ms = {k: {"p50": float(df.get_column(lat[0]).quantile(0.5)),
                                     "p99": float(df.get_column(lat[0]).quantile(0.99))}
                                 for k, df in (("champion", la), ("challenger", lb))}
        else:
            report.notes.append("the log records no latency per request")
        report.notes.append("metrics need labels: `workbench feedback` joins them to the log")
        return report
    split = split or test_split(challenger_tag, cfg=cfg)
    answers_a, notes_a, _ = _answer_all(pa, split)
    answers_b, notes_b, _ = _answer_all(pb, split)
    both = [i for i in range(len(answers_b)) if answers_a[i] is not None and answers_b[i] is not None]
    sa, lab_a = answers_scores([answers_a[i] for i in both], task, classes)
    sb, lab_b = answers_scores([answers_b[i] for i in both], task, classes)
    report = ComparisonReport(champion=pa.tag, challenger=pb.tag, task=task, source=split.source or "test split",
                              answered={"champion": sum(a is not None for a in answers_a),
                                        "challenger": sum(b is not None for b in answers_b)},
                              n_shared=len(both), agreement=_agreement(task, lab_a, lab_b, sa, sb, scale),
                              abs_delta=_delta_figures(sa, sb), notes=[*notes_a, *notes_b])
    if not (la is not None and lb is not None):
        report.notes.insert(0, "no prediction log for both models: offline comparison on the test split")
    if split.y is not None and len(both):
        t = get_task(task)
        primary = split.primary or t.default_primary
        y = np.asarray(split.y)[both]
        threshold = split.threshold if split.threshold is not None else getattr(pb.config, "threshold", None)
        report.metrics = {k: {m: float(v) for m, v in t.evaluate(y, s, primary=primary, threshold=threshold,
                                                                 classes=classes).metrics.items()}
                          for k, s in (("champion", sa), ("challenger", sb))}
    return report


# ----------------------------------------------------------------------------------------------- models
def models_overview(*, limit: int = 10) -> dict:
    """What ``workbench models`` shows: every registered model with its stage (replayed from the ledger; an old
    ledger's promotions count as production for the tag the pointer names), and the last ``limit`` ledger
    lines, each with its transition (from -> to), reason and who."""
    from ..serving.pointer import production_pointer
    from .store import list_models

    events = ledger.read_ledger()
    st = ledger.stages(events)
    prod = (production_pointer() or {}).get("tag")
    models = []
    for m in sorted(list_models(), key=lambda m: m.info.creation_time, reverse=True):
        if m.info.labels.get("stage") != "certified":
            continue
        md, tag = m.info.metadata, str(m.tag)
        s = st.get(tag) or {}
        pm = md.get("primary_metric", "")
        stage = s.get("stage") or ("production" if tag == prod else "certified")
        if stage == "canary" and s.get("percent") is not None:
            stage = f"canary {s['percent']}%"
        models.append({"tag": tag, "stage": stage, "since": s.get("since"), "by": s.get("by"),
                       "reason": s.get("reason"), "brief": md.get("brief", s.get("brief")),
                       "run_id": md.get("run_id", ""), "model": md.get("model", ""), "primary_metric": pm,
                       "primary_value": (md.get("metrics") or {}).get(pm) if pm else None,
                       "created": m.info.creation_time.strftime("%Y-%m-%d %H:%M")})
    lines = []
    for e in events[-limit:]:
        lines.append({"at": e.get("at"), "action": e.get("action"), "tag": e.get("tag"),
                      "run_id": e.get("run_id"),
                      "from_stage": e.get("from_stage"),
                      "to_stage": e.get("to_stage") or ("production" if e.get("action") == "promote" else None),
                      "reason": e.get("reason") or (", ".join(e["failed_gates"]) if e.get("failed_gates") else None),
                      "by": e.get("by") or e.get("user")})
    return {"production": prod, "models": models, "ledger": lines}
