"""The waiting queue as a swappable class (cf. vLLM's request_queue.py): FCFS storage that the
scheduler re-sorts by the policy's key once per step (ranks change with age and refinement)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from vllm.v1.core.sched.request_queue import FCFSRequestQueue


class RankedRequestQueue(FCFSRequestQueue):
    def reorder(self, key: Callable[[Any], Any]) -> None:
        ordered = sorted(self, key=key)
        self.clear()
        self.extend(ordered)

    @contextmanager
    def holding_only(self, admissible: Sequence[Any]) -> Iterator[None]:
        """vLLM admits from the front of the queue while slots, KV and tokens allow; under the
        ranking lane the policy has already chosen who may enter, so for one schedule() the
        queue holds only them, in order. Everyone else is put back behind, whatever vLLM did
        meanwhile (it pops the admitted, prepends its own KV-pressure victims)."""
        chosen = {id(r) for r in admissible}
        held = [r for r in self if id(r) not in chosen]
        self.clear()
        self.extend(admissible)
        try:
            yield
        finally:
            self.extend(held)
