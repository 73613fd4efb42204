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

The package is verified whole when it carries ``package.json`` (``{"format": 1, "files": {relative path:
sha256}}``, written at registration): its own sha256 must match ``package_sha256`` in the model store's metadata
and in the production pointer (when they have one), every listed file must match its sha256, and a file in the
folder that is not listed (except BentoML's own ``model.yaml``) is refused -- so ``serving.json`` (threshold,
labels, limits), the contract, the profile, ``monitoring.json`` and the ONNX bytes are all covered, and the bytes
verified are the bytes used. A package without ``package.json`` (registered before it existed) loads as before,
on its ONNX sha256 -- unless a certificate names a ``package_sha256``, when a missing ``package.json`` is refused.
Error messages name files relative to the package, never the store's absolute path.

One model per server
--------------------
``resolve_model(pin=True)`` (what ``bento/service.py`` calls) records what it resolved in
``$WORKBENCH_SERVING_PIN`` (tag, certificates, the pid of the process that resolved it). ``bentoml serve`` imports
the service in its first process, before any worker starts, and its workers -- respawned ones too -- inherit that
environment: a process whose ancestor pinned a model serves that model, whatever the production pointer says
later (a promotion or rollback takes effect when the server is restarted: a deliberate swap).

That pin applies to a model named by ``$WORKBENCH_MODEL_TAG`` or a built Bento, and to any model with
``WORKBENCH_HOT_SWAP=0``. A model from the production pointer is followed instead (hot swap, the default): every
worker resolves the pointer itself and :class:`workbench.serving.deploy.Deployment` follows it -- a new champion
is loaded and verified beside the old one and swapped in atomically, a challenger (shadow or canary) is served
beside it, and a model that fails verification is never swapped in (see :mod:`workbench.serving.deploy`).

The hot path, per request
-------------------------
parse + validate the JSON in one pydantic-core call (into plain dicts, no model objects) -> records to columns
in C (``zip(*map(itemgetter(...), rows))``) -> one float block and one object block, whose rows are the
graph's inputs -> guard flags (numpy over the numeric block, one set operation per categorical column) ->
the C++ session's ``run`` -> the task's answer dicts, one per record (the only per-record Python loop; see
:mod:`workbench.serving.answers`, the one place where binary, multiclass and regression differ) -> the prediction
log -> JSON via pydantic-core. One record with a missing or unusual value skips the columns: its values go
straight into preallocated feed buffers and the guard checks it alone.

One clean record (valid, nothing flagged), the common request, takes a shorter path still
(:meth:`Predictor._one_path_for`): the body is validated without the unknown-key check (a count of ``:`` proves
there is none), the guard's all-clear is decided in C (:meth:`~workbench.serving.guard.Guard.clean_one`), the
numbers are packed into the feed buffer in one ``struct`` call, and the answer and the prediction log line are
not built as objects and serialised: both are bytes formats made once, by serialising the very objects the
general path serialises with a hole for each value (:func:`workbench.monitoring.log.json_template`), and each
request fills the holes with its values' JSON (the floats in one ``to_json`` call, the categories and labels
serialised at load). Answers and log lines are byte-identical to the general path's (tested for every task).
It saves Python work: the path's cost over the C++ session call fell from 11-16 us to 6-10 us per record (log
included); measured (benchmarks/README.md), the whole path with the log is 1.19-1.45x a bare
``InferenceSession.run`` of the same graph (binary HGB to multiclass logistic regression), down from 1.34-1.87x.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import struct
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from operator import itemgetter
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
from pydantic_core import to_json

from ..errors import WorkbenchError
from ..monitoring.log import hole, json_template
from .answers import answers_for
from .guard import Guard
from .pointer import pointer_path, production_pointer
from .schema import RequestError, RequestSchema, ServingConfig
from .scorer import OnnxScorer

__all__ = ["PIN_ENV", "LogUnavailable", "ModelRef", "ModelVerificationError", "Predictor", "Reply", "Unavailable",
           "load_predictor", "model_ref", "new_request_id", "resolve_model", "verify_package"]

PIN_ENV = "WORKBENCH_SERVING_PIN"
"""Environment variable holding the model the server's first process resolved (see "One model per server")."""

PACKAGE_MANIFEST = "package.json"
_STORE_OWN = frozenset({"model.yaml"})  # BentoML's own file in a model's folder

log = logging.getLogger(__name__)


class ModelVerificationError(WorkbenchError):
    """The model package cannot be served as it is (missing, altered, or failing its self-test)."""

    exit_code = 3


class LogUnavailable(WorkbenchError):
    """The prediction log could not record an answered request (the answer is then refused: 503)."""


