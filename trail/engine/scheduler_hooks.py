"""The vLLM Scheduler internals the TRAIL scheduler touches, in one class (pinned vLLM: see
trail/engine/vllm_hooks.py)."""

from __future__ import annotations

from typing import Any


class SchedulerHooks:
    """vLLM Scheduler internals the TRAIL mixin uses, under names that say what they do.

    Relies on (vLLM 0.32 v1 Scheduler): `_free_request(request)` being the one place a finished
    or aborted request leaves; `_preempt_request(request, timestamp)` doing vLLM's own recompute
    preemption (free KV, back to waiting, num_preemptions += 1) given the request was already
    removed from `running`; `waiting` being any RequestQueue (we install our own); the priority
    policy's KV-pressure victim being max(running, key=(priority, arrival_time)); and
    kv_cache_manager.block_pool / get_block_ids for KV accounting.
    """

    def on_request_freed(self, request: Any) -> None:  # overridden by the TRAIL mixin
        pass

    def _free_request(self, request: Any, *args: Any, **kwargs: Any) -> Any:
        self.on_request_freed(request)
        return super()._free_request(request, *args, **kwargs)  # type: ignore[misc]

    def install_waiting_queue(self, queue: Any) -> None:
        self.waiting = queue

    def preempt_running(self, request: Any, now: float) -> None:
        self.running.remove(request)  # type: ignore[attr-defined]
        self._preempt_request(request, now)  # type: ignore[attr-defined]

    def set_kv_victim_rank(self, request: Any, rank: float) -> None:
        """Under KV pressure vLLM preempts the running request with the largest rank."""
        request.priority = rank

    def free_kv_blocks(self) -> int:
        return self.kv_cache_manager.block_pool.get_num_free_blocks()  # type: ignore[attr-defined]

    def total_kv_blocks(self) -> int:
        return self.kv_cache_manager.block_pool.num_gpu_blocks - 1  # minus vLLM's null block  # type: ignore[attr-defined]

    def kv_blocks_held(self, request_id: str) -> int:
        return len(self.kv_cache_manager.get_block_ids(request_id)[0])  # type: ignore[attr-defined]
