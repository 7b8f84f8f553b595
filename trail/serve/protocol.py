"""What the ingress sends an LLM replica, and what the replica streams back.

The ingress forwards vLLM's own request model (validated by the same pydantic classes
`vllm serve` uses) inside an `OpenAICall` that also carries the predicted work, so that the
RequestRouter, which sees only the call's arguments, can count what it dispatched before the
replica reports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

Route = Literal["chat", "completion", "tokenize", "detokenize", "models"]
GENERATES: frozenset[str] = frozenset({"chat", "completion"})


@dataclass
class OpenAICall:
    route: Route
    request: Any = None  # vLLM's protocol model (ChatCompletionRequest, ...); None for models
    request_id: str = ""  # the response's id ("chatcmpl-..."), also the record key
    prompt_tokens: int = 0
    predicted_tokens: float = 0.0  # expected output tokens, summed over the n choices
    engine_ids: tuple[str, ...] = ()  # the engine's ids of its prompts (aborted if left behind)
    trail_return: bool = False  # vllm_xargs.trail_return: the answer carries a `trail` field

    @property
    def work_tokens(self) -> float:
        """Decode work predicted plus prefill to do: the same unit as EngineLoad.work_tokens."""
        return self.predicted_tokens + self.prompt_tokens


@dataclass
class Accepted:
    """The first item of every answer: which replica took the call."""

    replica: str


@dataclass
class Reply:
    """A whole answer (vLLM's response or error body and its status); a streamed answer is a
    sequence of SSE strings instead, exactly as vLLM's handlers produce them."""

    status: int
    body: dict[str, Any]


def request_from_call(args: list[Any], kwargs: dict[str, Any]) -> OpenAICall | None:
    """The generating OpenAICall of a handle call, wherever it was passed (tokenize and models
    calls carry no work and are routed without one)."""
    for value in [*args, *kwargs.values()]:
        if isinstance(value, OpenAICall) and value.route in GENERATES:
            return value
    return None
