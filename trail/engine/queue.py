"""The waiting queue as a swappable class (cf. vLLM's request_queue.py): FCFS storage that the
scheduler re-sorts by the policy's key once per step (ranks change with age and refinement)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from vllm.v1.core.sched.request_queue import FCFSRequestQueue


class RankedRequestQueue(FCFSRequestQueue):
    def reorder(self, key: Callable[[Any], Any]) -> None:
        ordered = sorted(self, key=key)
        self.clear()
        self.extend(ordered)
