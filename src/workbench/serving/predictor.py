"""The prediction path: load a model package, verify it, validate requests, score them, build the answers.

:class:`Predictor` is everything ``bento/service.py`` does, without BentoML, so it is tested and benchmarked
in-process. :func:`resolve_model` finds the model to serve. Nothing here imports scikit-learn, shap or fairlearn
or unpickles anything: the model is ONNX bytes and two JSON files.

Which model, and how it is verified
-----------------------------------
:func:`resolve_model` takes ``$WORKBENCH_MODEL_TAG`` if set, else -- in a built Bento -- the model the Bento
was built with (its ``bento.yaml``; a Bento does not follow the pointer), else the production pointer
(``$BENTOML_HOME/workbench/production.json``). :meth:`Predictor.load` then reads the ONNX file once, checks its
sha256 against ``serving.json``, the pointer (when it names this tag) and the model store's metadata (when
promotion recorded it), builds the onnxruntime session from those same bytes, and scores an all-missing record
as a self-test (every input imputed in the graph to what the task answers: a probability, K probabilities summing
to 1, or a finite prediction). Any failure raises
:class:`ModelVerificationError`; the service then stays not ready and answers 503 with the reason.

The hot path, per request
-------------------------
parse + validate the JSON in one pydantic-core call (into plain dicts, no model objects) -> records to columns
in C (``zip(*map(itemgetter(...), rows))``) -> one float block and one object block, whose rows are the
graph's inputs -> guard flags (numpy over the numeric block, one set operation per categorical column) ->
the C++ session's ``run`` -> the task's answer dicts, one per record (the only per-record Python loop; see
:mod:`workbench.serving.answers`, the one place where binary, multiclass and regression differ) -> the prediction
log -> JSON via pydantic-core. One record, the common request, skips the columns: its values go straight into
preallocated feed buffers and the guard checks it alone. For one record the whole path, log included, takes
about 1.3x a bare ``InferenceSession.run`` (49 vs 37 us here; benchmarks/README.md).
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any

import numpy as np
from pydantic_core import to_json

from ..errors import WorkbenchError
from .answers import answers_for
from .guard import Guard
from .pointer import pointer_path, production_pointer
from .schema import RequestError, RequestSchema, ServingConfig
from .scorer import OnnxScorer

__all__ = ["ModelRef", "ModelVerificationError", "Predictor", "Reply", "Unavailable", "load_predictor",
           "new_request_id", "resolve_model"]

log = logging.getLogger(__name__)


class ModelVerificationError(WorkbenchError):
    """The model package cannot be served as it is (missing, altered, or failing its self-test)."""

    exit_code = 3


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: its tag, its folder in the store, where the choice came from, and the sha256 values
    that certify its ONNX bytes besides ``serving.json`` (``{who certifies: sha256}``)."""

    tag: str
    path: Path
    source: str
    certified: dict[str, str] = field(default_factory=dict)


def _bento_model(bento_dir: str | Path | None) -> str | None:
    """The workbench model a built Bento was built with (``bento.yaml``), or None outside a Bento."""
    if bento_dir is None:
        return None
    p = Path(bento_dir) / "bento.yaml"
    if not p.is_file():
        return None
    import yaml

    info = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    tags = {str(m["tag"]) for svc in info.get("services") or [] for m in svc.get("models") or []}
    return tags.pop() if len(tags) == 1 else None  # the service references exactly one model