@dataclass(frozen=True)
class ModelRef:
    """A resolved model: its tag, its folder in the store, where the choice came from, the sha256 values that
    certify its ONNX bytes besides ``serving.json`` (``{who certifies: sha256}``) and those that certify its
    ``package.json`` (``package_certified``)."""

    tag: str
    path: Path
    source: str
    certified: dict[str, str] = field(default_factory=dict)
    package_certified: dict[str, str] = field(default_factory=dict)
    from_pointer: bool = False  # resolved from the production pointer (what hot swap follows)


def _is_ancestor(pid: Any) -> bool:
    if not isinstance(pid, int) or pid == os.getpid():
        return False
    try:
        import psutil  # a BentoML dependency

        return any(p.pid == pid for p in psutil.Process().parents())
    except Exception:  # noqa: BLE001 - no psutil, or /proc unreadable: the direct parent only
        return os.getppid() == pid


def _in_bentoml_worker() -> bool:
    """Whether this process is a worker ``bentoml serve`` started (its command line has ``--worker-id``)."""
    import sys

    return "--worker-id" in sys.argv or any(a.startswith("--worker-id=") for a in sys.argv)


def _inherited_pin() -> dict | None:
    """The model an ancestor process (``bentoml serve``'s first process) resolved, if this is one of its workers."""
    if not _in_bentoml_worker():  # the first process (or a test, a script) resolves for itself
        return None
    raw = os.environ.get(PIN_ENV)
    if not raw:
        return None
    try:
        pin = json.loads(raw)
    except ValueError:
        return None
    return pin if isinstance(pin, dict) and pin.get("tag") and _is_ancestor(pin.get("pid")) else None


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


def resolve_model(*, bento_dir: str | Path | None = None, pin: bool = False) -> ModelRef:
    """The model to serve: ``$WORKBENCH_MODEL_TAG``, else the model a built Bento was built with (its
    ``bento.yaml`` in ``bento_dir``), else the production pointer.

    ``pin=True`` (the service): a model an ancestor process pinned wins over all of them, and what is resolved
    here is pinned for this process's children (module docstring, "One model per server").

    Raises
    ------
    LookupError
        None of them names a model (nothing promoted yet).
    ModelVerificationError
        The named tag is not in the BentoML model store.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    inherited = _inherited_pin() if pin else None
    if inherited is not None:  # a worker of a server that resolved its model once, at start
        try:
            stored = bentoml.models.get(inherited["tag"])
        except NotFound:
            raise ModelVerificationError(f"model {inherited['tag']} (resolved when the server started) is no "
                                         "longer in the BentoML model store", hint="restart the server") from None
        return ModelRef(tag=str(stored.tag), path=Path(stored.path), source=str(inherited.get("source", "")),
                        certified=dict(inherited.get("certified") or {}),
                        package_certified=dict(inherited.get("package_certified") or {}))
    ref = _resolve(bento_dir)
    if pin:
        os.environ[PIN_ENV] = json.dumps({"tag": ref.tag, "pid": os.getpid(),
                                          "source": f"{ref.source}, resolved when the server started",
                                          "certified": ref.certified, "package_certified": ref.package_certified})
    return ref


def _resolve(bento_dir: str | Path | None) -> ModelRef:
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
    meta = stored.info.metadata or {}
    if meta.get("onnx_sha256"):
        certified["the model store metadata"] = str(meta["onnx_sha256"])
    package = {}
    if ptr and ptr.get("tag") == resolved and ptr.get("package_sha256"):
        package["the production pointer"] = str(ptr["package_sha256"])
    if meta.get("package_sha256"):
        package["the model store metadata"] = str(meta["package_sha256"])
    return ModelRef(tag=resolved, path=Path(stored.path), source=source, certified=certified,
                    package_certified=package, from_pointer=not env and not pinned)


def model_ref(tag: str, *, source: str, sha256: str | None = None, package_sha256: str | None = None,
              who: str = "the production pointer") -> ModelRef:
    """The :class:`ModelRef` of ``tag`` in the model store, certified by ``sha256`` / ``package_sha256`` (what
    the pointer says of it, named ``who``) besides the store's metadata: what hot swap loads.

    Raises
    ------
    ModelVerificationError
        The tag is not in the BentoML model store.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        stored = bentoml.models.get(tag)
    except (NotFound, ValueError):  # ValueError: not a tag at all
        raise ModelVerificationError(f"model {tag} (named by {source}) is not in the BentoML model store",
                                     hint="check $BENTOML_HOME, or promote/roll back again") from None
    meta = stored.info.metadata or {}
    certified, package = {}, {}
    if sha256:
        certified[who] = str(sha256)
    if meta.get("onnx_sha256"):
        certified["the model store metadata"] = str(meta["onnx_sha256"])
    if package_sha256:
        package[who] = str(package_sha256)
    if meta.get("package_sha256"):
        package["the model store metadata"] = str(meta["package_sha256"])
    return ModelRef(tag=str(stored.tag), path=Path(stored.path), source=source, certified=certified,
                    package_certified=package, from_pointer=True)


