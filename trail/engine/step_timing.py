"""How long each scheduled step took on the device, for the step-cost model.

Under async scheduling vLLM's engine core schedules step n+1 before it processes step n's
output (EngineCore.step_with_batch_queue), so two steps are in flight: each step's sample waits
in a FIFO until its own SchedulerOutput comes back to update_from_output.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

# vLLM keeps at most max_concurrent_batches (2 under async scheduling, as TRAIL refuses pipeline
# parallelism) steps in flight; the bound only keeps a lost output from growing the FIFO.
MAX_STEPS_IN_FLIGHT = 8


@dataclass(frozen=True)
class StepSample:
    """What one scheduled step looked like, until its output comes back. `output` is the
    SchedulerOutput itself: matched by identity, and holding it keeps its id from reuse."""

    output: Any
    scheduled_at: float
    prefill_tokens: int
    decode_seqs: int
    context_tokens: int


def step_shape(num_scheduled_tokens: dict[str, int]) -> tuple[int, int]:
    """(prefill tokens, decode sequences) of a step: a request with one token is decoding."""
    prefill = sum(n for n in num_scheduled_tokens.values() if n > 1)
    decode = sum(1 for n in num_scheduled_tokens.values() if n == 1)
    return prefill, decode


class StepTimer:
    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.clock = clock  # tests may fake it
        self.in_flight: deque[StepSample] = deque(maxlen=MAX_STEPS_IN_FLIGHT)
        self._last_output_at = -float("inf")

    def scheduled(self, out: Any, context_tokens: int) -> None:
        """Queue this step's shape until its output returns. A step of zero tokens ran nothing
        and leaves no sample (vLLM still hands it to update_from_output, which finds none)."""
        if out.total_num_scheduled_tokens == 0:
            return
        prefill, decode = step_shape(out.num_scheduled_tokens)
        self.in_flight.append(StepSample(out, self.clock(), prefill, decode, context_tokens))

    def returned(self, out: Any) -> tuple[StepSample, float] | None:
        """`out`'s step and its device seconds: from when it was scheduled or, with a step
        still ahead of it (async scheduling), when that step's output came back."""
        now = self.clock()
        sample = self._take(out)
        self._last_output_at, last = now, self._last_output_at
        if sample is None:
            return None
        return sample, now - max(sample.scheduled_at, last)

    def _take(self, out: Any) -> StepSample | None:
        """vLLM processes outputs in the order it scheduled them, so samples queued before
        `out`'s belong to steps whose output never came back: dropped."""
        for i, sample in enumerate(self.in_flight):
            if sample.output is out:
                for _ in range(i):
                    self.in_flight.popleft()
                return self.in_flight.popleft()
        return None
