"""Turn an HTTP body into a validated request and engine inputs, or an OpenAIError (4xx).

Everything here runs before any replica is involved, so a bad request never costs engine time
and never reaches the router's work ledger.
"""

from __future__ import annotations

import hmac
import json
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from trail.serve.errors import OpenAIError, from_validation_error
from trail.serve.schemas import ChatCompletionRequest, CompletionRequest, SamplingFields

M = TypeVar("M", bound=BaseModel)


@dataclass
class Prepared:
    """A validated request, tokenized, with the output cap the context window allows."""

    prompt_token_ids: list[int]
    predictor_text: str  # what the prompt predictor sees (the last user message / the prompt)
    max_tokens: int


async def read_body(request: Any, limit: int) -> bytes:
    """The raw body of a Starlette request, refused with 413 past `limit` bytes (declared or
    streamed) before it is held in memory."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise body_too_large(limit)
    parts, size = [], 0
    async for part in request.stream():
        size += len(part)
        if size > limit:
            raise body_too_large(limit)
        parts.append(part)
    return b"".join(parts)


def body_too_large(limit: int) -> OpenAIError:
    return OpenAIError(413, f"request body exceeds {limit} bytes", code="request_too_large")


def parse_body(raw: bytes, model: type[M]) -> M:
    """Any content type is read as JSON (as curl -d sends it); the body must be a JSON object."""
    try:
        data = json.loads(raw, parse_constant=_no_constant) if raw else None
    except (ValueError, UnicodeDecodeError, RecursionError) as err:  # RecursionError: nesting
        msg = "nested too deeply" if isinstance(err, RecursionError) else str(err)
        raise OpenAIError(
            400, f"request body is not valid JSON: {msg}", code="invalid_json"
        ) from err
    if not isinstance(data, dict):
        raise OpenAIError(400, "request body must be a JSON object", code="invalid_json")
    try:  # JSON may escape lone surrogates (\ud800): no tokenizer or engine can take them
        json.dumps(data, ensure_ascii=False).encode()
    except (UnicodeEncodeError, RecursionError) as err:
        msg = "request body has invalid Unicode (a lone surrogate escape)"
        raise OpenAIError(400, msg, code="invalid_json") from err
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise from_validation_error(err) from None


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def check_bearer(authorization: str | None, api_key: str | None) -> None:
    """401 unless `Authorization: Bearer <api_key>` (no key configured: open)."""
    if api_key is None:
        return
    if not hmac.compare_digest(authorization or "", f"Bearer {api_key}"):
        raise OpenAIError(
            401, "invalid or missing API key", type="authentication_error", code="invalid_api_key"
        )


def check_model(req: SamplingFields, served: str) -> None:
    if req.model != served:
        raise OpenAIError(
            404,
            f"the model `{req.model}` does not exist; this server serves `{served}`",
            param="model",
            code="model_not_found",
        )


def prepare_chat(req: ChatCompletionRequest, tokenizer: Any, max_model_len: int) -> Prepared:
    messages = [{"role": m.role, "content": m.text()} for m in req.messages]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    except Exception as err:  # templates raise on role orders they do not support
        raise OpenAIError(400, f"messages: {err}", param="messages", code="invalid_value") from err
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    users = [m.text() for m in req.messages if m.role == "user"]
    predictor_text = users[-1] if users else req.messages[-1].text()
    return Prepared(ids, predictor_text, output_cap(len(ids), req.output_cap(), max_model_len))


def prepare_completion(req: CompletionRequest, tokenizer: Any, max_model_len: int) -> Prepared:
    if isinstance(req.prompt, str):
        ids = list(tokenizer(req.prompt)["input_ids"])
        text = req.prompt
    else:
        vocab = len(tokenizer)
        if any(t < 0 or t >= vocab for t in req.prompt):
            raise OpenAIError(400, f"prompt token ids must be in [0, {vocab})", param="prompt")
        ids = list(req.prompt)
        text = tokenizer.decode(ids)
    return Prepared(ids, text, output_cap(len(ids), req.output_cap(), max_model_len))


def output_cap(prompt_tokens: int, requested: int | None, max_model_len: int) -> int:
    """max_tokens, checked against the context window (OpenAI's context_length_exceeded)."""
    room = max_model_len - prompt_tokens
    if room < 1 or (requested is not None and requested > room):
        wanted = prompt_tokens + (requested or 1)
        raise OpenAIError(
            400,
            f"this model's maximum context length is {max_model_len} tokens; the request needs "
            f"{wanted} ({prompt_tokens} in the prompt + {requested or 1} to generate)",
            param="messages" if requested is None else "max_tokens",
            code="context_length_exceeded",
        )
    return requested if requested is not None else room


def sampling_kwargs(req: SamplingFields, max_tokens: int) -> dict[str, Any]:
    """vLLM SamplingParams keyword arguments for a validated request."""
    kw: dict[str, Any] = {
        "max_tokens": max_tokens,
        "temperature": req.temperature,
        "top_p": req.top_p,
        "presence_penalty": req.presence_penalty,
        "frequency_penalty": req.frequency_penalty,
        "ignore_eos": req.ignore_eos,
        "stop": req.stop_list() or None,
        "seed": req.seed,
    }
    if req.repetition_penalty is not None:
        kw["repetition_penalty"] = req.repetition_penalty
    return kw
