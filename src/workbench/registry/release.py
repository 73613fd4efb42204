"""Release: staging -> production, by a human, after a rehearsal behind a real server; champion vs challenger.

Stages and who moves a model (the ledger records every move: :mod:`workbench.registry.ledger`)
-------------------------------------------------------------------------------------------------
- ``workbench promote`` certifies a run's model and registers it. **The first model of a brief** (no production
  model of that brief yet: a fresh registry, or production holds another brief's model) is released straight
  to production -- ledger lines ``certified`` then ``released`` with the reason "first model: no champion to
  compare" -- so ``make run`` serves what it promoted, as before. **Every later promotion of the brief stops at
  staging** (``certified`` then ``staged``), after the champion/challenger gate (:mod:`workbench.registry.gates`)
  compared it with the production model on its own test split.
- :func:`release` (``workbench release <tag> --approve "reason"``) moves a staged model to production, or beside it
  as a ``shadow`` or ``canary`` (:func:`workbench.registry.ledger.set_challenger`), after a rehearsal against a
  real ``bentoml serve`` of the staged package on 127.0.0.1 (:mod:`workbench.registry.rehearsal`; its prediction
  log goes to a temporary folder, never the production log). In order: the approval is required; the model must
  be staged; the server is started and must become ready (the package verified as the service loads it);
  the **integration test** (:func:`integration_test`) replays up to ``deployment.replay_requests`` records over
  HTTP -- the champion's most recent logged rows, each logged request as one request, its logged answers the
  reference (:func:`replay_from_log`), else the first rows of the challenger's test split, the champion
  answering them in process (:func:`replay_from_split`) -- and every record must be answered 200 by the staged
  model; agreement and the |delta| distribution are reported; then the bounded **load test**
  (:func:`workbench.registry.rehearsal.load_test`: ``deployment.load_test_clients`` keep-alive clients for
  ``load_test_seconds`` or ``load_test_max_requests``) must keep the error share within
  ``load_test_max_error_rate`` and the p99 within ``load_test_p99_ms``. The server is stopped (its whole
  process tree) whatever happens. The three checks (integration, load test, approval) are go/no-go: the
  evidence (:class:`ReleaseEvidence`: ``release.json`` and ``release.html``) is saved in
  ``$BENTOML_HOME/workbench/releases/<tag>-<UTC time>/`` and a ``release_checks`` ledger line records the
  attempt and its figures; a failed check raises :class:`ReleaseRefused` (a GateError, exit 3) and moves
  nothing. Passed, it writes ``retired`` for the model it replaces and ``released`` for this one (with the
  checks' summary and the evidence folder) and moves the production pointer, all under the ledger lock (refused
  if production changed since the checks). The figures are the staged package's ``monitoring.json``
  ``deployment`` section (the brief's at promotion); ``load_seconds``, ``clients`` and ``replay`` override three
  of them. Nothing skips a check.
- :func:`retire` takes a staged (or shadow/canary) model out of the running; ``ledger.rollback`` returns
  production to the previous model and puts the current one back in staging.

:func:`compare` reports champion vs challenger: from the prediction log when both have logged rows (agreement on
shared request ids, |delta| distribution, rows answered by each, latency of each when the log records it), else
offline on the challenger's test split (the same figures plus each model's metrics against the labels).
:func:`models_overview` is what ``workbench models`` shows: every registered model's stage and the ledger.
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from .._report import Report, esc, html_table
from ..config import Settings
from ..config import settings as _settings
from ..errors import GateError, ParameterError, WorkbenchError
from . import ledger

__all__ = ["CHECKS", "ReleaseResult", "ReleaseEvidence", "ReleaseRefused", "IntegrationReport", "ComparisonReport",
           "Replay", "TestSplit", "release", "retire", "compare", "integration_test", "replay_from_log",
           "replay_from_split", "deployment_spec", "releases_dir", "champion_for", "load_verified", "test_split",
           "answers_scores", "models_overview"]

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
                             hint="set WORKBENCH_RUNS_DIR to the folder of that run; a release replays the "
                                  "champion's prediction log instead when it has one (--log-dir)")
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
    """JSON-ready records: NaN numerics and the missing category (or date) ``""`` become None."""
    names = list(columns)
    out = []
    for values in zip(*(columns[n] for n in names), strict=True):
        rec = {}
        for n, v in zip(names, values, strict=True):
            if kinds.get(n) in ("categorical", "date"):
                rec[n] = None if v is None or v == "" else str(v)
            else:
                rec[n] = None if v is None or v != v else float(v)
        out.append(rec)
    return out


def _request_fields(config: Any) -> list[dict]:
    """The fields a request to this model carries: its request inputs (not the derived ones) and the raw date
    columns they are derived from (``kind`` ``"date"``)."""
    fields = [{"name": i.name, "kind": i.kind} for i in config.request_inputs]
    return fields + [{"name": d, "kind": "date"} for d in config.date_inputs]


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


def _split_records(config: Any, tag: str, split: TestSplit, limit: int | None = None
                   ) -> tuple[list[dict], list[str]]:
    """The first ``limit`` (default all) rows of ``split`` as request records for the model ``config`` describes,
    and notes on inputs taken from the raw rows or missing."""
    fields = _request_fields(config)
    cols, from_raw, missing = columns_for(fields, split)
    notes = []
    if from_raw:
        notes.append(f"{tag}: {', '.join(from_raw)} taken from the raw test rows")
    if missing:
        notes.append(f"{tag}: inputs {', '.join(missing)} are not in the test split (sent as missing)")
        for n in missing:
            cols[n] = [None] * len(split.X)
    n = len(split.X) if limit is None else min(limit, len(split.X))
    return _records({k: v[:n] for k, v in cols.items()}, {f["name"]: f["kind"] for f in fields}), notes


def _answer_records(predictor: Any, records: list[dict]) -> tuple[list[dict], list[str], int]:
    """``records`` answered in process by ``predictor`` (in batches, through :meth:`Predictor.predict`).
    Returns (answers, notes, failures): None for a record not answered."""
    out: list[dict] = []
    notes: list[str] = []
    failures = 0
    for start in range(0, len(records), BATCH):
        chunk = records[start:start + BATCH]
        try:
            out.extend(predictor.predict(chunk)["predictions"])
        except Exception as exc:  # noqa: BLE001 - counted and said: a check fails on any unanswered record
            failures += len(chunk)
            notes.append(f"{predictor.tag}: records {start}-{start + len(chunk) - 1} not answered: {exc}")
            out.extend([None] * len(chunk))  # type: ignore[list-item]
    return out, notes, failures


def _answer_all(predictor: Any, split: TestSplit) -> tuple[list[dict], list[str], int]:
    """Every test record answered by ``predictor`` through its request path. Returns (answers, notes, failures)."""
    records, notes = _split_records(predictor.config, predictor.tag, split)
    out, more, failures = _answer_records(predictor, records)
    return out, notes + more, failures


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
    """The staged model behind a real ``bentoml serve`` answering the replayed records over HTTP, against the
    champion's answers (logged, or given in process on the test split)."""

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
    requests: int = 0
    server: dict = field(default_factory=dict)
    error: str = ""  # the server could not be started or did not serve the staged model
    title: str = "Release integration test"

    @property
    def passed(self) -> bool:
        return not self.error and self.n > 0 and self.failures == 0 and self.answered == self.n

    def to_dict(self) -> dict:
        return {"challenger": self.challenger, "champion": self.champion, "task": self.task, "n": self.n,
                "answered": self.answered, "failures": self.failures, "agreement": self.agreement,
                "abs_delta": self.abs_delta, "passed": self.passed, "notes": self.notes, "source": self.source,
                "requests": self.requests, "error": self.error, "server": self.server}

    def summary(self) -> dict:
        return {k: self.to_dict()[k] for k in ("n", "answered", "failures", "agreement", "passed", "requests")} | {
            "abs_delta_p99": self.abs_delta.get("p99"), "abs_delta_max": self.abs_delta.get("max"),
            "source": self.source}

    def figures(self) -> str:
        """One line of the figures (the go/no-go table's)."""
        if self.error:
            return self.error.splitlines()[0][:400]
        agree = "n/a" if self.agreement is None else f"{self.agreement:.2%}"
        p99, mx = self.abs_delta.get("p99"), self.abs_delta.get("max")
        versus = (f"agreement {agree} with {self.champion}, |Δ| p99 {_num(p99)}, max {_num(mx)}"
                  if self.champion else FIRST_MODEL)
        return f"{self.answered}/{self.n} records answered 200 in {self.requests} requests ({self.source}); {versus}"

    def _html_body(self) -> str:
        css = "wb-ok" if self.passed else "wb-bad"
        rows = [{"figure": k, "value": "" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v)}
                for k, v in {"records": self.n, "requests": self.requests, "answered": self.answered,
                             "failures": self.failures, "agreement": self.agreement,
                             **{f"|Δ| {k}": v for k, v in self.abs_delta.items()}}.items()]
        return (f"<p>{esc(self.challenger)} vs {esc(self.champion or FIRST_MODEL)}: "
                f"<span class='{css}'>{'pass' if self.passed else 'fail'}</span> ({esc(self.source)})</p>"
                + (f"<pre>{esc(self.error)}</pre>" if self.error else "")
                + html_table(rows) + "".join(f"<p>{esc(n)}</p>" for n in self.notes))


