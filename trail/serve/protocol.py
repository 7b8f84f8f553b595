"""What the ingress sends an LLM replica, and what the replica streams back.

The request carries its own predicted work (`work_tokens`) so that the RequestRouter, which
sees only the call's arguments, can count what it dispatched before the replica reports it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class EngineRequest:
    request_id: str
    prompt_token_ids: list[int]
    sampling: dict[str, Any]  # SamplingParams keyword arguments
    trail: dict[str, Any] = field(default_factory=dict)  # extra_args["trail"] for the scheduler
    predicted_tokens: float = 0.0  # expected output tokens (capped by max_tokens)

    @property
    def prompt_tokens(self) -> int:
        return len(self.prompt_token_ids)

    @property
    def work_tokens(self) -> float:
        """Decode work predicted plus prefill to do: the same unit as EngineLoad.work_tokens."""
        return self.predicted_tokens + self.prompt_tokens


@dataclass
class Chunk:
    """One streamed piece: the first has only `replica` set (sent on acceptance)."""

    replica: str = ""
    text: str = ""
    completion_tokens: int = 0  # cumulative
    finish_reason: str | None = None


def request_from_call(args: list[Any], kwargs: dict[str, Any]) -> EngineRequest | None:
    """The EngineRequest of a handle call, wherever it was passed."""
    for value in [*args, *kwargs.values()]:
        if isinstance(value, EngineRequest):
            return value
    return None
