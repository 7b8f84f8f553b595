"""OpenAI request/response schemas (the subset we serve), as strict pydantic models.

Unknown fields are rejected, as OpenAI does, so a typo gets a 400 naming the field instead of
being silently ignored. vLLM-style extensions: `ignore_eos`, `repetition_penalty`, and `trail`
(benchmarks pass the true length for the oracle policy). Every value the engine receives is
bounded here (finite floats, int64 seeds, non-empty stop strings): what would fail later in
vLLM's own checks or its IPC encoding is a 400 here, never a 5xx.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class Strict(BaseModel):
    # strict: a value must have the JSON type the spec gives (no "5" or true for an integer)
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, strict=True)


class TextPart(Strict):
    type: Literal["text"]
    text: str


class ChatMessage(Strict):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | list[TextPart]
    name: str | None = None

    def text(self) -> str:
        if isinstance(self.content, str):
            return self.content
        return "".join(p.text for p in self.content)


class StreamOptions(Strict):
    include_usage: bool = False


class TrailExtras(Strict):
    true_len: int | None = Field(
        None, ge=1, le=2**31 - 1, description="oracle length (benchmarks only)"
    )
    use_max_tokens: bool = Field(
        True,
        description="false: predictions are not capped by max_tokens, nor taken from it with "
        "ignore_eos (benchmarks that fix lengths with ignore_eos + max_tokens)",
    )


class SamplingFields(Strict):
    """Parameters shared by both endpoints, with OpenAI's ranges."""

    model: str
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0, le=2)
    top_p: float = Field(1.0, gt=0, le=1)
    n: int = Field(1, ge=1, le=1, description="only 1 is supported")
    stream: bool = False
    stream_options: StreamOptions | None = None
    stop: str | list[str] | None = None
    seed: int | None = Field(None, ge=INT64_MIN, le=INT64_MAX)
    presence_penalty: float = Field(0.0, ge=-2, le=2)
    frequency_penalty: float = Field(0.0, ge=-2, le=2)
    repetition_penalty: float | None = Field(None, gt=0)
    ignore_eos: bool = False
    user: str | None = None
    trail: TrailExtras | None = None

    @field_validator("stop")
    @classmethod
    def _at_most_four_stops(cls, stop: str | list[str] | None) -> str | list[str] | None:
        if isinstance(stop, list) and len(stop) > 4:
            raise ValueError("at most 4 stop sequences")
        if stop == "" or (isinstance(stop, list) and "" in stop):
            raise ValueError("stop sequences must not be empty")
        return stop

    def stop_list(self) -> list[str]:
        if self.stop is None:
            return []
        return [self.stop] if isinstance(self.stop, str) else list(self.stop)

    def wants_usage_in_stream(self) -> bool:
        return bool(self.stream_options and self.stream_options.include_usage)


def _no_logprobs(value: bool | int | None) -> bool | int | None:
    """Clients (`vllm bench serve`, SDKs) send `logprobs: null/false/0`; asking for them is a 400."""
    if value:
        raise ValueError("logprobs are not supported")
    return value


class ChatCompletionRequest(SamplingFields):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    logprobs: bool | None = Field(None, description="not supported: only false/null")
    top_logprobs: int | None = Field(None, ge=0, le=20, description="not supported: only 0/null")

    check_logprobs = field_validator("logprobs", "top_logprobs")(_no_logprobs)

    def output_cap(self) -> int | None:
        return self.max_completion_tokens or self.max_tokens


class CompletionRequest(SamplingFields):
    prompt: str | list[int]
    max_tokens: int | None = Field(16, ge=1)
    logprobs: int | None = Field(None, ge=0, le=5, description="not supported: only 0/null")

    check_logprobs = field_validator("logprobs")(_no_logprobs)

    @field_validator("prompt")
    @classmethod
    def _non_empty(cls, prompt: str | list[int]) -> str | list[int]:
        if len(prompt) == 0:
            raise ValueError("prompt must not be empty")
        return prompt

    def output_cap(self) -> int | None:
        return self.max_tokens


class Usage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


def usage(prompt_tokens: int, completion_tokens: int) -> Usage:
    return Usage(
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


def chat_response(
    rid: str, model: str, text: str, finish: str | None, use: Usage
) -> dict[str, Any]:
    return {
        "id": rid,
        "object": "chat.completion",
        "created": int(time.time()),
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": text},
                "finish_reason": finish,
                "logprobs": None,
            }
        ],
        "usage": use.model_dump(),
    }


def chat_chunk(
    rid: str, model: str, delta: dict[str, Any], finish: str | None, use: Usage | None = None
) -> dict[str, Any]:
    choices = [] if use is not None else [{"index": 0, "delta": delta, "finish_reason": finish}]
    out: dict[str, Any] = {
        "id": rid,
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": model,
        "choices": choices,
    }
    if use is not None:
        out["usage"] = use.model_dump()
    return out


def completion_response(
    rid: str, model: str, text: str, finish: str | None, use: Usage | None, chunk: bool = False
) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": rid,
        "object": "text_completion",
        "created": int(time.time()),
        "model": model,
        "choices": []
        if chunk and use is not None
        else [{"index": 0, "text": text, "finish_reason": finish, "logprobs": None}],
    }
    if use is not None:
        out["usage"] = use.model_dump()
    return out


def models_response(model: str) -> dict[str, Any]:
    return {
        "object": "list",
        "data": [{"id": model, "object": "model", "created": 0, "owned_by": "trail"}],
    }
