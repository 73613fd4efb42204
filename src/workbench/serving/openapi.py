"""The service's OpenAPI document (``/docs.json``) and its page (``/``): what the service really does.

:func:`openapi_document` starts from BentoML's generated document and replaces what it gets wrong for this
service: ``POST /predict`` documents the body as **required**, one record *or* a batch (``oneOf``), every field
required and nullable (OpenAPI 3.0 ``nullable``), numbers bounded to float32, strings bounded by the contract,
unknown fields refused; a real example request (the contract's typical record: each numeric input's median and
each categorical input's most frequent category, from ``serving.json`` or the reference profile) and a batch
example; and every status the route answers -- 200 (the task's answer), 400, 413, 415, 422 and 503 -- with the
service's own error body and its ``X-Request-ID`` header. The health endpoints say what they answer (``/readyz``
503 with the reason). Title and description come from ``serving.json`` (``title``/``description``, the brief's),
the version is the model tag (BentoML showed a "None" badge).

:func:`service_document` is what ``/docs.json`` serves: that document for the model answering **now** -- after a
hot swap, the new champion's request fields, its task's answer, an example from its own reference profile and
its tag -- and, only while no model is verified, for the start-up package (``serving.json`` read unverified, so
the page still shows what the service would accept). :class:`~workbench.serving.app.ServiceRoutes` builds it
once per champion.

:data:`INDEX_HTML` is the Swagger UI page without BentoML's boilerplate (tag manager, corner badge): only the
Swagger UI files BentoML ships, from ``./static_content``.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path
from typing import Any

from .schema import DATE_MAX_LENGTH, FLOAT32_MAX, ServingConfig, response_model

log = logging.getLogger(__name__)

__all__ = ["INDEX_HTML", "error_schema", "example_record", "openapi_document", "record_schema", "service_document"]


def error_schema() -> dict:
    """The service's error body (``ErrorResponse``), OpenAPI 3.0."""
    return {
        "type": "object", "title": "ErrorResponse", "required": ["error", "errors", "error_count", "request_id"],
        "properties": {
            "error": {"type": "string", "description": "summary naming the record and field of the first problems"},
            "errors": {"type": "array", "maxItems": 20, "items": {
                "type": "object", "required": ["record", "field", "type", "message"],
                "properties": {"record": {"type": "integer", "nullable": True},
                               "field": {"type": "string", "nullable": True},
                               "type": {"type": "string"}, "message": {"type": "string"}}}},
            "error_count": {"type": "integer", "minimum": 1},
            "request_id": {"type": "string"}}}


def record_schema(config: ServingConfig) -> dict:
    """One request record: every field required and nullable, nothing else allowed (OpenAPI 3.0)."""
    props: dict[str, dict] = {}
    for i in config.request_inputs:
        if i.kind == "numeric":
            p: dict[str, Any] = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
            doc = "number"
            if i.min is not None and i.max is not None:
                doc += f"; training range [{i.min:g}, {i.max:g}] (outside: scored and flagged out_of_range)"
        else:
            p = {"type": "string", "maxLength": i.bound()}
            doc = f"string of at most {i.bound()} characters"
            if i.categories:
                shown = ", ".join(i.categories[:12]) + (", ..." if len(i.categories) > 12 else "")
                doc += f"; training categories: {shown} (others: scored and flagged unseen_category)"
        props[i.name] = {**p, "nullable": True, "description": doc + "; null = missing (imputed, flagged)"}
    for name in config.date_inputs:
        props[name] = {"type": "string", "maxLength": DATE_MAX_LENGTH, "nullable": True,
                       "description": "date, ISO 8601 text (2013-08-14, 2013-08-14 10:30:00); the model's date "
                                      "features are derived from it; null = missing"}
    return {"type": "object", "title": "Record", "properties": props, "required": list(props),
            "additionalProperties": False}


