"""The service's input contract: ``serving.json`` as typed objects, and the request schema built from it.

:class:`ServingConfig` reads a model package's ``serving.json`` (written by
:func:`workbench.registry.store.serving_config`), including its ``task`` (binary, multiclass or regression;
binary when absent) and the task's fields; :func:`response_model` documents the task's answer. :class:`RequestSchema` turns its inputs into a pydantic
schema, built at start-up because the fields are the model's features:

* one field per model input, every field **required** (a client that forgets a field gets told, rather than
  silently scored as missing); unknown fields are refused (``extra="forbid"``);
* numeric fields take JSON numbers only (integers are accepted), categorical fields JSON strings only. The types
  are **strict**: ``"12"`` is not coerced to 12 and ``12`` is not coerced to ``"12"``, and booleans are not
  numbers. A service that guesses what a malformed client meant hides the client's bug; the error says what
  to send instead;
* ``null`` means *missing*: the graph imputes it exactly as the pipeline did in training, and the response
  flags it (see :mod:`workbench.serving.guard`). ``""`` in a categorical field is the pipeline's own missing
  marker and is treated (and flagged) the same way;
* ``NaN``, ``Infinity`` and ``-Infinity`` literals (which Python's and pydantic's JSON parsers accept) are
  refused with 422 naming the field, and so are numbers beyond float32's range: the graph would turn them
  into a NaN or an infinite probability. Send ``null`` for a missing value;
* the body is one record (a JSON object) or a batch (a JSON array of 1 to ``limits.max_batch_rows`` records).

* categorical (and date) strings are bounded: at most ``max_length`` characters (``serving.json``'s, else 4x the
  longest training category, at least 64; 256 without categories; 64 for a date). A 1 MB "category" is refused
  422, and never echoed or logged;
* a JSON object with the same key twice is refused (400 naming the key): JSON parsers disagree on which one wins;
* derived date features (``serving.json`` ``derive``/``date_inputs``): the request carries the raw dates (nullable
  ISO strings) instead of the derived numeric inputs, which the predictor computes
  (:func:`workbench.data.derive.derive_record`).

Ranges and categories are *not* enforced here: an unseen category or an out-of-range number is scored and
flagged, never refused and never silently accepted.

A rejected request raises :class:`RequestError`: an HTTP status (400 malformed JSON, 413 too large, 422
invalid) and one entry per problem, each naming the record and the field.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
    field_validator,
    model_validator,
)
from typing_extensions import TypedDict

from ..errors import WorkbenchError

__all__ = ["FLOAT32_MAX", "TASKS", "Task", "InputSpec", "Limits", "ServingConfig", "RequestError", "RequestSchema",
           "Prediction", "PredictionResponse", "MulticlassPrediction", "MulticlassPredictionResponse",
           "RegressionPrediction", "RegressionPredictionResponse", "ErrorResponse", "response_model"]

Task = Literal["binary_classification", "multiclass_classification", "regression"]
TASKS: tuple[str, ...] = ("binary_classification", "multiclass_classification", "regression")

FLOAT32_MAX = 3.4028234663852886e38
"""Largest finite float32: the graph's numeric inputs are float32, larger magnitudes would become infinite."""

MAX_REPORTED_ERRORS = 20
"""A response lists at most this many problems (a 10,000-row batch with a wrong field would list 10,000)."""


