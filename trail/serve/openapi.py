"""The ingress's OpenAPI description: request bodies, responses and errors.

The routes read the raw body and validate it themselves (so that every error keeps the OpenAI
shape), which leaves FastAPI nothing to infer the bodies from. `route_doc(...)` adds a route's
body, success response and error statuses to its decorator; `DocumentedAPI` puts the request
models into `components.schemas`. The rendered spec is kept in docs/openapi.json:

    .venv/bin/python -m trail.serve.openapi_cli docs/openapi.json   # --check: fail if stale
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict

REF = "#/components/schemas/{model}"

ERRORS: dict[int, str] = {
    400: "Invalid request: not JSON, invalid Unicode, wrong types, out-of-range values, "
    "unknown fields, or prompt + max_tokens beyond the context window "
    "(code `context_length_exceeded`)",
    401: "Missing or wrong API key (only when the server has one configured)",
    404: "Unknown model, route or record",
    413: "Request body larger than the ingress limit (`ingress.max_body_bytes`)",
    429: "Overloaded: too many requests in flight; retry after `Retry-After` seconds",
    503: "The replica serving the request (or the prediction store) is unavailable; retry after "
    "`Retry-After` seconds",
}
# OpenAPI < 3.2: the text/event-stream schema describes one event; `data` is a JSON chunk, an
# error object or "[DONE]"
SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {"data": {"type": "string"}, "event": {"type": "string"}},
}
RETRY_AFTER = {"Retry-After": {"description": "seconds", "schema": {"type": "string"}}}


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorResponse(BaseModel):
    """Every 4xx/5xx body: OpenAI's error shape."""

    error: ErrorDetail


class Open(BaseModel):
    model_config = ConfigDict(extra="allow")


class ChatChoice(Open):
    index: int
    message: dict[str, Any]
    finish_reason: str | None


class CompletionChoice(Open):
    index: int
    text: str
    finish_reason: str | None


class UsageOut(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(Open):
    id: str
    object: str
    created: int
    model: str
    choices: list[ChatChoice]
    usage: UsageOut


class Completion(Open):
    id: str
    object: str
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageOut


class ModelCard(Open):
    id: str
    object: str


class ModelList(Open):
    object: str
    data: list[ModelCard]


class Health(BaseModel):
    status: str


def route_doc(
    ok: type[BaseModel] | None = None,
    *,
    body: type[BaseModel] | None = None,
    errors: Sequence[int] = (),
    stream: bool = False,
    text: bool = False,
) -> dict[str, Any]:
    """Keyword arguments for a route decorator: success response, error responses, and the
    request body (a reference to `components.schemas[body.__name__]`; see DocumentedAPI)."""
    success: dict[str, Any] = {"description": "Success"}
    if ok is not None:
        success["model"] = ok
    if stream:
        success["description"] = "The result, or with `stream: true` server-sent events"
        success["content"] = {"text/event-stream": {"schema": SSE_EVENT}}
    responses: dict[int | str, dict[str, Any]] = {200: success}
    for status in errors:
        doc: dict[str, Any] = {"model": ErrorResponse, "description": ERRORS[status]}
        if status in (429, 503):
            doc["headers"] = RETRY_AFTER
        responses[status] = doc
    out: dict[str, Any] = {"responses": responses}
    if text:  # the route returns its own Response; this only sets the documented media type
        out["response_class"] = PlainTextResponse
    if body is not None:
        schema = {"$ref": REF.format(model=body.__name__)}
        content = {"application/json": {"schema": schema}}
        out["openapi_extra"] = {"requestBody": {"required": True, "content": content}}
    return out


class DocumentedAPI(FastAPI):
    """FastAPI whose spec also carries the request models the routes validate themselves."""

    def __init__(self, *, body_models: Sequence[type[BaseModel]] = (), **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.body_models = tuple(body_models)

    def openapi(self) -> dict[str, Any]:
        if self.openapi_schema is not None:
            return self.openapi_schema
        spec = super().openapi()  # also cached in self.openapi_schema: completed in place
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for model in self.body_models:
            schema = model.model_json_schema(ref_template=REF, mode="validation")
            schemas.update(schema.pop("$defs", {}))
            schemas[model.__name__] = schema
        for ops in spec.get("paths", {}).values():
            for op in ops.values():
                op.get("responses", {}).pop("422", None)  # no FastAPI validation runs
                for param in op.get("parameters", []):
                    # Ray Serve cloudpickles the app; the copy's Param loses FastAPI's
                    # "unset" sentinel for `example`, which then renders as {}
                    if param.get("example") == {}:
                        del param["example"]
        for name in ("HTTPValidationError", "ValidationError"):
            schemas.pop(name, None)
        return spec
