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


def request_from_call(
    args: list[Any], kwargs: dict[str, Any], default_prediction: float = 256.0
) -> OpenAICall | None:
    """The generating OpenAICall of a handle call, wherever it was passed (tokenize and models
    calls carry no work and are routed without one). Ray Serve LLM's ingress passes vLLM's bare
    request model instead: its work is read from the request itself (call_from_vllm_request)."""
    for value in [*args, *kwargs.values()]:
        if isinstance(value, OpenAICall):
            return value if value.route in GENERATES else None
        call = call_from_vllm_request(value, default_prediction)
        if call is not None:
            return call
    return None


def call_from_vllm_request(request: Any, default_prediction: float) -> OpenAICall | None:
    """An OpenAICall for a vLLM Chat/CompletionRequest that no TRAIL ingress predicted: the
    prediction a client or ingress put in `vllm_xargs` (nested `trail.initial_pred` or flat
    `trail_initial_pred`), else the default, capped by max_tokens, times n. Its prompt length is
    unknown here (no tokenizer in the router): the replica's engine reports it within a step."""
    route: Route
    if hasattr(request, "messages"):
        route = "chat"
    elif hasattr(request, "prompt") and hasattr(request, "max_tokens"):
        route = "completion"
    else:
        return None
    return OpenAICall(
        route,
        request,
        request_id=str(getattr(request, "request_id", "") or id(request)),
        predicted_tokens=predicted_output(request, default_prediction),
    )


def predicted_output(request: Any, default_prediction: float) -> float:
    """Expected output tokens of a vLLM request model, summed over its n choices."""
    xargs = getattr(request, "vllm_xargs", None) or {}
    nested = xargs.get("trail") if isinstance(xargs.get("trail"), dict) else {}
    pred = nested.get("initial_pred", xargs.get("trail_initial_pred", default_prediction))
    try:
        pred = float(pred)
    except (TypeError, ValueError):
        pred = default_prediction
    cap = getattr(request, "max_completion_tokens", None) or getattr(request, "max_tokens", None)
    if cap:
        pred = min(pred, float(cap))
    return max(pred, 1.0) * int(getattr(request, "n", None) or 1)