# --------------------------------------------------------------------------------------------- serving.json
class InputSpec(BaseModel):
    """One model input, with the facts the data contract recorded about it in training."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    name: str = Field(min_length=1)
    kind: Literal["numeric", "categorical"]
    nullable: bool = False                  # seen missing in training
    categories: list[str] | None = None     # categorical: the categories seen in training
    min: float | None = None                # numeric: the training range
    max: float | None = None
    max_length: int | None = Field(None, ge=1)  # categorical: longest string accepted (default: see bound())
    median: float | None = None             # numeric: typical value (the OpenAPI example), when recorded
    most_frequent: str | None = None        # categorical: typical value (the OpenAPI example), when recorded

    def bound(self) -> int:
        """The longest string this categorical input accepts: ``max_length``, else 4x the longest training
        category (at least 64), else 256."""
        if self.max_length:
            return self.max_length
        if self.categories:
            return max(64, 4 * max(len(c) for c in self.categories))
        return 256


DATE_MAX_LENGTH = 64
"""Longest date string a request may carry (``2013-08-14T10:30:00.000000+00:00`` is 32)."""


class Limits(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    max_batch_rows: int = Field(10_000, ge=1)
    max_body_bytes: int = Field(10 * 1024 * 1024, ge=1024)


class ServingConfig(BaseModel):
    """A model package's ``serving.json``: everything the service needs besides the ONNX bytes.

    ``task`` (default ``"binary_classification"``, so packages written before it existed still load) decides what
    else is required: binary needs ``threshold``, ``positive_label`` and ``negative_label``; multiclass needs
    ``classes`` (the class strings in code order: ONNX probability column k is ``classes[k]``); regression needs
    nothing more (``target_std``, the training target's standard deviation, is optional context).
    """

    model_config = ConfigDict(extra="ignore", frozen=True, protected_namespaces=())

    model_name: str
    run_id: str = ""
    task: Task = "binary_classification"
    onnx_file: str = "model.onnx"
    onnx_sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    inputs: list[InputSpec] = Field(min_length=1)
    threshold: float | None = Field(None, gt=0, lt=1)  # binary: positive when p > threshold (as parity judges)
    target: str = ""
    positive_label: str | None = None     # binary
    negative_label: str | None = None     # binary
    classes: list[str] | None = None      # multiclass: class strings in code order
    target_std: float | None = Field(None, ge=0)  # regression (optional)
    limits: Limits = Field(default_factory=Limits)
    derive: list[dict] = Field(default_factory=list)  # derived date features (workbench.data.derive specs)
    date_inputs: list[str] = Field(default_factory=list)  # the raw date columns the request carries
    title: str = ""          # the OpenAPI page's title (the brief's)
    description: str = ""    # the OpenAPI page's description (the brief's problem statement)
    example: dict | None = None  # a typical request record (the OpenAPI example), when registration wrote one

    @property
    def derived_names(self) -> list[str]:
        return [str(d["name"]) for d in self.derive]

    @property
    def request_inputs(self) -> list[InputSpec]:
        """The model inputs a request carries itself (not the derived ones)."""
        derived = set(self.derived_names)
        return [i for i in self.inputs if i.name not in derived]

    @field_validator("positive_label", "negative_label", mode="before")
    @classmethod
    def _label_text(cls, v: Any) -> Any:
        return str(v) if isinstance(v, int | float) and not isinstance(v, bool) else v

    @field_validator("classes", mode="before")
    @classmethod
    def _class_text(cls, v: Any) -> Any:
        if isinstance(v, list):
            return [str(c) if isinstance(c, int | float) and not isinstance(c, bool) else c for c in v]
        return v

    @model_validator(mode="after")
    def _task_fields(self) -> ServingConfig:
        if self.task == "binary_classification":
            absent = [k for k in ("threshold", "positive_label", "negative_label") if getattr(self, k) is None]
            if absent:
                raise ValueError(f"a binary classification model needs {', '.join(absent)}")
        elif self.task == "multiclass_classification":
            if not self.classes or len(self.classes) < 3:
                raise ValueError("a multiclass model needs 'classes', at least 3 class strings in code order")
            dup = sorted({c for c in self.classes if self.classes.count(c) > 1})
            if dup:
                raise ValueError(f"duplicate classes: {dup}")
        if self.derive:
            names = {i.name: i for i in self.inputs}
            for d in self.derive:
                if not isinstance(d, dict) or "name" not in d:
                    raise ValueError(f"a derive entry needs a name: {d!r}")
                i = names.get(str(d["name"]))
                if i is None or i.kind != "numeric":
                    raise ValueError(f"derived feature {d['name']!r} is not a numeric model input")
                sources = d.get("days_between") or [d.get("column")]
                missing = [c for c in sources if c not in self.date_inputs]
                if missing:
                    raise ValueError(f"derived feature {d['name']!r} reads {missing}, not in date_inputs")
        clash = sorted(set(self.date_inputs) & {i.name for i in self.inputs})
        if clash:
            raise ValueError(f"date_inputs {clash} are also model inputs")
        return self

    @field_validator("inputs")
    @classmethod
    def _unique(cls, v: list[InputSpec]) -> list[InputSpec]:
        names = [i.name for i in v]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(f"duplicate input names: {dup}")
        return v

    @classmethod
    def load(cls, path: str | Path) -> ServingConfig:
        """Read and validate ``serving.json``.

        Raises
        ------
        WorkbenchError
            The file is missing, is not JSON or does not describe a servable model.
        """
        p = Path(path)
        try:
            data = p.read_bytes()
        except FileNotFoundError:
            raise WorkbenchError(f"{p} not found", hint="serve a model package made by `workbench promote`") from None
        return cls.from_json(data)

    @classmethod
    def from_json(cls, data: bytes | str) -> ServingConfig:
        """Validate ``serving.json``'s bytes (errors name ``serving.json``, never a path)."""
        try:
            return cls.model_validate(json.loads(data))
        except (ValueError, ValidationError) as exc:
            raise WorkbenchError(f"serving.json is not a valid serving config: {exc}",
                                 hint="promote the model again with `workbench promote`") from None


# --------------------------------------------------------------------------------------------- errors
class RequestError(WorkbenchError):
    """A request the service refuses: an HTTP status and the problems, each naming the record and the field.

    Parameters
    ----------
    status:
        400 (malformed JSON or empty body), 413 (body too large), 422 (valid JSON that breaks the schema).
    errors:
        ``[{"record": int | None, "field": str | None, "type": str, "message": str}]``.
    total:
        Number of problems found (``errors`` is capped at :data:`MAX_REPORTED_ERRORS`).
    """

    def __init__(self, status: int, errors: list[dict], *, total: int | None = None) -> None:
        self.status = status
        self.errors = errors[:MAX_REPORTED_ERRORS]
        self.total = len(errors) if total is None else total
        shown = "; ".join(_where(e) + e["message"] for e in self.errors[:3])
        more = f" (and {self.total - 3} more)" if self.total > 3 else ""
        super().__init__(shown + more)

    @classmethod
    def single(cls, status: int, type_: str, message: str, *, field: str | None = None,
               record: int | None = None) -> RequestError:
        return cls(status, [{"record": record, "field": field, "type": type_, "message": message}])

    def to_dict(self) -> dict:
        return {"error": self.message, "errors": self.errors, "error_count": self.total}


def _where(e: dict) -> str:
    parts = []
    if e.get("record") is not None:
        parts.append(f"record {e['record']}")
    if e.get("field") is not None:
        parts.append(f"field '{e['field']}'")
    return (", ".join(parts) + " ") if parts else ""


_JSON_TYPES = {str: "a string", bool: "a boolean", int: "a number", float: "a number", type(None): "null",
               list: "an array", dict: "an object"}


def _got(err: dict) -> str:
    return _JSON_TYPES.get(type(err.get("input")), type(err.get("input")).__name__)


def _message(err: dict) -> str:
    t = err["type"]
    if t == "missing":
        return "is required (send null if the value is missing)"
    if t == "extra_forbidden":
        return "is not an input of this model"
    if t in ("float_type", "int_type"):
        return f"should be a number, got {_got(err)}"
    if t == "string_type":
        return f"should be a string, got {_got(err)}"
    if t == "finite_number":
        return "should be a finite number: NaN and Infinity are refused (send null if the value is missing)"
    if t in ("less_than_equal", "greater_than_equal"):
        return "is beyond the float32 range the model takes (|x| <= 3.4e38)"
    if t in ("dict_type", "model_type", "typed_dict_type"):
        return f"should be a JSON object, got {_got(err)}"
    if t == "string_too_long":
        limit = (err.get("ctx") or {}).get("max_length")
        return (f"is too long: at most {limit} characters (4x the longest training category, or serving.json's "
                "max_length); the value is not shown")
    return err.get("msg", t)


def _from_validation(exc: ValidationError, *, batch: bool, limits: Limits) -> RequestError:
    out: list[dict] = []
    for err in exc.errors(include_url=False, include_context=True, include_input=True):
        t, loc = err["type"], err["loc"]
        if t == "json_invalid":
            detail = (err.get("ctx") or {}).get("error", err["msg"])
            return RequestError.single(400, t, f"malformed JSON: {detail}")
        if batch and not loc and t == "too_short":
            return RequestError.single(422, "empty_batch", "empty batch: send at least one record")
        if batch and not loc and t == "too_long":
            return RequestError.single(
                422, "batch_too_large",
                f"the batch has more than {limits.max_batch_rows} records (limits.max_batch_rows); split it")
        if not loc:
            out.append({"record": None, "field": None, "type": t,
                        "message": "the body should be one record (a JSON object) or a batch (a JSON array of "
                                   f"records), got {_got(err)}"})
            continue
        record = loc[0] if batch else None
        field = loc[1] if batch and len(loc) > 1 else (loc[0] if not batch else None)
        out.append({"record": record, "field": field[:100] if isinstance(field, str) else None, "type": t,
                    "message": _message(err)})  # (an unknown field's name is the client's: echo it short)
    return RequestError(422, out, total=exc.error_count())


# --------------------------------------------------------------------------------------------- the schema
_NON_SPACE = re.compile(rb"\S")

Numeric = Annotated[float, Field(strict=True, allow_inf_nan=False, ge=-FLOAT32_MAX, le=FLOAT32_MAX)]
Categorical = Annotated[str, Field(strict=True)]


def _record_type(inputs: list[InputSpec], title: str, date_inputs: list[str] = (),  # type: ignore[assignment]
                 *, forbid: bool = True) -> type:
    """A TypedDict with one required, nullable, strict field per input (validates faster than a BaseModel and
    yields plain dicts, which is what the columnar scorer wants), and one nullable date string per date input."""
    fields: dict[str, Any] = {}
    for i in inputs:
        base = Numeric if i.kind == "numeric" else Annotated[str, Field(strict=True, max_length=i.bound())]
        if i.kind == "numeric" and i.min is not None and i.max is not None:
            doc = f"number; training range [{i.min:g}, {i.max:g}] (outside: scored and flagged)"
        elif i.categories:
            shown = ", ".join(i.categories[:12]) + (", ..." if len(i.categories) > 12 else "")
            doc = f"string; training categories: {shown} (others: scored and flagged)"
        else:
            doc = "number" if i.kind == "numeric" else "string"
        if i.kind == "categorical":
            doc += f"; at most {i.bound()} characters"
        fields[i.name] = Annotated[base | None, Field(description=doc + "; null = missing (imputed, flagged)")]
    for name in date_inputs:
        fields[name] = Annotated[Annotated[str, Field(strict=True, max_length=DATE_MAX_LENGTH)] | None, Field(
            description="date, ISO 8601 text (2013-08-14, 2013-08-14 10:30:00); the model's date features are "
                        "derived from it; null (or a text that is not a date) = missing")]
    record = TypedDict(title, fields)  # type: ignore[operator]  # total=True: every field required
    record.__pydantic_config__ = ConfigDict(extra="forbid" if forbid else "ignore",  # type: ignore[attr-defined]
                                            strict=True, title=title)
    return record


class RequestSchema:
    """Validation of ``POST /predict`` bodies for one model (see the module docstring for the rules).

    ``parse_json`` is the HTTP path: it decides by the body's first character whether it is one record or a
    batch, so pydantic validates against one type, not a union (a union would try both and double the error
    list). ``parse_python`` does the same for Python objects.
    """

    def __init__(self, config: ServingConfig) -> None:
        self.config = config
        self.record_type = _record_type(config.request_inputs, "Record", list(config.date_inputs))
        self.fields = [i.name for i in config.request_inputs] + list(config.date_inputs)
        self._n_fields = len(self.fields)
        self._one = TypeAdapter(self.record_type)
        # parse_one's validator: the same fields without the check for unknown keys, which parse_one makes
        # unnecessary (see there) -- a sixth of the validation's cost
        self._one_counted = TypeAdapter(_record_type(config.request_inputs, "Record", list(config.date_inputs),
                                                     forbid=False))
        self._batch = TypeAdapter(Annotated[list[self.record_type],  # type: ignore[name-defined]
                                            Field(min_length=1, max_length=config.limits.max_batch_rows)])

    def parse_json(self, body: bytes) -> tuple[list[dict], bool]:
        """Validate a JSON body; return the records (as dicts, in input order) and whether it was a batch.

        Raises
        ------
        RequestError
            400 for an empty or malformed body, 422 for anything that breaks the schema.
        """
        first = body[:1]
        if first == b"{":  # the common body, one record without leading space: no search
            batch = False
        else:
            m = _NON_SPACE.search(body)
            if m is None:
                raise RequestError.single(400, "empty_body", "empty request body: send one record (a JSON object) "
                                                             "or a batch (a JSON array of records)")
            batch = body[m.start():m.start() + 1] == b"["
        try:
            value = (self._batch if batch else self._one).validate_json(body)
        except ValidationError as exc:
            raise _from_validation(exc, batch=batch, limits=self.config.limits) from None
        rows = value if batch else [value]
        # A duplicate key means more keys in the text than the records have (each has exactly one per field).
        # Every key is followed by a ':', so when there are no more ':' than keys there is no duplicate -- one
        # count in C; only a body with ':' in its values (times, URLs) pays for the exact check.
        if body.count(b":") > len(rows) * self._n_fields:
            _refuse_duplicate_keys(body)
        return rows, batch

    def parse_one(self, body: bytes) -> dict | None:
        """The record of a body that is one valid JSON object (starting at its first byte) with no more ``:``
        than the record has fields; None for anything else -- :meth:`parse_json` then says what is wrong, or
        parses what this does not try (a batch, leading space, ``:`` inside values).

        Every key of a JSON object is followed by a ``:``, so an object with at most as many ``:`` as fields
        that holds every (required) field has exactly those keys: none unknown, none twice. The validator
        here therefore skips the unknown-key check (``extra="forbid"``) that :meth:`parse_json` makes; the
        record is the same."""
        if body[:1] != b"{" or body.count(b":") > self._n_fields:
            return None
        try:
            return self._one_counted.validate_json(body)
        except ValidationError:
            return None

    def parse_python(self, records: Any) -> tuple[list[dict], bool]:
        """Validate one record (a mapping) or a list of records given as Python objects (same rules)."""
        batch = isinstance(records, list | tuple)
        try:
            value = (self._batch if batch else self._one).validate_python(list(records) if batch else records)
        except ValidationError as exc:
            raise _from_validation(exc, batch=batch, limits=self.config.limits) from None
        return (value if batch else [value]), batch

    def json_schema(self) -> dict:
        """JSON schema of the request body (one record or a list of records), for documentation."""
        return TypeAdapter(self.record_type | Annotated[list[self.record_type],  # type: ignore[name-defined]
                                                        Field(min_length=1,
                                                              max_length=self.config.limits.max_batch_rows)]
                           ).json_schema()


def _refuse_duplicate_keys(body: bytes) -> None:
    """400 naming the first key that appears twice in one JSON object of ``body`` (already valid JSON)."""

    def pairs(items: list[tuple[str, Any]]) -> dict:
        seen: dict[str, Any] = {}
        for k, v in items:
            if k in seen:
                raise _Duplicate(k)
            seen[k] = v
        return seen

    try:
        json.loads(body, object_pairs_hook=pairs)
    except _Duplicate as dup:
        key = dup.args[0]
        raise RequestError.single(400, "duplicate_key", f"the key '{key[:100]}' appears twice in one record: send "
                                  "each field once", field=key[:100]) from None
    except ValueError:
        return  # pydantic-core accepted it; Python's parser is stricter on a few edge cases: nothing to add


class _Duplicate(Exception):
    pass


# --------------------------------------------------------------------------------------------- responses
class Prediction(BaseModel):
    """One scored record."""

    probability: float = Field(description="probability of the positive label (float32 precision)")
    label: str = Field(description="positive label when probability > threshold, else the negative label")
    flags: dict[str, Literal["missing", "unseen_category", "out_of_range"]] = Field(
        description="field -> what was unusual about its value; empty when nothing was")


class PredictionResponse(BaseModel):
    """The answer to ``POST /predict`` (documentation; the service serializes plain dicts)."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str = Field(description="the served model's tag, <name>:<version>")
    request_id: str
    threshold: float
    predictions: list[Prediction] = Field(description="one per record, in request order")


_FLAGS_DOC = "field -> what was unusual about its value; empty when nothing was"
Flags = dict[str, Literal["missing", "unseen_category", "out_of_range"]]


class MulticlassPrediction(BaseModel):
    """One scored record of a multiclass model."""

    label: str = Field(description="the most probable class (ties: the first in the model's class order)")
    probabilities: dict[str, float] = Field(description="class -> probability, every class, summing to 1")
    flags: Flags = Field(description=_FLAGS_DOC)


class MulticlassPredictionResponse(BaseModel):
    """The answer to ``POST /predict`` for a multiclass model (documentation)."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str = Field(description="the served model's tag, <name>:<version>")
    request_id: str
    predictions: list[MulticlassPrediction] = Field(description="one per record, in request order")


class RegressionPrediction(BaseModel):
    """One scored record of a regression model."""

    prediction: float = Field(description="the predicted target value (float32 precision, always finite)")
    flags: Flags = Field(description=_FLAGS_DOC)


class RegressionPredictionResponse(BaseModel):
    """The answer to ``POST /predict`` for a regression model (documentation)."""

    model_config = ConfigDict(protected_namespaces=())

    model_version: str = Field(description="the served model's tag, <name>:<version>")
    request_id: str
    predictions: list[RegressionPrediction] = Field(description="one per record, in request order")


def response_model(config: ServingConfig) -> type[BaseModel]:
    """The response model documenting ``POST /predict`` for this model (OpenAPI at ``/docs``).

    Binary: :class:`PredictionResponse`. Regression: :class:`RegressionPredictionResponse`. Multiclass: a
    :class:`MulticlassPredictionResponse` whose ``label`` is the model's classes (an enum in the docs).
    """
    if config.task == "regression":
        return RegressionPredictionResponse
    if config.task != "multiclass_classification":
        return PredictionResponse
    classes = tuple(config.classes or ())
    shown = ", ".join(classes[:12]) + (", ..." if len(classes) > 12 else "")
    pred = create_model(
        "MulticlassPrediction", __base__=MulticlassPrediction,
        label=(Literal[classes], Field(description="the most probable class (ties: the first of "  # type: ignore[valid-type]
                                                    f"{shown})")),
        probabilities=(dict[str, float], Field(description=f"class -> probability for every class ({shown}); "
                                                           "they sum to 1")))
    return create_model("MulticlassPredictionResponse", __base__=MulticlassPredictionResponse,
                        predictions=(list[pred], Field(description="one per record, in request order")))  # type: ignore[valid-type]


class ErrorResponse(BaseModel):
    """The answer to a refused request (4xx)."""

    error: str = Field(description="summary naming the record and field of the first problems")
    errors: list[dict] = Field(description="[{record, field, type, message}], at most 20")
    error_count: int
    request_id: str
