"""What an engine step costs, and so what a preemption costs (pure; engine and simulator).

A step's time is modelled as base + a x prefill tokens + b x decode sequences (+ c x context
tokens held by the batch, the attention reads), the shape vLLM's iteration-level batching has on
CPUs and GPUs alike. One model for the scheduler and the simulator: the engine fits the first
three terms online; the simulator is calibrated from an engine's step trace
(trail/lab/sim/calibrate.py) and also uses the context term. `StepCostEstimator` fits it online from the
engine's own steps (least squares over a window), so the recompute cost that gates a
preemption is measured, not guessed; `DEFAULT_STEP_COST` is the documented fallback until
enough steps were seen (SmolLM2-135M, fp32, 2 cores; docs/scheduling.md).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class StepCost:
    base_s: float
    per_prefill_token_s: float
    per_decode_seq_s: float
    per_context_token_s: float = 0.0

    def step_seconds(
        self, prefill_tokens: float, decode_seqs: float, context_tokens: float = 0.0
    ) -> float:
        return (
            self.base_s
            + self.per_prefill_token_s * prefill_tokens
            + self.per_decode_seq_s * decode_seqs
            + self.per_context_token_s * context_tokens
        )

    @property
    def prefill_weight(self) -> float:
        """A prompt token's cost in decode-sequence steps: how a router weighs prefill work."""
        return self.per_prefill_token_s / max(self.per_decode_seq_s, 1e-9)

    def recompute_steps(self, tokens: int, running: int) -> float:
        """A preemption's cost in the unit of its gain (decode steps of one request): the
        re-prefill of `tokens` delays every one of the `running` requests by that long."""
        if tokens <= 0:
            return 0.0
        batch = max(running, 1)
        decode_step = self.step_seconds(0, batch)
        return tokens * self.per_prefill_token_s / decode_step * batch


DEFAULT_STEP_COST = StepCost(base_s=0.02, per_prefill_token_s=4e-4, per_decode_seq_s=6e-3)


class StepCostEstimator:
    """Online least-squares fit of StepCost from (prefill tokens, decode seqs, seconds)."""

    def __init__(self, default: StepCost = DEFAULT_STEP_COST, window: int = 512, every: int = 32):
        self.current = default
        self._rows: deque[tuple[float, float, float]] = deque(maxlen=window)
        self._every = every
        self._seen = 0

    def observe(self, prefill_tokens: int, decode_seqs: int, seconds: float) -> None:
        if seconds <= 0 or (prefill_tokens == 0 and decode_seqs == 0):
            return
        self._rows.append((float(prefill_tokens), float(decode_seqs), seconds))
        self._seen += 1
        if self._seen % self._every == 0:
            self.current = fit_step_cost(list(self._rows), self.current)

    def __call__(self) -> StepCost:
        return self.current


def fit_step_cost(
    rows: list[tuple[float, float, float]], fallback: StepCost, min_rows: int = 16
) -> StepCost:
    """Non-negative coefficients from (prefill tokens, decode seqs, seconds) rows; the fallback
    where the rows cannot identify them (too few, or no variation in prefill)."""
    if len(rows) < min_rows:
        return fallback
    a = np.array([[1.0, p, d] for p, d, _ in rows])
    y = np.array([s for _, _, s in rows])
    if np.ptp(a[:, 1]) == 0:
        return fallback
    coef, *_ = np.linalg.lstsq(a, y, rcond=None)
    base, per_tok, per_seq = (max(float(c), 0.0) for c in coef)
    if per_tok == 0.0:
        return fallback
    return StepCost(base, per_tok, per_seq)