def _median(sample: list) -> float | None:
    vals = [float(v) for v in sample or [] if isinstance(v, int | float) and math.isfinite(v)]
    if not vals:
        return None
    vals.sort()
    return vals[len(vals) // 2]


def example_record(config: ServingConfig, profile: dict | None = None) -> dict:
    """The contract's typical record: numeric medians, most frequent categories (``serving.json``'s
    ``example`` when registration wrote one; else ``median``/``most_frequent`` of each input; else the reference
    profile; else the middle of the training range / the first category)."""
    if config.example:
        return dict(config.example)
    feats = (profile or {}).get("features") or {}
    out: dict[str, Any] = {}
    for i in config.request_inputs:
        prof = feats.get(i.name) or {}
        if i.kind == "numeric":
            v = i.median if i.median is not None else _median(prof.get("sample"))
            if v is None and i.min is not None and i.max is not None:
                v = (i.min + i.max) / 2
            v = 0.0 if v is None else float(v)
            out[i.name] = int(v) if v.is_integer() and abs(v) < 2**53 else round(v, 6)
        else:
            v = i.most_frequent
            if v is None:
                v = next((k for k in (prof.get("shares") or {}) if k and not k.startswith("__")), None)
            if v is None and i.categories:
                v = i.categories[0]
            out[i.name] = v[: i.bound()] if isinstance(v, str) else None
    for name in config.date_inputs:
        out[name] = "2024-01-15"
    return out


def _second_example(config: ServingConfig, first: dict) -> dict:
    """A second record for the batch example: one value missing (null), to show it is allowed and flagged."""
    other = dict(first)
    nullable = [i.name for i in config.request_inputs if i.nullable] or [i.name for i in config.request_inputs]
    if nullable:
        other[nullable[-1]] = None
    return other


def _response(description: str, schema: dict) -> dict:
    return {"description": description,
            "headers": {"X-Request-ID": {"description": "the request id (the caller's when sane, else a new one)",
                                         "required": True, "schema": {"type": "string"}}},
            "content": {"application/json": {"schema": schema}}}


def _plain(description: str) -> dict:
    return {"description": description, "content": {"text/plain": {"schema": {"type": "string"}}}}


def _openapi30(node: Any) -> Any:
    """A pydantic JSON schema made OpenAPI 3.0: ``anyOf [X, null]`` -> X nullable, ``const`` -> enum."""
    if isinstance(node, list):
        return [_openapi30(v) for v in node]
    if not isinstance(node, dict):
        return node
    node = {k: _openapi30(v) for k, v in node.items()}
    any_of = node.get("anyOf")
    if isinstance(any_of, list) and any(s == {"type": "null"} for s in any_of):
        rest = [s for s in any_of if s != {"type": "null"}]
        node.pop("anyOf")
        node.update(rest[0] if len(rest) == 1 else {"anyOf": rest})
        node["nullable"] = True
    if "const" in node:
        node["enum"] = [node.pop("const")]
    return node


def openapi_document(base: dict, config: ServingConfig, response: Any, *, tag: str,
                     profile: dict | None = None) -> dict:
    """``base`` (BentoML's ``openapi_spec.asdict()``) with ``/predict``, the probes and ``info`` made to match
    the service (module docstring). ``response``: the 200 answer's pydantic model (``response_model(config)``)."""
    from .app import _inline_refs

    doc = copy.deepcopy(base)
    record = record_schema(config)
    batch = {"type": "array", "items": record, "minItems": 1, "maxItems": config.limits.max_batch_rows}
    example = example_record(config, profile)
    answer = _openapi30(_inline_refs(response.model_json_schema()))
    err = error_schema()
    task = {"binary_classification": "the probability of the positive label and the label",
            "multiclass_classification": "the most probable class and every class's probability",
            "regression": "the predicted value"}[config.task]
    predict = {
        "tags": ["Service APIs"], "operationId": "predict", "summary": "Score one record or a batch",
        "description": (
            f"Send one record (a JSON object) or a batch (a JSON array of 1 to {config.limits.max_batch_rows} "
            f"records), `Content-Type: application/json`. Each answer gives {task} and flags for values the model "
            "did not see in training (missing, unseen category, out of range): they are scored, never refused. "
            "Every field is required; send null when a value is missing. Every answered request is in the "
            "prediction log before its answer leaves."),
        "requestBody": {"required": True, "content": {"application/json": {
            "schema": {"oneOf": [record, batch]},
            "examples": {"record": {"summary": "one typical record", "value": example},
                         "batch": {"summary": "a batch of two records (one value missing)",
                                   "value": [example, _second_example(config, example)]}}}}},
        "responses": {
            "200": _response("the answer: one prediction per record, in request order", answer),
            "400": _response("malformed JSON, an empty body, or a key twice in one record", err),
            "413": _response(f"the body is larger than {config.limits.max_body_bytes} bytes "
                             "(limits.max_body_bytes); split the batch", err),
            "415": _response("the body is not sent as application/json", err),
            "422": _response("valid JSON that breaks the schema: a missing or unknown field, a wrong type, NaN or "
                             "Infinity, a number beyond float32, a string that is too long, an empty or too large "
                             "batch (each problem names its record and field)", err),
            "503": _response("not serving: the model failed verification, or the prediction log cannot record "
                             "the answer (the reason is in the body)", err),
        },
    }
    paths = doc.setdefault("paths", {})
    paths["/predict"] = {"post": predict}
    probes = {"/livez": ("the process is alive", None), "/healthz": ("the process is alive", None),
              "/readyz": ("ready to answer /predict", "not ready, with the reason (model not verified, prediction "
                                                         "log unwritable)")}
    for path, (ok, not_ok) in probes.items():
        if path in paths:
            responses = {"200": _plain(ok)}
            if not_ok:
                responses["503"] = _plain(not_ok)
            op = paths[path].get("get", {})
            paths[path] = {"get": {k: v for k, v in op.items() if k not in ("responses", "requestBody")}
                           | {"responses": responses}}
    if "/metrics" in paths:
        op = paths["/metrics"].get("get", {})
        paths["/metrics"] = {"get": {k: v for k, v in op.items() if k != "responses"}
                             | {"responses": {"200": _plain("Prometheus metrics")}}}
    for path in [p for p in paths if p not in ("/predict", "/livez", "/healthz", "/readyz", "/metrics")]:
        paths.pop(path)  # nothing else is part of this service's contract
    title = config.title or f"{config.model_name} prediction service"
    description = config.description or f"Predictions of the {config.model_name} model ({config.task.replace('_', ' ')})."
    doc["info"] = {"title": title, "version": tag,
                   "description": f"{description}\n\nServing model `{tag}`. Try `POST /predict` with the example "
                                  "record: it is the contract's typical record."}
    doc.pop("tags", None)
    doc["tags"] = [{"name": "Service APIs", "description": "the prediction route"},
                   {"name": "Infrastructure", "description": "probes and metrics"}]
    for path in ("/livez", "/healthz", "/readyz", "/metrics"):
        if path in paths:
            paths[path]["get"]["tags"] = ["Infrastructure"]
    doc.pop("components", None)
    return doc


def _profile(model_dir: str | Path | None) -> dict | None:
    """The package's reference profile (for the example record), or None."""
    if model_dir is None:
        return None
    p = Path(model_dir) / "reference_profile.json"
    try:
        return json.loads(p.read_text()) if p.is_file() else None
    except (OSError, ValueError) as exc:
        log.warning("the reference profile could not be read for /docs.json (%s); no example from it", exc)
        return None


def service_document(base: dict, predictor: Any, *, config: ServingConfig | None = None, tag: str = "",
                     model_dir: str | Path | None = None) -> dict:
    """``/docs.json`` for the model serving now (module docstring).

    ``predictor`` is what answers ``/predict`` (a :class:`~workbench.serving.deploy.Deployment`, whose current
    champion is documented, or a :class:`~workbench.serving.Predictor`); ``config``, ``tag`` and ``model_dir``
    describe the start-up package, documented only while no verified model serves. With neither, ``base``.
    """
    from .app import champion_of

    champion = champion_of(predictor)
    live = getattr(champion, "config", None)
    if live is not None:
        config, tag, model_dir = live, str(champion.tag), getattr(champion, "model_dir", None)
    if config is None:
        return base
    return openapi_document(base, config, response_model(config), tag=tag, profile=_profile(model_dir))


INDEX_HTML = b"""<!DOCTYPE html>
<html lang="en">
  <head>
    <meta charset="UTF-8">
    <title>Prediction service</title>
    <link rel="stylesheet" type="text/css" href="./static_content/swagger-ui.css" />
  </head>
  <body>
    <div id="swagger-ui"></div>
    <script src="./static_content/swagger-ui-bundle.js" charset="UTF-8"></script>
    <script>
      window.onload = function () {
        window.ui = SwaggerUIBundle({url: "./docs.json", dom_id: "#swagger-ui", deepLinking: true,
                                     presets: [SwaggerUIBundle.presets.apis], layout: "BaseLayout"});
      };
    </script>
  </body>
</html>
"""