class Reply(NamedTuple):
    """An HTTP answer: status, JSON body, request id (immutable; a named tuple builds in half a frozen
    dataclass's time, on a path where 0.2 us is 1% of the whole)."""

    status: int
    body: bytes
    request_id: str


_ID_BATCH = 128
_ids: Any = iter(())


def _fresh_ids() -> None:
    """Draw the next :data:`_ID_BATCH` request ids (one ``os.urandom`` call)."""
    global _ids
    raw = os.urandom(16 * _ID_BATCH).hex()
    _ids = iter([raw[k:k + 32] for k in range(0, len(raw), 32)])


def _forget_ids() -> None:
    global _ids
    _ids = iter(())


os.register_at_fork(after_in_child=_forget_ids)  # a forked child never hands out its parent's ids


def new_request_id() -> str:
    """128 random bits (``os.urandom``) as 32 hex digits, drawn :data:`_ID_BATCH` at a time: 0.1 us instead of
    0.4 us a call (``uuid4().hex`` costs 1.5 us) on a path of ~20 us. ``next`` on the list iterator is atomic
    under the GIL, so two threads never get the same id; a thread that finds the batch used up draws a new one
    (two doing so at once each draw their own)."""
    try:
        return next(_ids)
    except StopIteration:
        _fresh_ids()
        return next(_ids)


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


def _unsafe(rel: str) -> bool:
    parts = Path(rel).parts
    return not rel or Path(rel).is_absolute() or ".." in parts or "\\" in rel


