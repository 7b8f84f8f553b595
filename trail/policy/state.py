"""What the policy knows about one request: lengths and times, nothing framework-specific."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class LengthState:
    """Length knowledge and bookkeeping for one request.

    `refined_pred` is the expected remaining length at the moment of the last refinement
    (when `generated` was `refined_at`); between refinements it counts down one per token.
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
    max_tokens: int | None = None

    def refine(self, expected_remaining: float) -> None:
        self.refined_pred = expected_remaining
        self.refined_at = self.generated

    def enter_waiting(self, now: float) -> None:
        self.waiting_since = now

    def leave_waiting(self) -> None:
        self.waiting_since = None