def _num(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3g}"


@dataclass
class Replay:
    """What the integration test sends: request records in the challenger's fields, grouped into HTTP requests
    (``(start, stop)`` slices of ``records``), and the champion's reference answers -- logged ones (``scores``,
    ``labels``, ``ok``: rows that have one), or None when the champion answers in process (test split)."""

    records: list[dict]
    requests: list[tuple[int, int]]
    source: str
    notes: list[str] = field(default_factory=list)
    scores: np.ndarray | None = None
    labels: np.ndarray | None = None
    reference_task: str | None = None
    reference_classes: list[str] | None = None
    split: TestSplit | None = None


def _package_config(tag: str) -> Any:
    """The ``serving.json`` of a registered package (read, not verified: the rehearsal server verifies it)."""
    from ..serving.schema import ServingConfig
    from .store import get_model

    try:
        return ServingConfig.load(Path(get_model(tag).path) / "serving.json")
    except WorkbenchError:
        raise
    except Exception as exc:  # noqa: BLE001 - NotFound, a broken serving.json
        raise WorkbenchError(f"the serving.json of {tag} cannot be read: {exc}",
                             hint="`workbench models` lists the registered models") from None


def _log_task(df: Any) -> str:
    if "prediction" in df.columns:
        return "regression"
    return "multiclass_classification" if "probabilities" in df.columns else "binary_classification"