def verify_package(model_dir: str | Path, *, certified: Mapping[str, str] | None = None) -> dict[str, bytes] | None:
    """Verify a model package against its ``package.json``; return ``{relative path: bytes}`` of every listed
    file (the bytes verified, for the caller to use), or None for a package without ``package.json``.

    ``certified``: ``{who: sha256 of package.json}`` (the model store metadata, the production pointer).

    Raises
    ------
    ModelVerificationError
        ``package.json`` differs from a certificate, is missing while certified, is malformed, or a file is
        missing, altered or not listed. Messages name files relative to the package.
    """
    d = Path(model_dir)
    certified = dict(certified or {})
    hint = "the package was altered after promotion; promote again or roll back"
    try:
        raw = (d / PACKAGE_MANIFEST).read_bytes()
    except FileNotFoundError:
        if certified:
            raise ModelVerificationError(
                f"{PACKAGE_MANIFEST} is missing from the model package, but {', '.join(certified)} certifies one: "
                "refusing to serve it", hint=hint) from None
        return None
    actual = _sha256(raw)
    for who, want in certified.items():
        if actual != want:
            raise ModelVerificationError(f"{PACKAGE_MANIFEST} has sha256 {actual}, but {who} certifies {want}: "
                                         "refusing to serve it", hint=hint)
    try:
        doc = json.loads(raw)
        files = doc["files"]
        ok = doc.get("format") == 1 and isinstance(files, dict) and all(
            isinstance(k, str) and isinstance(v, str) for k, v in files.items())
    except (ValueError, KeyError, TypeError, AttributeError):
        ok = False
    if not ok:
        raise ModelVerificationError(f"{PACKAGE_MANIFEST} is not a package manifest (format 1, files: "
                                     "{path: sha256})", hint="promote the model again")
    bad = sorted(k for k in files if _unsafe(k))
    if bad:
        raise ModelVerificationError(f"{PACKAGE_MANIFEST} lists paths outside the package: {bad[:5]}", hint=hint)
    on_disk = {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file() or p.is_symlink()}
    unlisted = sorted(on_disk - set(files) - _STORE_OWN - {PACKAGE_MANIFEST})
    if unlisted:
        raise ModelVerificationError(f"the model package holds files {PACKAGE_MANIFEST} does not list: "
                                     f"{unlisted[:5]}: refusing to serve it", hint=hint)
    out: dict[str, bytes] = {}
    for rel, want in sorted(files.items()):
        p = d / rel
        if p.is_symlink() or not p.is_file():
            raise ModelVerificationError(f"{rel}, listed in {PACKAGE_MANIFEST}, is missing from the model package "
                                         "(or not a regular file)", hint=hint)
        data = p.read_bytes()
        got = _sha256(data)
        if got != want:
            raise ModelVerificationError(f"{rel} has sha256 {got}, but {PACKAGE_MANIFEST} certifies {want}: "
                                         "refusing to serve it", hint=hint)
        out[rel] = data
    return out


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
        # A clean record's numbers (floats: the schema turns JSON integers into floats) are packed into the float
        # block in one C call (the C double -> float cast numpy's assignment makes, ~0.15 us instead of ~0.35);
        # a record with a missing number goes through numpy (None -> NaN). Its categories are stored one by one
        # (cheaper than a slice assignment up to a few inputs).
        self._num1_bytes = memoryview(self._num1).cast("B")
        self._pack_num1 = struct.Struct(f"={len(self._numeric)}f").pack_into
        self._cat1_flat = self._cat1.reshape(-1)  # a view of the object block
        self._cat1_each = len(self._categorical) <= 4
        #: The prediction log's input columns, in the order the log line lists them (numeric, then categorical).
        self._log_names = [*self._numeric, *self._categorical]
        # One clean record (valid, nothing flagged), the common request, is answered from formats: the response
        # and the log line are serialised once, with holes, from the same objects the general path serialises
        # (answers.one_record, PredictionLog._line), and each request fills the holes with the JSON of its
        # values (its floats in one to_json call; its categories and label looked up, serialised at load).
        self._max_body = config.limits.max_body_bytes
        self._n_out = self.answers.n_outputs
        self._label_json = [to_json(c) for c in self.answers.labels]
        self._cat_json = [{c: to_json(c) for c in allowed} if allowed is not None else None
                          for allowed in self.guard.allowed]
        # no formats with derived features (computed into the record first), nor when a categorical input's known
        # categories are missing or hold "" (flagged as missing whatever they say): the all-clear is not decided in C
        self._formats_ok = not config.derive and all(a is not None and "" not in a for a in self.guard.allowed)
        # the holes: the label (classifiers), then each output value (P(positive); K probabilities; the prediction)
        self._holes = [*(["label"] if self.answers.labels else []), *(f"out {k}" for k in range(self._n_out))]
        self._one_path: tuple = (self, None, None)  # (log, tag, function): see _make_one_path
        # Derived date features (serving.json ``derive``): computed from the request's date strings before scoring.
        self._derive = [dict(x) for x in config.derive]
        if self._derive:  # imported only when needed: `workbench.data` imports polars (not a serving package)
            from ..data.derive import derive_record

            self._derive_record = derive_record
        self.ready = False
        self.package_verified = False
        self.model_dir: Path | None = None  # the package folder (set by load)
        #: What to do when the prediction log cannot record an answer: "refuse" (503) or "serve" (answer anyway).
        self.log_policy = "refuse"
        #: Optional callback ``(exc, policy)`` when a log write fails (the service's Prometheus counters).
        self.on_log_failure: Any = None
        #: Optional :class:`~workbench.monitoring.log.PredictionLog`: every answered request is appended before
        #: the answer is returned (set by the service).
        self.log: Any = None
        #: Optional callback ``(n_rows, flags)`` after each scored request (the service's Prometheus counters).
        self.on_scored: Any = None

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, model_dir: str | Path, *, tag: str | None = None, certified: Mapping[str, str] | None = None,
             package_certified: Mapping[str, str] | None = None, threads: int = 1) -> Predictor:
        """Load and verify a model package folder (``package.json`` when present, ``serving.json`` + the ONNX file
        it names).

        Parameters
        ----------
        model_dir:
            The model's folder in the BentoML store (``bentoml.models.get(tag).path``).
        tag:
            The model's tag, reported as ``model_version`` (default: the folder's ``<parent>:<name>``).
        certified:
            Further certificates of the ONNX bytes, ``{who: sha256}`` (the production pointer, the model store's
            metadata: :attr:`ModelRef.certified`); each must match too.
        package_certified:
            Certificates of ``package.json`` (``package_sha256`` of the store metadata and the pointer:
            :attr:`ModelRef.package_certified`); see :func:`verify_package`.
        threads:
            onnxruntime intra-op threads; 1 per worker process (see the service's notes).

        Raises
        ------
        ModelVerificationError
            An altered, missing or unlisted file, a sha256 that differs from ``serving.json``, ``package.json`` or
            a certificate, a graph whose inputs differ from ``serving.json``, or a failed self-test.
        """
        d = Path(model_dir)
        verified = verify_package(d, certified=package_certified)  # None: a package from before package.json
        try:
            raw_config = verified["serving.json"] if verified is not None and "serving.json" in verified \
                else (d / "serving.json").read_bytes()
        except FileNotFoundError:
            raise ModelVerificationError("serving.json is missing from the model package",
                                         hint="serve a model package made by `workbench promote`") from None
        try:
            config = ServingConfig.from_json(raw_config)
        except WorkbenchError as exc:
            raise ModelVerificationError(exc.message, hint=exc.hint) from None
        if verified is not None and config.onnx_file not in verified:
            raise ModelVerificationError(f"{config.onnx_file} (serving.json's onnx_file) is not listed in "
                                         "package.json", hint="promote the model again")
        try:
            data = verified[config.onnx_file] if verified is not None else (d / config.onnx_file).read_bytes()
        except FileNotFoundError:
            raise ModelVerificationError(f"{config.onnx_file} is missing from the model package",
                                         hint="the model package is incomplete; promote the model again") from None
        actual = _sha256(data)
        for name, want in {"serving.json (onnx_sha256)": config.onnx_sha256, **(certified or {})}.items():
            if actual != want:
                raise ModelVerificationError(
                    f"{config.onnx_file} has sha256 {actual}, but {name} certifies {want}: refusing to serve it",
                    hint="the package was altered after promotion; promote again or roll back")
        try:
            # the task picks the graph output the scorer reads (binary: the call every package before it made)
            task = {} if config.task == "binary_classification" else {"task": config.task}
            scorer = OnnxScorer(data, [i.model_dump() for i in config.inputs], threads=threads, **task)
        except Exception as exc:  # onnxruntime raises its own types
            raise ModelVerificationError(f"{config.onnx_file} does not load as the model serving.json describes: "
                                         f"{exc}".replace(str(d), "<model package>"),
                                         hint="promote the model again") from None
        self = cls(config, scorer, tag=tag or f"{d.parent.name}:{d.name}", sha256=actual)
        self.package_verified = verified is not None
        self.model_dir = d
        self.self_test()
        self.ready = True
        detail = {"binary_classification": f"threshold {config.threshold:g}" if config.threshold else "",
                  "multiclass_classification": f"{len(config.classes or [])} classes"}.get(config.task, "")
        log.info("serving %s (%s, sha256 %s, %d inputs%s; %s)", self.tag, config.task, actual[:12],
                 len(config.inputs), f", {detail}" if detail else "",
                 f"{len(verified)} files verified by package.json" if verified is not None
                 else "no package.json: ONNX sha256 verified")
        return self

    def readiness(self) -> tuple[bool, str]:
        """``(ready, why not)``: the model is loaded and verified, and the prediction log (when on, and refusing
        on failure) is writable -- probed again here while it is not, so the service recovers by itself."""
        if not self.ready:
            return False, "the model is not loaded"
        lg = self.log
        if lg is not None and not lg.healthy and self.log_policy == "refuse" and not lg.check():
            return False, f"prediction log unwritable: {lg.last_error}"
        return True, ""

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
        proba, flags, _ = self._score_columns(rows)
        return proba, flags

    def _score_columns(self, rows: Sequence[Mapping[str, Any]]) -> tuple[np.ndarray, dict, Any]:
        """Scores and guard flags of validated records (every field present; None = missing), and the records'
        values as one column (a sequence of values, one per record) per input in :attr:`_log_names` order, for
        the prediction log (an iterable, consumed only when the log is on).

        Columnar: ``zip(*map(itemgetter(...), rows))`` turns the records into one tuple per input in C; the
        numeric tuples become one ``[n_numeric, n, 1]`` float32 block (None -> NaN) and the categorical ones
        one ``[n_categorical, n, 1]`` object block, whose rows are the model's ``[n, 1]`` inputs (views).
        """
        n = len(rows)
        if self._derive:  # derived date features, from the request's date strings (serving.json "derive")
            specs, derive = self._derive, self._derive_record
            for r in rows:
                r.update(derive(r, specs))
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
        return self._run(feeds), flags, num_cols + raw_cat

    def _score_one(self, row: Mapping[str, Any]) -> tuple[np.ndarray, dict, Any]:
        """:meth:`_score_columns` for one record, through the preallocated feeds (hold ``self._one``)."""
        nv, cv = self._get_numeric(row), self._get_categorical(row)
        one = self.guard.check_one(nv, cv)
        if one:  # a missing or unusual value: the general assignments (None -> NaN, None -> "")
            self._num1[:, 0, 0] = nv  # None -> NaN: imputed in the graph
            self._cat1_flat[:] = tuple("" if v is None else v for v in cv)
        else:
            self._fill_clean(nv, cv)
        scores = self._run(self._feeds1)
        return scores, ({0: one} if one else {}), zip(nv + cv)  # zip of one tuple: its values as 1-tuples

    def _fill_clean(self, nv: tuple, cv: tuple) -> None:
        """Write a clean record (every number present and in range, every category known) into the one-record
        feeds (hold ``self._one``)."""
        self._pack_num1(self._num1_bytes, 0, *nv)
        if self._cat1_each:
            cells = self._cat1_flat
            for k, v in enumerate(cv):
                cells[k] = v
        else:
            self._cat1_flat[:] = cv

    def _make_one_path(self) -> tuple:
        """``(log, tag, the function answering one clean record under them)`` (None for no formats: another kind of
        log, derived features, a category set that cannot be decided in C), kept in :attr:`_one_path`; see
        :meth:`_one_path_for`."""
        lg, tag = self.log, self.tag
        fn = None
        if self._formats_ok and (lg is None or (hasattr(lg, "line_format") and hasattr(lg, "write_line"))):
            try:
                fn = self._one_path_for(lg)
            except ValueError as exc:  # a NUL in a tag, class or column name: no format, the general path serves
                log.warning("one-record formats unavailable for %s (%s): requests take the general path", tag, exc)
                self._formats_ok = False
        self._one_path = path = (lg, tag, fn)
        return path

    def _one_path_for(self, lg: Any) -> Any:
        """``answer_one(body, request_id) -> Reply | None``: the answer to a body holding one clean record (the
        common request) through the log ``lg`` (or None) under the current tag, from the formats; None when the
        body is anything else (a batch, invalid, a flagged value, the buffers in use, an output the task cannot
        have...): the general path then answers it, and says what is wrong.

        Same answer, byte for byte, as the general path (tested): the holes are filled with what ``to_json``
        writes for the values the general path would serialise; the log line is written (one ``write(2)``) before
        the answer is returned, and a failed write is refused (503) or served as the general path does. The
        formats and everything else fixed at load are the function's own local names; what may change later
        (the scorer call, the callbacks) it reads per request.
        """
        outs = [hole(f"out {k}") for k in range(self._n_out)]
        pred, logged = self.answers.one_record(hole("label"), outs, {})
        reply_fmt, reply_order = json_template(self._response(hole("request_id"), [pred]),
                                               ["request_id", *self._holes])
        line_fmt, line_order = lg.line_format(self._log_names, logged, self._holes) if lg is not None \
            else (b"", None)
        parse, clean, fill, one = self.schema.parse_one, self.guard.clean_one, self._fill_clean, self._one
        get_numeric, get_categorical, feeds = self._get_numeric, self._get_categorical, self._feeds1
        one_scores, labels = self.answers.one_scores, (self._label_json or None)
        cat_json, json_of = self._cat_json, dict.__getitem__
        first_input, max_body = 1 + self._n_out, self._max_body
        ts, write = (lg.ts_json, lg.write_line) if lg is not None else (None, None)
        new_reply = tuple.__new__

        def answer_one(body: bytes, request_id: str) -> Reply | None:
            if len(body) > max_body:
                return None
            row = parse(body)
            if row is None:
                return None
            nv, cv = get_numeric(row), get_categorical(row)
            if not clean(nv, cv) or not one.acquire(blocking=False):
                return None
            try:
                fill(nv, cv)
                scores = self._run(feeds)
            finally:
                one.release()
            try:
                label, values = one_scores(scores)
            except (ValueError, TypeError, IndexError):  # not an answer (a broken graph or a stand-in scorer)
                return None  # the general path scores it again and fails loudly
            # the JSON of the request id, the outputs and the numbers in one call, cut at the commas: numbers
            # hold none, nor does a request id without one (the service's: letters, digits, "._:-")
            if "," in request_id:
                pieces = [to_json(request_id), *to_json((*values, *nv))[1:-1].split(b",")]
            else:
                pieces = to_json((request_id, *values, *nv))[1:-1].split(b",")
            rid = pieces[0]
            answer = pieces[1:first_input] if labels is None else (labels[label], *pieces[1:first_input])
            if write is not None:  # every category is a known one (clean), serialised at load
                args = (rid, ts(), *pieces[first_input:], *map(json_of, cat_json, cv), *answer)
                try:
                    write(line_fmt % (args if line_order is None else line_order(args)), 1)
                except OSError as exc:  # complete or not at all (workbench.monitoring.log): never unlogged
                    self._log_failed(exc, request_id)
            if self.on_scored is not None:
                self.on_scored(1, {})
            args = (rid, *answer)
            # (tuple.__new__ builds the named tuple without its generated Python-level __new__)
            return new_reply(Reply, (200, reply_fmt % (args if reply_order is None else reply_order(args)),
                                     request_id))

        return answer_one

    def _log_failed(self, exc: OSError, request_id: str) -> None:
        """A prediction log line could not be written: refuse the answer (:class:`LogUnavailable`: 503) or, with
        ``log_policy`` ``"serve"``, say loudly that it is answered unlogged."""
        if self.on_log_failure is not None:
            self.on_log_failure(exc, self.log_policy)
        if self.log_policy != "serve":
            log.error("refused request %s: %s", request_id, exc)
            raise LogUnavailable(str(exc), hint="free space or fix the log folder's permissions "
                                 "(WORKBENCH_LOG_DIR); WORKBENCH_LOG_ON_FAILURE=serve answers anyway") from None
        log.error("answered request %s WITHOUT its prediction log line (WORKBENCH_LOG_ON_FAILURE=serve): %s",
                  request_id, exc)

    def _response(self, request_id: Any, preds: list) -> dict:
        """The answer to a request: the one definition of its fields (the general path and the one-record format)."""
        return {"model_version": self.tag, "request_id": request_id, **self._envelope, "predictions": preds}

    def _answer(self, rows: Sequence[Mapping[str, Any]], request_id: str,
                log_fields: Mapping[str, Any] | None = None, t0: float = 0.0) -> dict:
        scores, flags, cols = self._score_columns(rows)
        try:
            preds, outputs = self.answers.answer(scores, flags)
        except ValueError as exc:  # an output the task cannot have: fail loudly, never answer it
            far = sorted({f for per in flags.values() for f, kind in per.items() if kind == "out_of_range"})
            if far:  # float32 overflow inside the graph on values far outside training: the request's problem
                raise RequestError.single(
                    422, "unscorable", f"the model cannot score this request: {exc}; its values for {far[:10]} are "
                    "outside the training range (flagged out_of_range) and overflow the model's float32 "
                    "arithmetic") from None
            raise ModelVerificationError(str(exc), hint="the model package is broken; roll back") from None
        if self.log is not None:  # durable before the answer leaves (see workbench.monitoring.log)
            self._log_rows(request_id, cols, preds, outputs, flags, log_fields,
                           (time.perf_counter() - t0) if log_fields else 0.0)
        if self.on_scored is not None:
            self.on_scored(len(preds), flags)
        return self._response(request_id, preds)

    def _log_rows(self, request_id: str, cols: Any, preds: list, outputs: dict, flags: Any,
                  log_fields: Mapping[str, Any] | None, latency_s: float) -> None:
        """Write one request's prediction log line (the rows of ``cols``, its answer's ``outputs`` and ``flags``):
        the one place the general path, and :meth:`handle_many`, build it. ``log_fields`` and ``latency_s`` (as
        ``latency_ms``, one value per row) only when given (:meth:`handle`)."""
        columns = dict(zip(self._log_names, cols, strict=True))
        # the values passed the request schema: plain str/int/float/None, serialized as they are
        if log_fields:  # two models served (workbench.serving.deploy): role, who answered, latency per row
            n = len(preds)
            outputs = {**outputs, **{k: [v] * n for k, v in log_fields.items()},
                       "latency_ms": [round(latency_s * 1000.0, 3)] * n}
        try:
            self.log.append_outputs(request_id, columns, outputs, flags, validated=True)
        except OSError as exc:  # complete or not at all (workbench.monitoring.log): never answered unlogged
            self._log_failed(exc, request_id)

    def handle_many(self, bodies: Sequence[bytes], request_ids: Sequence[str], *,
                    log_fields: Mapping[str, Any] | None = None) -> list[Reply]:
        """Answer several ``POST /predict`` bodies with ONE session run over all their records (what a shadow
        challenger does with its queue, :mod:`workbench.serving.deploy`): one :class:`Reply` per body, in order.

        Each body is validated alone; one that is too large or fails validation is answered alone through
        :meth:`handle` (the same 4xx, naming the problem) and the others are scored together. Each answered
        body gets the prediction log line :meth:`handle` writes for it (its own request id, its rows, its flags,
        ``log_fields``), built by the same code (:meth:`_log_rows`), and its own ``on_scored`` call; its
        ``latency_ms`` is the batch's time (parse to scored) divided by the number of bodies scored together. When
        the batch cannot be answered as a whole (an output the task cannot have), each body is answered alone
        through :meth:`handle`, which says which one and why.

        The answers are those :meth:`handle` gives one body at a time (same bytes for a binary model; a
        multiclass batch renormalises in numpy, which may differ in the last bit).
        """
        t0 = time.perf_counter()
        replies: list[Reply | None] = [None] * len(bodies)
        spans: list[tuple[int, int, int]] = []  # (index of the body, first row, end row) in the batch
        rows: list = []
        limit = self._max_body
        for k, body in enumerate(bodies):
            try:
                parsed = self.schema.parse_json(body)[0] if len(body) <= limit else None
            except RequestError:
                parsed = None
            if parsed is None:  # too large or invalid: answered alone, the reply names the problem
                replies[k] = self.handle(body, request_id=request_ids[k], log_fields=log_fields)
                continue
            spans.append((k, len(rows), len(rows) + len(parsed)))
            rows.extend(parsed)
        if not rows:
            return replies  # type: ignore[return-value]
        scores, flags, cols = self._score_columns(rows)
        try:
            preds, outputs = self.answers.answer(scores, flags)
        except ValueError:  # which body is at fault, and why: each one answered alone
            for k, _, _ in spans:
                replies[k] = self.handle(bodies[k], request_id=request_ids[k], log_fields=log_fields)
            return replies  # type: ignore[return-value]
        latency_s = (time.perf_counter() - t0) / len(spans)
        cols = [tuple(c) for c in cols] if self.log is not None else None
        for k, a, b in spans:
            rid = request_ids[k]
            part = preds[a:b]
            part_flags = {i - a: f for i, f in flags.items() if a <= i < b} if flags else {}
            try:
                if self.log is not None:
                    self._log_rows(rid, [c[a:b] for c in cols], part,
                                   {name: col[a:b] for name, col in outputs.items()}, part_flags, log_fields,
                                   latency_s)
            except LogUnavailable as exc:
                replies[k] = _log_refusal(exc, rid)
                continue
            if self.on_scored is not None:
                self.on_scored(len(part), part_flags)
            replies[k] = Reply(200, to_json(self._response(rid, part)), rid)
        return replies  # type: ignore[return-value]

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

    def handle(self, body: bytes, *, request_id: str | None = None, caller_key: str | None = None,
               log_fields: Mapping[str, Any] | None = None) -> Reply:
        """Answer a ``POST /predict`` body: 200 with the predictions, or 4xx naming the problem.

        ``caller_key`` is unused here (a :class:`~workbench.serving.deploy.Deployment` routes on it);
        ``log_fields`` (``{name: value}``) are added to the request's prediction log line, one value per row,
        with ``latency_ms`` (time from here to the log write): what the two-model service records.
        """
        rid = request_id or new_request_id()
        try:
            if not log_fields:  # one clean record (the common request), from the formats (_one_path_for)
                path = self._one_path
                if path[0] is not self.log or path[1] is not self.tag:  # made once per log (and tag)
                    path = self._make_one_path()
                if path[2] is not None:
                    reply = path[2](body, rid)
                    if reply is not None:  # None: anything else, for the general path below
                        return reply
            t0 = time.perf_counter() if log_fields else 0.0
            limit = self._max_body
            if len(body) > limit:
                raise RequestError.single(413, "body_too_large", f"the request body has {len(body)} bytes; the "
                                          f"limit is {limit} (limits.max_body_bytes); split the batch")
            rows, _ = self.schema.parse_json(body)
            return Reply(200, to_json(self._answer(rows, rid, log_fields, t0)), rid)
        except RequestError as exc:
            return Reply(exc.status, to_json({**exc.to_dict(), "request_id": rid}), rid)
        except LogUnavailable as exc:
            return _log_refusal(exc, rid)


