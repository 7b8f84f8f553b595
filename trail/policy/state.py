"""What the policy knows about one request: lengths, times and resources, nothing framework-specific."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LengthState:
    """Length knowledge and bookkeeping for one request.

    `refined_pred` is the expected remaining length at the moment of the last refinement
    (when `generated` was `refined_at`); between refinements it counts down one per token.
    The resource fields are what the engine (or the simulator) reports each step so the policy
    can weigh a preemption: KV blocks held while running, blocks needed to be admitted while
    waiting, and the tokens a preemption now would have to recompute.
    """

    request_id: str
    arrival: float
    initial_pred: float
    generated: int = 0
    refined_pred: float | None = None
    refined_at: int = 0
    true_total: int | None = None
    preemptions: int = 0
    waiting_since: float | None = None
    waited_s: float = 0.0  # earlier waits; kept across preemption (starvation credit)
    promoted: bool = False  # starvation promotion: runs ahead of everyone, never a victim
    max_tokens: int | None = None
    kv_blocks: int = 0
    admit_blocks: int = 0
    recompute_tokens: int = 0
    in_prefill: bool = False  # admitted, prompt not fully computed yet
    prompt_tokens: int = 0
    in_lane: bool = False  # admitted to the ranking lane: prefill only, then decode or park
    parks: int = 0  # times parked by the lane (not preemptions: no limit, no recompute)

    def refine(self, expected_remaining: float, at: int | None = None) -> None:
        """A new estimate of what is left after `at` generated tokens (default: now)."""
        self.refined_pred = expected_remaining
        self.refined_at = self.generated if at is None else at

    def enter_waiting(self, now: float) -> None:
        if self.waiting_since is None:
            self.waiting_since = now

    def leave_waiting(self, now: float) -> None:
        if self.waiting_since is not None:
            self.waited_s += max(now - self.waiting_since, 0.0)
            self.waiting_since = None