def replay_from_log(df: Any, config: Any, *, champion: str, limit: int, tag: str = "") -> Replay:
    """The last ``limit`` logged rows of the champion (``df``: :func:`workbench.monitoring.compact.read_columns`)
    as records in the challenger's fields, each logged request replayed as one request (a batch as a batch), the
    champion's logged answers the reference."""
    keys = [c for c in ("ts", "request_id", "row") if c in df.columns]
    total = df.height
    df = df.sort(keys).tail(limit)
    fields = _request_fields(config)
    missing = [f["name"] for f in fields if f["name"] not in df.columns]
    cols = {f["name"]: (df.get_column(f["name"]).to_list() if f["name"] not in missing else [None] * df.height)
            for f in fields}
    records = _records(cols, {f["name"]: f["kind"] for f in fields})
    ids = df.get_column("request_id").to_list() if "request_id" in df.columns else list(range(df.height))
    requests, start = [], 0
    for i in range(1, len(ids) + 1):
        if i == len(ids) or ids[i] != ids[start]:
            requests.append((start, i))
            start = i
    notes = []
    if missing:
        notes.append(f"{tag or 'the challenger'}: inputs {', '.join(missing)} are not in the champion's log "
                     "(sent as missing)")
    task = _log_task(df)
    scores, labels = _log_scores(df, task)
    classes = None
    with contextlib.suppress(WorkbenchError):
        classes = list(_package_config(champion).classes or []) or None
    return Replay(records=records, requests=requests, notes=notes, scores=scores, labels=labels,
                  reference_task=task, reference_classes=classes,
                  source=f"prediction log of {champion}: the last {df.height} of {total} logged rows")


