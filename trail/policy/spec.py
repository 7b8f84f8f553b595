"""The five policies of the paper as settings of one configuration."""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum


class PredictionSource(StrEnum):
    """Where a request's predicted remaining length comes from."""

    NONE = "none"  # FCFS: no prediction is used
    PROMPT = "prompt"  # the prompt predictor's total, fixed (SJF by prompt)
    PROMPT_COUNTDOWN = "prompt-countdown"  # prompt total minus tokens generated
    REFINED = "refined"  # probe + Bayesian refinement, counting down between probe runs
    ORACLE = "oracle"  # the true remaining length (TRAIL+)


@dataclass(frozen=True)
class PolicyConfig:
    """A scheduling policy.

    `c` bounds limited preemption: a running request is a preemption victim only while
    `generated <= c * initial_prediction` (c = 0: never; c = inf: SPRPT).
    Aging keeps long requests from starving: every waiting second lowers the effective rank by
    `aging_tokens_per_s` (after a grace of `aging_after_s`), and a request waiting longer than `starvation_s` jumps ahead of every
    request that has not (FCFS among those), which bounds its wait.
    `rank_bucket_tokens` > 0 ranks predictions within one bucket as equal (FCFS among them), so
    noisy long predictions do not wait behind every later arrival (the tail's knob).
    `rank_lane_seqs` > 0 turns on prefill-to-rank (trail/policy/lane.py): that many arrivals
    prefill beside the full decode batch so the probe ranks them before they wait.
    """

    name: str = "trail"
    source: PredictionSource = PredictionSource.REFINED
    preemptive: bool = True
    c: float = 0.8
    margin_tokens: float = 8.0
    max_preemptions: int = 2
    aging_tokens_per_s: float = 0.0
    aging_after_s: float = 0.0
    starvation_s: float = math.inf
    rank_bucket_tokens: float = 0.0
    rank_lane_seqs: int = 0
    rank_lane_tokens: int = 1024
    rank_lane_max_parked: int = 64

    def __post_init__(self) -> None:
        if self.rank_lane_seqs > 0 and self.source is not PredictionSource.REFINED:
            raise ValueError(
                f"policy {self.name!r}: the ranking lane (rank_lane_seqs > 0) ranks by the "
                "probe's output; it needs a policy that uses it (trail)"
            )

    @property
    def orders_by_prediction(self) -> bool:
        return self.source is not PredictionSource.NONE

    def with_(self, **changes: object) -> PolicyConfig:
        return replace(self, **changes)  # type: ignore[arg-type]


# A newcomer is ranked by the prompt predictor alone (held-out MAE ~128 tokens, tau 0.27), so a
# swap it "wins" by a few tokens is a coin flip that costs the victim a stall: predicted
# policies preempt only for a predicted gain of 2 x that error (docs/scheduling.md, the traced
# simulator: margin 8 -> 256 took preemptions 47 -> 5 per 80 requests at equal or better
# latency). The oracle's sizes are exact, so a small margin stays right for TRAIL+.
NOISY_MARGIN_TOKENS = 256.0

POLICIES: dict[str, PolicyConfig] = {
    "fcfs": PolicyConfig("fcfs", PredictionSource.NONE, preemptive=False, c=0.0),
    "sjf-prompt": PolicyConfig("sjf-prompt", PredictionSource.PROMPT, preemptive=False, c=0.0),
    "trail-prompt": PolicyConfig(
        "trail-prompt", PredictionSource.PROMPT_COUNTDOWN, margin_tokens=NOISY_MARGIN_TOKENS
    ),
    "trail": PolicyConfig("trail", PredictionSource.REFINED, margin_tokens=NOISY_MARGIN_TOKENS),
    "trail-oracle": PolicyConfig("trail-oracle", PredictionSource.ORACLE),
}


def get_policy(name: str, **overrides: object) -> PolicyConfig:
    """A named policy with optional field overrides; a clear error for an unknown name."""
    try:
        base = POLICIES[name]
    except KeyError:
        raise ValueError(f"unknown policy {name!r}; choose one of {sorted(POLICIES)}") from None
    return base.with_(**overrides) if overrides else base
