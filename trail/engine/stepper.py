"""Drive an offline vLLM engine step by step, adding requests at chosen steps.

Deterministic scenarios (tests) and the replay benchmark both need arrivals interleaved with
engine steps; `LLMEngine.add_request` + `step()` gives exactly that without an HTTP layer.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Arrival:
    request_id: str
    prompt_ids: list[int]
    params: Any  # vllm.SamplingParams
    at_step: int | None = None  # add when the engine has done this many steps
    at_time: float | None = None  # or when this many seconds have passed


@dataclass
class Finished:
    request_id: str
    token_ids: list[int]
    arrival_s: float
    first_token_s: float
    finish_s: float
    first_token_step: int
    finish_step: int
    num_cached_tokens: int = 0  # prompt tokens served from the prefix cache
    max_stall_s: float = 0.0  # longest gap between two output tokens after the first
    second_token_s: float | None = None  # a parked request has a first token, not its answer
    kv_transfer_params: dict[str, Any] | None = None  # vLLM's; TRAIL's opt-in summary rides it

    @property
    def latency_s(self) -> float:
        return self.finish_s - self.arrival_s

    @property
    def ttft_s(self) -> float:
        return self.first_token_s - self.arrival_s

    @property
    def tpot_s(self) -> float:
        """Mean time per output token after the first (0 for a one-token answer)."""
        n = len(self.token_ids)
        return (self.finish_s - self.first_token_s) / (n - 1) if n > 1 else 0.0


@dataclass
class _Live:
    arrival_s: float
    first_token_s: float | None = None
    first_token_step: int | None = None
    tokens: int = 0
    last_token_s: float = 0.0
    max_stall_s: float = 0.0  # a policy that emits one token and then preempts shows here
    second_token_s: float | None = None

    def saw(self, tokens: int, now: float) -> None:
        if tokens > self.tokens:
            if self.tokens > 0:
                self.max_stall_s = max(self.max_stall_s, now - self.last_token_s)
            if tokens >= 2 and self.second_token_s is None:
                self.second_token_s = now
            self.tokens, self.last_token_s = tokens, now


@dataclass
class StepDriver:
    engine: Any  # vllm LLMEngine
    on_step: Callable[[int], None] | None = None
    finished: dict[str, Finished] = field(default_factory=dict)

    def run(self, arrivals: list[Arrival], max_steps: int = 100_000) -> dict[str, Finished]:
        from vllm.inputs import TokensPrompt

        pending = sorted(arrivals, key=lambda a: (a.at_step or 0, a.at_time or 0.0))
        live: dict[str, _Live] = {}
        t0 = time.perf_counter()
        step = 0
        while (pending or live) and step < max_steps:
            now = time.perf_counter() - t0
            while pending and _due(pending[0], step, now):
                a = pending.pop(0)
                self.engine.add_request(
                    a.request_id, TokensPrompt(prompt_token_ids=a.prompt_ids), a.params
                )
                live[a.request_id] = _Live(arrival_s=time.perf_counter() - t0)
            if not live:
                time.sleep(min(0.005, max(_next_time(pending) - now, 0.0)))
                continue
            outputs = self.engine.step()
            step += 1
            self._record(outputs, live, step, time.perf_counter() - t0)
            if self.on_step:
                self.on_step(step)
        return self.finished

    def _record(self, outputs: list, live: dict[str, _Live], step: int, now: float) -> None:
        for out in outputs:
            st = live.get(out.request_id)
            if st is None:
                continue
            tokens = len(out.outputs[0].token_ids) if out.outputs else 0
            if st.first_token_s is None and tokens:
                st.first_token_s, st.first_token_step = now, step
            st.saw(tokens, now)
            if out.finished:
                live.pop(out.request_id)
                self.finished[out.request_id] = Finished(
                    request_id=out.request_id,
                    token_ids=list(out.outputs[0].token_ids),
                    arrival_s=st.arrival_s,
                    first_token_s=st.first_token_s if st.first_token_s is not None else now,
                    finish_s=now,
                    first_token_step=st.first_token_step or step,
                    finish_step=step,
                    num_cached_tokens=int(getattr(out, "num_cached_tokens", 0) or 0),
                    max_stall_s=st.max_stall_s,
                    second_token_s=st.second_token_s,
                    kv_transfer_params=getattr(out, "kv_transfer_params", None),
                )


def _due(a: Arrival, step: int, now: float) -> bool:
    if a.at_step is not None:
        return step >= a.at_step
    return now >= (a.at_time or 0.0)


def _next_time(pending: list[Arrival]) -> float:
    return pending[0].at_time or 0.0 if pending else 0.0