def _log_refusal(exc: LogUnavailable, request_id: str) -> Reply:
    """The 503 of an answer its prediction log line could not record."""
    return error_reply(503, "prediction_log_unwritable", f"the answer could not be recorded in the prediction log, "
                       f"so it is not given: {exc.message}; retry later", request_id)


def error_reply(status: int, type_: str, message: str, request_id: str) -> Reply:
    """A refusal in the service's error body (``ErrorResponse``)."""
    payload = {"error": message, "errors": [{"record": None, "field": None, "type": type_, "message": message}],
               "error_count": 1, "request_id": request_id}
    return Reply(status, to_json(payload), request_id)


def public_reason(reason: str, *paths: str | Path | None) -> str:
    """``reason`` without internal paths: each of ``paths`` (a model folder, the BentoML home) replaced."""
    from .pointer import bentoml_home

    out = reason
    for p, name in [*((p, "<model package>") for p in paths if p), (bentoml_home(), "<model store>")]:
        out = out.replace(str(p), name)
    return out


class Unavailable:
    """Stands in for a :class:`Predictor` whose model failed verification: never ready, every request 503.

    The service keeps running (``/livez`` 200, ``/readyz`` 503 with the reason) and says why on every request,
    instead of a worker that crashes at start-up and is respawned forever while the listening socket hangs. The
    reason shown never holds internal paths.
    """

    ready = False
    log = None

    def __init__(self, reason: str, *, tag: str = "") -> None:
        self.reason = public_reason(reason)
        self.tag = tag

    def readiness(self) -> tuple[bool, str]:
        return False, f"the model is not being served: {self.reason}"

    def handle(self, body: bytes, *, request_id: str | None = None, caller_key: str | None = None,
               log_fields: Mapping[str, Any] | None = None) -> Reply:
        rid = request_id or new_request_id()
        return error_reply(503, "model_unavailable", f"the model is not being served: {self.reason}", rid)


def load_predictor(ref: ModelRef, *, threads: int = 1) -> Predictor | Unavailable:
    """:meth:`Predictor.load` for the service: a failed verification is logged and served as :class:`Unavailable`."""
    try:
        return Predictor.load(ref.path, tag=ref.tag, certified=ref.certified,
                              package_certified=ref.package_certified, threads=threads)
    except ModelVerificationError as exc:
        log.error("not serving %s (from %s, %s): %s", ref.tag, ref.source, ref.path, exc)
        return Unavailable(public_reason(str(exc), ref.path), tag=ref.tag)