def resolve_model(*, bento_dir: str | Path | None = None) -> ModelRef:
    """The model to serve: ``$WORKBENCH_MODEL_TAG``, else the model a built Bento was built with (its
    ``bento.yaml`` in ``bento_dir``), else the production pointer.

    Raises
    ------
    LookupError
        None of them names a model (nothing promoted yet).
    ModelVerificationError
        The named tag is not in the BentoML model store.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    env = os.environ.get("WORKBENCH_MODEL_TAG")
    pinned = _bento_model(bento_dir)
    ptr = production_pointer()
    if env:
        tag, source = env, "$WORKBENCH_MODEL_TAG"
    elif pinned:
        tag, source = pinned, f"the Bento it was built into ({Path(bento_dir or '.') / 'bento.yaml'})"
    elif ptr:
        tag, source = ptr["tag"], f"the production pointer {pointer_path()}"
    else:
        raise LookupError(f"no production model: {pointer_path()} does not exist; run `workbench promote latest` "
                          "or set WORKBENCH_MODEL_TAG")
    try:
        stored = bentoml.models.get(tag)
    except NotFound:
        raise ModelVerificationError(f"model {tag} (named by {source}) is not in the BentoML model store",
                                     hint="check $BENTOML_HOME, or promote/roll back again") from None
    resolved = str(stored.tag)
    certified = {}
    if ptr and ptr.get("tag") == resolved and ptr.get("sha256"):
        certified["the production pointer"] = str(ptr["sha256"])
    if (stored.info.metadata or {}).get("onnx_sha256"):
        certified["the model store metadata"] = str(stored.info.metadata["onnx_sha256"])
    return ModelRef(tag=resolved, path=Path(stored.path), source=source, certified=certified)


@dataclass(frozen=True, slots=True)
class Reply:
    """An HTTP answer: status, JSON body, request id."""

    status: int
    body: bytes
    request_id: str


def new_request_id() -> str:
    """128 random bits as 32 hex digits (``uuid4().hex`` costs 4x more; 1.5 us matters on a 50 us path)."""
    return os.urandom(16).hex()


def _getter(names: Sequence[str]) -> Any:
    """``record -> tuple of its values for names`` (``itemgetter`` returns a bare value for one name)."""
    if len(names) >= 2:
        return itemgetter(*names)
    if len(names) == 1:
        name = names[0]
        return lambda r: (r[name],)
    return lambda r: ()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Predictor:
    """A verified model package, ready to answer prediction requests.

    Build it with :meth:`load`. :meth:`handle` is the HTTP path (JSON bytes in, :class:`Reply` out; a bad
    request becomes a 4xx reply, never an exception); :meth:`predict` is the Python path (records in, the
    answer dict out; a bad request raises :class:`~workbench.serving.schema.RequestError`).
    """

    def __init__(self, config: ServingConfig, scorer: OnnxScorer, *, tag: str, sha256: str) -> None:
        self.config = config
        self.scorer = scorer
        self.tag = tag
        self.sha256 = sha256
        self.schema = RequestSchema(config)
        # The task's answers (binary / multiclass / regression): chosen once, so the hot path never asks.
        self.answers = answers_for(config)
        self._run = self.answers.run(scorer)
        self._envelope = self.answers.envelope
        self.guard = Guard(config.inputs)
        self._numeric = self.guard.numeric
        self._categorical = self.guard.categorical
        self._get_numeric = _getter(self._numeric)
        self._get_categorical = _getter(self._categorical)
        # One record, the common request: its feeds are written into two preallocated blocks whose [1, 1] views
        # are a ready-made feeds dict (0.8 us instead of 3.4 us to build them). One caller at a time uses them;
        # a concurrent caller (another thread) builds its own feeds instead of waiting.
        self._num1 = np.empty((len(self._numeric), 1, 1), dtype=np.float32)
        self._cat1 = np.empty((len(self._categorical), 1, 1), dtype=object)
        self._feeds1 = dict(zip(self._numeric, self._num1, strict=True))
        self._feeds1.update(zip(self._categorical, self._cat1, strict=True))
        self._one = threading.Lock()
        self.ready = False
        #: Optional :class:`~workbench.monitoring.log.PredictionLog`: every answered request is appended before
        #: the answer is returned (set by the service).
        self.log: Any = None
        #: Optional callback ``(n_rows, flags)`` after each scored request (the service's Prometheus counters).
        self.on_scored: Any = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, model_dir: str | Path, *, tag: str | None = None, certified: Mapping[str, str] | None = None,
             threads: int = 1) -> Predictor:
        """Load and verify a model package folder (``serving.json`` + the ONNX file it names).

        Parameters
        ----------
        model_dir:
            The model's folder in the BentoML store (``bentoml.models.get(tag).path``).
        tag:
            The model's tag, reported as ``model_version`` (default: the folder's ``<parent>:<name>``).
        certified:
            Further certificates of the ONNX bytes, ``{who: sha256}`` (the production pointer, the model store's
            metadata: :attr:`ModelRef.certified`); each must match too.
        threads:
            onnxruntime intra-op threads; 1 per worker process (see the service's notes).

        Raises
        ------
        ModelVerificationError
            A missing file, a sha256 that differs from ``serving.json`` or from a certificate, a graph
            whose inputs differ from ``serving.json``, or a failed self-test.
        """
        d = Path(model_dir)
        try:
            config = ServingConfig.load(d / "serving.json")
        except WorkbenchError as exc:
            raise ModelVerificationError(exc.message, hint=exc.hint) from None
        onnx_path = d / config.onnx_file
        try:
            data = onnx_path.read_bytes()
        except FileNotFoundError:
            raise ModelVerificationError(f"{onnx_path} not found", hint="the model package is incomplete; "
                                         "promote the model again") from None
        actual = _sha256(data)
        for name, want in {"serving.json (onnx_sha256)": config.onnx_sha256, **(certified or {})}.items():
            if actual != want:
                raise ModelVerificationError(
                    f"{onnx_path} has sha256 {actual}, but {name} certifies {want}: refusing to serve it",
                    hint="the package was altered after promotion; promote again or roll back")
        try:
            # the task picks the graph output the scorer reads (binary: the call every package before it made)
            task = {} if config.task == "binary_classification" else {"task": config.task}
            scorer = OnnxScorer(data, [i.model_dump() for i in config.inputs], threads=threads, **task)
        except Exception as exc:  # onnxruntime raises its own types
            raise ModelVerificationError(f"{onnx_path} does not load as the model serving.json describes: {exc}",
                                         hint="promote the model again") from None
        self = cls(config, scorer, tag=tag or f"{d.parent.name}:{d.name}", sha256=actual)
        self.self_test()
        self.ready = True
        detail = {"binary_classification": f"threshold {config.threshold:g}" if config.threshold else "",
                  "multiclass_classification": f"{len(config.classes or [])} classes"}.get(config.task, "")
        log.info("serving %s (%s, sha256 %s, %d inputs%s)", self.tag, config.task, actual[:12], len(config.inputs),
                 f", {detail}" if detail else "")
        return self

    def self_test(self) -> None:
        """Score an all-missing record: every input must be imputed in the graph to what the task answers (a
        probability in [0, 1]; K probabilities summing to 1; a finite prediction)."""
        try:
            scores, _ = self._score([{i.name: None for i in self.config.inputs}])
        except Exception as exc:  # onnxruntime raises its own types (e.g. an output the graph lacks)
            raise ModelVerificationError(
                f"self-test failed: the graph does not answer as a {self.config.task} model reading output "
                f"'{self.answers.output}': {type(exc).__name__}: {exc}", hint="export the model again") from None
        problem = self.answers.self_test(np.asarray(scores))
        if problem:
            raise ModelVerificationError(f"self-test failed: {problem}",
                                         hint="the graph does not impute missing values; export it again")

    # ------------------------------------------------------------------ scoring
    def _score(self, rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, dict[int, dict[str, str]]]:
        proba, flags, _, _ = self._score_columns(rows)
        return proba, flags

    def _score_columns(self, rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, dict, list, list]:
        """Probabilities and guard flags of validated records (every field present; None = missing).

        Columnar: ``zip(*map(itemgetter(...), rows))`` turns the records into one tuple per input in C; the
        numeric tuples become one ``[n_numeric, n, 1]`` float32 block (None -> NaN) and the categorical ones
        one ``[n_categorical, n, 1]`` object block, whose rows are the model's ``[n, 1]`` inputs (views).
        """
        n = len(rows)
        if n == 1 and self._one.acquire(blocking=False):
            try:
                return self._score_one(rows[0])
            finally:
                self._one.release()
        num_cols = list(zip(*map(self._get_numeric, rows), strict=True))
        cat_cols = list(zip(*map(self._get_categorical, rows), strict=True))
        flags = self.guard.check(num_cols, cat_cols)
        raw_cat = cat_cols
        if flags:  # a missing category is the pipeline's missing marker "" in the graph
            cat_cols = [tuple("" if v is None else v for v in col) if None in col else col for col in cat_cols]
        feeds = dict(zip(self._numeric, np.array(num_cols, dtype=np.float32).reshape(len(self._numeric), n, 1),
                         strict=True))  # None -> NaN: imputed in the graph
        feeds.update(zip(self._categorical,
                         np.array(cat_cols, dtype=object).reshape(len(self._categorical), n, 1), strict=True))
        return self._run(feeds), flags, num_cols, raw_cat

    def _score_one(self, row: Mapping[str, Any]) -> tuple[np.ndarray, dict, list, list]:
        """:meth:`_score_columns` for one record, through the preallocated feeds (hold ``self._one``)."""
        nv, cv = self._get_numeric(row), self._get_categorical(row)
        one = self.guard.check_one(nv, cv)
        self._num1[:, 0, 0] = nv  # None -> NaN: imputed in the graph
        self._cat1[:, 0, 0] = tuple("" if v is None else v for v in cv) if one else cv
        scores = self._run(self._feeds1)
        return scores, ({0: one} if one else {}), [(v,) for v in nv], [(v,) for v in cv]

    def _answer(self, rows: Sequence[Mapping[str, Any]], request_id: str) -> dict:
        scores, flags, num_cols, cat_cols = self._score_columns(rows)
        try:
            preds, outputs = self.answers.answer(scores, flags)
        except ValueError as exc:  # an output the task cannot have: fail loudly, never answer it
            raise ModelVerificationError(str(exc), hint="the model package is broken; roll back") from None
        if self.log is not None:  # durable before the answer leaves (see workbench.monitoring.log)
            columns = dict(zip(self._numeric, num_cols, strict=True))
            columns.update(zip(self._categorical, cat_cols, strict=True))
            # the values passed the request schema: plain str/int/float/None, serialized as they are
            self.log.append_outputs(request_id, columns, outputs, flags, validated=True)
        if self.on_scored is not None:
            self.on_scored(len(preds), flags)
        return {"model_version": self.tag, "request_id": request_id, **self._envelope, "predictions": preds}

    def predict(self, records: Mapping[str, Any] | Sequence[Mapping[str, Any]], *,
                request_id: str | None = None) -> dict:
        """Score one record (a mapping) or a list of records given as Python objects.

        Returns the answer as a dict (see :class:`~workbench.serving.schema.PredictionResponse`).

        Raises
        ------
        RequestError
            The records break the schema (the message names the record and the field).
        """
        rows, _ = self.schema.parse_python(records)
        return self._answer(rows, request_id or new_request_id())

    def handle(self, body: bytes, *, request_id: str | None = None) -> Reply:
        """Answer a ``POST /predict`` body: 200 with the predictions, or 4xx naming the problem."""
        rid = request_id or new_request_id()
        limit = self.config.limits.max_body_bytes
        try:
            if len(body) > limit:
                raise RequestError.single(413, "body_too_large", f"the request body has {len(body)} bytes; the "
                                          f"limit is {limit} (limits.max_body_bytes); split the batch")
            rows, _ = self.schema.parse_json(body)
        except RequestError as exc:
            return Reply(exc.status, to_json({**exc.to_dict(), "request_id": rid}), rid)
        return Reply(200, to_json(self._answer(rows, rid)), rid)


class Unavailable:
    """Stands in for a :class:`Predictor` whose model failed verification: never ready, every request 503.

    The service keeps running (``/livez`` 200, ``/readyz`` 503) and says why on every request, instead of a
    worker that crashes at start-up and is respawned forever while the listening socket hangs.
    """

    ready = False

    def __init__(self, reason: str, *, tag: str = "") -> None:
        self.reason = reason
        self.tag = tag

    def handle(self, body: bytes, *, request_id: str | None = None) -> Reply:
        rid = request_id or new_request_id()
        message = f"the model is not being served: {self.reason}"
        payload = {"error": message, "errors": [{"record": None, "field": None, "type": "model_unavailable",
                                                  "message": message}], "error_count": 1, "request_id": rid}
        return Reply(503, to_json(payload), rid)


def load_predictor(ref: ModelRef, *, threads: int = 1) -> Predictor | Unavailable:
    """:meth:`Predictor.load` for the service: a failed verification is logged and served as :class:`Unavailable`."""
    try:
        return Predictor.load(ref.path, tag=ref.tag, certified=ref.certified, threads=threads)
    except ModelVerificationError as exc:
        log.error("not serving %s (from %s): %s", ref.tag, ref.source, exc)
        return Unavailable(str(exc), tag=ref.tag)