def replay_from_split(split: TestSplit, config: Any, *, tag: str, limit: int) -> Replay:
    """The first ``limit`` rows of the test split as single-record requests in the challenger's fields (the
    champion answers the same rows in process)."""
    records, notes = _split_records(config, tag, split, limit)
    n_split = len(split.X)
    return Replay(records=records, requests=[(i, i + 1) for i in range(len(records))], notes=notes, split=split,
                  source=f"{split.source or 'test split'}: the first {len(records)} of {n_split} rows")


def integration_test(server: Any, *, challenger: str, champion: str | None, replay: Replay, config: Any
                     ) -> IntegrationReport:
    """Send the replayed requests to the rehearsal server (:func:`~workbench.registry.rehearsal.post_all`): every
    record must be answered 200 by the staged model (``model_version`` is the tag); with a champion, compare the
    answers with its answers: label agreement (regression: within 1% of the target's standard deviation) and the
    |delta| distribution of the scores."""
    from .rehearsal import post_all

    task = config.task
    classes = list(config.classes or []) or None
    bodies = [json.dumps(replay.records[a] if b - a == 1 else replay.records[a:b], allow_nan=False).encode()
              for a, b in replay.requests]
    replies = post_all(server, bodies)
    answers: list[dict | None] = [None] * len(replay.records)
    problems: list[str] = []
    failures = 0
    for (a, b), (status, payload) in zip(replay.requests, replies, strict=True):
        why = ""
        if status != 200:
            why = f"{'no answer' if status is None else status}: {payload[:200].decode('utf-8', 'replace')}"
        else:
            try:
                body = json.loads(payload)
                preds = body["predictions"]
                if body.get("model_version") != challenger:
                    why = f"answered by {body.get('model_version')!r}, not {challenger}"
                elif len(preds) != b - a:
                    why = f"{len(preds)} predictions for {b - a} records"
            except (ValueError, KeyError, TypeError) as exc:
                why = f"200 with an unreadable body ({exc})"
        if why:
            failures += b - a
            problems.append(f"records {a}-{b - 1}: {why}")
        else:
            answers[a:b] = preds
    n = len(replay.records)
    report = IntegrationReport(challenger=challenger, champion=champion, task=task, n=n,
                               answered=sum(x is not None for x in answers), failures=failures,
                               notes=list(replay.notes), source=replay.source, requests=len(bodies),
                               server=server.to_dict())
    if problems:
        report.notes.append(f"{len(problems)} requests not answered as they must be, e.g. " + "; ".join(problems[:3]))
    if not n:
        report.notes.append(f"no records to replay ({replay.source})")
    if champion is None:
        report.notes.append(FIRST_MODEL)
        return report
    ref: list[dict | None] | None = None  # the champion's in-process answers (test split)
    if replay.scores is not None:  # the champion's logged answers
        ref_task, ref_classes = replay.reference_task, replay.reference_classes
    else:  # the test split: the champion answers the same rows in process
        try:
            pa = load_verified(champion)
        except WorkbenchError as exc:
            report.notes.append(f"the champion {champion} cannot be loaded ({exc.message}): answers not compared")
            return report
        ref_task, ref_classes = pa.config.task, list(pa.config.classes or []) or None
        if ref_task == task:
            recs, more = _split_records(pa.config, pa.tag, replay.split, n)
            ref, more2, fail_a = _answer_records(pa, recs)
            report.notes.extend(more + more2)
            if fail_a:
                report.notes.append(f"the champion did not answer {fail_a} records")
    if ref_task != task or (task == "multiclass_classification" and ref_classes != classes):
        report.notes.append(f"the champion {champion} answers a different task or classes: answers not compared")
        return report
    both = [i for i in range(n) if answers[i] is not None and (ref is None or ref[i] is not None)]
    if ref is None:
        sa = np.asarray(replay.scores)[both]
        la = None if replay.labels is None else np.asarray(replay.labels)[both]
    else:
        sa, la = answers_scores([ref[i] for i in both], task, classes)
    sb, lb = answers_scores([answers[i] for i in both], task, classes)
    report.agreement = _agreement(task, la, lb, sa, sb, getattr(config, "target_std", None))
    report.abs_delta = _delta_figures(sa, sb)
    if len(both) < report.answered:
        report.notes.append(f"compared on {len(both)} records (the champion did not answer the others)")
    return report


