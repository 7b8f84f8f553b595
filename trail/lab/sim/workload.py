"""Requests for the engine and cluster simulators: Poisson arrivals, lengths and predictions."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from trail.lab.sim.distributions import SizeDist, exponential, lognormal
from trail.policy import LengthState


@dataclass(slots=True)
class SimRequest:
    """One request: what the policy sees (`state`) plus what only the simulator knows."""

    state: LengthState
    prompt_len: int
    output_len: int
    first_token: float = math.nan
    second_token: float = math.nan  # a parked request has a first token but no answer yet
    max_stall: float = 0.0  # longest wait between two of its tokens (preempted or parked)
    finish: float = math.nan
    refine_epoch: int = 0
    engine: int = -1
    cached_tokens: int = 0  # prefix-cache hit when re-admitted after a preemption
    trace: np.ndarray | None = None  # a real predictor's remaining length at each g (traced.py)

    @property
    def arrival(self) -> float:
        return self.state.arrival

    @property
    def remaining(self) -> int:
        return self.output_len - self.state.generated


@dataclass(frozen=True)
class WorkloadSpec:
    """Output lengths, prompt lengths and the prompt predictor's error (lognormal, median-unbiased).

    Defaults follow TRAIL's setting: outputs up to 512 tokens, a prompt predictor whose error is
    about twice the refined probe's (refinement sigma lives in SimEngineConfig).
    """

    rate: float  # requests per second, Poisson
    output: SizeDist = field(default_factory=lambda: exponential(150.0))
    prompt: SizeDist = field(default_factory=lambda: lognormal(120.0, 0.8))
    prompt_sigma: float = 0.8
    max_tokens: int = 512


def make_requests(spec: WorkloadSpec, n: int, seed: int = 0) -> list[SimRequest]:
    rng = np.random.default_rng(seed)
    arrival = np.cumsum(rng.exponential(1.0 / spec.rate, n))
    output = np.clip(np.ceil(spec.output.sample(rng, n)), 1, spec.max_tokens).astype(int)
    prompt = np.clip(np.ceil(spec.prompt.sample(rng, n)), 1, None).astype(int)
    pred = output * np.exp(spec.prompt_sigma * rng.standard_normal(n))
    return [
        SimRequest(
            LengthState(
                str(i),
                float(arrival[i]),
                initial_pred=float(pred[i]),
                true_total=int(output[i]),
                max_tokens=spec.max_tokens,
            ),
            prompt_len=int(prompt[i]),
            output_len=int(output[i]),
        )
        for i in range(n)
    ]


def mean_output_tokens(spec: WorkloadSpec, samples: int = 200_000) -> float:
    """Mean output length after rounding and the max_tokens cap (what the engines really serve)."""
    rng = np.random.default_rng(12345)
    return float(np.clip(np.ceil(spec.output.sample(rng, samples)), 1, spec.max_tokens).mean())