# ----------------------------------------------------------------------------------------------- release
CHECKS = ("integration", "load test", "approval")


class ReleaseRefused(GateError):
    """A release check failed: nothing moved. Carries the :class:`ReleaseEvidence` (``evidence``) and the folder
    it was saved in (``evidence_dir``)."""

    def __init__(self, message: str, *, evidence: ReleaseEvidence, evidence_dir: Path | None,
                 hint: str | None = None) -> None:
        self.evidence = evidence
        self.evidence_dir = evidence_dir
        super().__init__(message, hint=hint)


@dataclass
class ReleaseEvidence(Report):
    """One release attempt: the integration test, the load test and the approval, each a go/no-go check, the
    figures the gates used (the staged package's ``deployment`` section, with the command's overrides) and the
    decision."""

    tag: str
    to: str
    champion: str | None
    approval: dict
    deployment: dict
    integration: IntegrationReport
    load_test: Any = None  # LoadTestReport, or None when not run
    started: str = ""
    finished: str = ""
    notes: list[str] = field(default_factory=list)
    title: str = "Release checks"

    def checks(self) -> list[dict]:
        """The go/no-go table: ``{"check", "verdict" (pass/fail/not run), "figures"}`` for each of :data:`CHECKS`."""
        lt = self.load_test
        if lt is None:
            load = {"check": "load test", "verdict": "not run", "figures": "not run: the integration test failed"}
        else:
            load = {"check": "load test", "verdict": "pass" if lt.passed else "fail",
                    "figures": lt.figures() + ("" if lt.passed else "; " + "; ".join(lt.failures()))}
        ok = bool((self.approval.get("reason") or "").strip())
        return [{"check": "integration", "verdict": "pass" if self.integration.passed else "fail",
                 "figures": self.integration.figures()}, load,
                {"check": "approval", "verdict": "pass" if ok else "fail",
                 "figures": f"{self.approval.get('reason')!r} by {self.approval.get('by')}" if ok else "none given"}]

    @property
    def failed(self) -> list[str]:
        return [c["check"] for c in self.checks() if c["verdict"] != "pass"]

    @property
    def passed(self) -> bool:
        return not self.failed

    def to_dict(self) -> dict:
        return {"tag": self.tag, "to": self.to, "champion": self.champion, "decision": "go" if self.passed else
                "no-go", "checks": self.checks(), "approval": self.approval, "deployment": self.deployment,
                "integration": self.integration.to_dict(),
                "load_test": None if self.load_test is None else self.load_test.to_dict(),
                "started": self.started, "finished": self.finished, "notes": self.notes}

    def summary(self) -> dict:
        return {"decision": "go" if self.passed else "no-go", "failed": self.failed,
                "integration": self.integration.summary(),
                "load_test": None if self.load_test is None else self.load_test.summary()}

    def _html_body(self) -> str:
        css = "wb-ok" if self.passed else "wb-bad"
        return (f"<p>{esc(self.tag)} to {esc(self.to)} (champion {esc(self.champion or 'none')}): "
                f"<span class='{css}'>{'go' if self.passed else 'no-go'}</span></p>" + html_table(self.checks())
                + self.integration._repr_html_() + ("" if self.load_test is None else self.load_test._repr_html_())
                + "".join(f"<p>{esc(n)}</p>" for n in self.notes))

    def save_to(self, root: Path) -> Path:
        """Save ``release.json`` and ``release.html`` in a new folder ``<root>/<tag>-<UTC time>``; returns it."""
        import datetime as _dt
        import re

        stamp = _dt.datetime.now(_dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        base = f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', self.tag)}-{stamp}"
        root.mkdir(parents=True, exist_ok=True)
        for i in range(100):
            folder = root / (base if not i else f"{base}-{i}")
            try:
                folder.mkdir()
                break
            except FileExistsError:
                continue
        self.save(folder / "release.json")
        self.save_html(folder / "release.html")
        return folder


def releases_dir() -> Path:
    """Where release evidence is kept: ``$BENTOML_HOME/workbench/releases`` (beside the ledger)."""
    return ledger.ledger_path().parent / "releases"


@dataclass
class ReleaseResult:
    tag: str
    from_stage: str | None
    to_stage: str
    champion: str | None
    integration: IntegrationReport
    entry: dict
    load_test: Any = None
    evidence: ReleaseEvidence | None = None
    evidence_dir: Path | None = None

    def to_dict(self) -> dict:
        return {"tag": self.tag, "from_stage": self.from_stage, "to_stage": self.to_stage,
                "champion": self.champion, "integration": self.integration.to_dict(),
                "load_test": None if self.load_test is None else self.load_test.to_dict(),
                "evidence_dir": None if self.evidence_dir is None else str(self.evidence_dir), "ledger": self.entry}


_OVERRIDES = {"load_seconds": ("load_test_seconds", "--load-seconds"), "clients": ("load_test_clients", "--clients"),
              "replay": ("replay_requests", "--replay")}


def deployment_spec(tag: str, **overrides: Any) -> tuple[Any, list[str]]:
    """The staged package's ``deployment`` section (``monitoring.json``; the brief's, at promotion) as a
    :class:`~workbench.brief.DeploymentSpec`, with ``load_seconds`` / ``clients`` / ``replay`` overrides (None:
    not overridden). Returns ``(spec, notes)``.

    Raises
    ------
    ParameterError
        An override is out of its range (the message names the option and the range).
    """
    from pydantic import ValidationError

    from ..brief import DeploymentSpec
    from .store import get_model

    notes: list[str] = []
    raw: dict = {}
    try:
        raw = dict(json.loads((Path(get_model(tag).path) / "monitoring.json").read_text()).get("deployment") or {})
    except Exception:  # noqa: BLE001 - no monitoring.json (a package from before it), unreadable: defaults
        raw = {}
    if not raw:
        notes.append("the package has no deployment section: the DeploymentSpec defaults apply")
    try:
        spec = DeploymentSpec.model_validate(raw)
    except ValidationError as exc:
        notes.append(f"the package's deployment section is invalid ({exc.errors()[0].get('msg')}): the defaults apply")
        spec = DeploymentSpec()
    for key, value in overrides.items():
        if value is None:
            continue
        name, option = _OVERRIDES[key]
        try:
            spec = DeploymentSpec.model_validate({**spec.model_dump(), name: value})
        except ValidationError as exc:
            raise ParameterError(f"{value!r}: {exc.errors()[0].get('msg')}", parameter=option,
                                 hint=f"{option}: the {DeploymentSpec.model_fields[name].description}") from None
    return spec, notes


def release(tag: str, *, to: Literal["production", "shadow", "canary"] = "production", approve: str,
            by: str | None = None, split: TestSplit | None = None, cfg: Settings | None = None,
            percent: int | None = None, log_dir: str | Path | None = None, load_seconds: float | None = None,
            clients: int | None = None, replay: int | None = None, bento_dir: str | Path | None = None,
            on_step: Callable[[str], None] | None = None) -> ReleaseResult:
    """Release a staged model after rehearsing it behind a real ``bentoml serve`` (see the module docstring).

    Parameters
    ----------
    tag:
        The staged model (``workbench models`` lists the stages).
    to:
        ``"production"``; or ``"shadow"`` (the challenger scores every request off the answer's path) or
        ``"canary"`` (it answers ``percent`` % of requests), beside the production model: the pointer's
        ``challenger`` (:func:`workbench.registry.ledger.set_challenger`), followed by the running service (hot
        swap, the default), which also rolls a failing challenger back by itself.
    percent:
        The canary's share of requests (1..100).
    approve:
        Why this release is approved: required, recorded in the ledger line and the evidence.
    by:
        Who approves (default: the OS user).
    split:
        The records to replay when the champion has no prediction log (default: the challenger's own test split,
        :func:`test_split`).
    log_dir:
        The production prediction log (default ``$WORKBENCH_LOG_DIR`` or ``$BENTOML_HOME/workbench/predictions``).
    load_seconds, clients, replay:
        Override the package's ``deployment.load_test_seconds`` / ``load_test_clients`` / ``replay_requests``.
    bento_dir:
        The BentoML service folder (default: the project's ``bento/``).
    on_step:
        Called with a progress line (server start, checks, the load test about once a second).

    Raises
    ------
    ParameterError
        No approval; an unknown target; a canary without a percent in 1..100; an override out of range.
    WorkbenchError
        The model is not staged; no ``bento/`` folder; the test split cannot be read; production changed while
        the checks ran.
    ReleaseRefused
        A check failed (exit 3): nothing moved; the evidence is saved and the attempt is in the ledger.
    """
    import datetime as _dt

    from ..serving.pointer import production_pointer
    from .rehearsal import RehearsalError, bento_folder, load_test, serve_staged

    step = on_step or (lambda _msg: None)
    if not (approve or "").strip():
        raise ParameterError(f"releasing {tag} needs an approval", parameter="--approve",
                             hint='pass --approve "why this model may serve"')
    if to not in ("production", "shadow", "canary"):
        raise ParameterError(f"unknown release target {to!r}", parameter="--to", hint="use production, shadow or canary")
    if to == "canary" and not (isinstance(percent, int) and 1 <= percent <= 100):
        raise ParameterError(f"a canary needs a percent in 1..100, got {percent!r}", parameter="--percent",
                             hint="pass --percent 5")
    tag = str(tag)
    stage = ledger.stage_of(tag)
    if stage not in ("staging", "shadow", "canary"):
        raise WorkbenchError(f"{tag} is in {stage or 'no stage (not registered by workbench promote)'}: only a "
                             "staged model can be released", hint="`workbench models` shows every model's stage")
    spec, spec_notes = deployment_spec(tag, load_seconds=load_seconds, clients=clients, replay=replay)
    folder = Path(bento_dir) if bento_dir is not None else bento_folder(cfg.root if cfg else None)
    brief = _brief_of(tag)
    champion = champion_for(brief) if brief else None
    if to in ("shadow", "canary") and champion is None:
        raise WorkbenchError(f"a {to} runs beside the production model of its brief ({brief}), and there is none",
                             hint="release it to production instead (`workbench models` shows the stages)")
    logged = _log_frame(Path(log_dir) if log_dir else None, champion) if champion else None
    if logged is None or not logged.height:
        logged = None
        split = split or test_split(tag, cfg=cfg)
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    load = None
    try:
        with serve_staged(tag, bento_dir=folder, on_step=step) as server:
            config = _package_config(tag)
            rp = (replay_from_log(logged, config, champion=str(champion), limit=spec.replay_requests, tag=tag)
                  if logged is not None else replay_from_split(split, config, tag=tag, limit=spec.replay_requests))
            step(f"integration test: {len(rp.records)} records in {len(rp.requests)} requests ({rp.source})")
            integration = integration_test(server, challenger=tag, champion=champion, replay=rp, config=config)
            step(f"integration test: {integration.figures()}")
            if integration.passed:
                bodies = [json.dumps(r, allow_nan=False).encode() for r in rp.records]
                step(f"load test: {spec.load_test_clients} clients for {spec.load_test_seconds:g} s "
                     f"(at most {spec.load_test_max_requests:,} requests)")
                load = load_test(server, bodies, clients=spec.load_test_clients, seconds=spec.load_test_seconds,
                                 max_requests=spec.load_test_max_requests, p99_ms=spec.load_test_p99_ms,
                                 max_error_rate=spec.load_test_max_error_rate, on_tick=step)
                step(f"load test: {load.figures()}")
    except RehearsalError as exc:
        integration = IntegrationReport(challenger=tag, champion=champion, task=str(_meta(tag).get("task") or ""),
                                        n=0, answered=0, failures=0, error=exc.message,
                                        source="the staged model behind bentoml serve", server=exc.server)
    approval = {"reason": approve.strip(), "by": ledger.who(by)}
    evidence = ReleaseEvidence(tag=tag, to=to if to != "canary" else f"canary {percent}%", champion=champion,
                               approval=approval, deployment=spec.model_dump(), integration=integration,
                               load_test=load, started=started, notes=spec_notes,
                               finished=_dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"))
    evidence_dir = evidence.save_to(releases_dir())
    checks = {"action": "release_checks", "tag": tag, "from_stage": stage, "to_stage": to, "brief": brief,
              "by": approval["by"], "passed": evidence.passed, "failed": evidence.failed,
              "integration": integration.summary(), "load_test": None if load is None else load.summary(),
              "evidence": str(evidence_dir)}
    if not evidence.passed:
        why = "; ".join(f"{c['check']}: {c['figures']}" for c in evidence.checks() if c["verdict"] != "pass")
        ledger.append({**checks, "reason": f"refused: {', '.join(evidence.failed)}"})
        raise ReleaseRefused(f"release of {tag} refused: {why}", evidence=evidence, evidence_dir=evidence_dir,
                             hint=f"nothing was moved; the evidence is in {evidence_dir}")
    meta = _meta(tag)
    summary = {"integration": integration.summary(), "load_test": load.summary(), "evidence": str(evidence_dir)}
    if to in ("shadow", "canary"):
        with ledger.transition():
            ledger.append({**checks, "reason": approval["reason"]})
            entry = ledger.set_challenger(tag, mode=to, percent=percent, package_sha256=meta.get("package_sha256"),
                                          reason=approval["reason"], by=by)
        return ReleaseResult(tag=tag, from_stage=stage, to_stage=to, champion=champion, integration=integration,
                             entry=entry, load_test=load, evidence=evidence, evidence_dir=evidence_dir)
    with ledger.transition():
        current = production_pointer()
        if (current or {}).get("tag") != (champion or (current or {}).get("tag")):
            raise WorkbenchError(f"production changed while {tag} was checked (now {(current or {}).get('tag')})",
                                 hint=f"run the release again; this attempt's evidence is in {evidence_dir}")
        ledger.append({**checks, "reason": approval["reason"]})
        if current and current.get("tag") and current["tag"] != tag:
            ledger.record("retired", current["tag"], reason=f"replaced in production by {tag}", by=by,
                          brief=current.get("brief"), replaced_by=tag)
        entry = ledger.record("released", tag, reason=approval["reason"], by=by, sha256=meta.get("onnx_sha256"),
                              package_sha256=meta.get("package_sha256"), run_id=meta.get("run_id"), brief=brief,
                              replaces=(current or {}).get("tag"), **summary)
        ledger.set_production(tag, sha256=str(meta.get("onnx_sha256") or ""), run_id=str(meta.get("run_id") or ""),
                              brief=str(brief or ""), package_sha256=meta.get("package_sha256"))
    return ReleaseResult(tag=tag, from_stage=stage, to_stage="production", champion=champion, integration=integration,
                         entry=entry, load_test=load, evidence=evidence, evidence_dir=evidence_dir)


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
        from ..feedback import labelled_metrics

        report.metrics = labelled_metrics(pa.tag, pb.tag, log_dir=root, logs=(la, lb))
        if not report.metrics:
            report.notes.append("metrics need labels: `workbench feedback` joins them to the log and keeps them")
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
