"""The vLLM internals the TRAIL scheduler touches, in one place (pinned vLLM: see
trail/engine/vllm_hooks.py), and the start-up check of the engine settings it supports.

Nothing here imports vLLM: `check_engine_supported` reads config objects only, so code that
builds an engine may call it first.
"""

from __future__ import annotations

from typing import Any

SCHEDULER_QUALNAME = "trail.engine.scheduler.TrailScheduler"
ASYNC_SCHEDULER_QUALNAME = "trail.engine.scheduler.TrailAsyncScheduler"


# ---- start-up refusals --------------------------------------------------------------------
def check_engine_supported(vllm_config: Any, is_async: bool) -> None:
    """Refuse, with the setting and its fix in the message, an engine the TRAIL scheduler would
    serve wrongly. `is_async`: the scheduler class is TrailAsyncScheduler.

    Relies on (vLLM 0.32): VllmConfig.__post_init__ having resolved
    scheduler_config.async_scheduling (the CPU platform forces it off); the engine core
    running the batch queue exactly when it is on; parallel_config.pipeline_parallel_size; and
    the VllmConfig.use_v2_model_runner property (VLLM_USE_V2_MODEL_RUNNER, forced on by HiSparse
    attention and watermarking).
    """
    check_scheduling_mode(bool(vllm_config.scheduler_config.async_scheduling), is_async)
    check_single_pipeline_stage(int(vllm_config.parallel_config.pipeline_parallel_size))
    check_v1_model_runner(bool(vllm_config.use_v2_model_runner))


def check_scheduling_mode(engine_async: bool, scheduler_async: bool) -> None:
    """A plain Scheduler under the batch queue adds no output placeholders, so a decoding
    request cannot be scheduled again before its output is back (vLLM warns of "degraded
    performance"); AsyncScheduler's placeholder bookkeeping is written for the batch queue.
    EngineConfig picks the matching class; a hand-written scheduler_cls may not."""
    if engine_async and not scheduler_async:
        raise ValueError(
            "TrailScheduler cannot run under vLLM async scheduling (async_scheduling=True, "
            f"the GPU default): use scheduler_cls={ASYNC_SCHEDULER_QUALNAME!r}, or pass "
            "async_scheduling=False (EngineConfig(async_scheduling=...) picks the matching class)"
        )
    if scheduler_async and not engine_async:
        raise ValueError(
            "TrailAsyncScheduler needs vLLM async scheduling, but this engine has "
            "async_scheduling=False (always so on CPU): use "
            f"scheduler_cls={SCHEDULER_QUALNAME!r}, or pass async_scheduling=True "
            "(EngineConfig(async_scheduling=...) picks the matching class)"
        )


def check_single_pipeline_stage(pipeline_parallel_size: int) -> None:
    """The probe reads the aux hidden states of one layer on the last stage; vLLM does not
    relay them across pipeline stages."""
    if pipeline_parallel_size > 1:
        raise ValueError(
            f"TRAIL does not support pipeline_parallel_size={pipeline_parallel_size}: the "
            "probe's aux hidden states are not relayed across pipeline stages; set "
            "pipeline_parallel_size=1 (tensor_parallel_size may be larger)"
        )


def check_v1_model_runner(uses_v2_model_runner: bool) -> None:
    """TRAIL's worker hooks patch the V1 GPUModelRunner; Model Runner V2 would bypass them and
    the probe would silently never run."""
    if uses_v2_model_runner:
        raise RuntimeError(
            "TRAIL's hooks patch vLLM's V1 GPUModelRunner, but this engine runs Model Runner "
            "V2: set VLLM_USE_V2_MODEL_RUNNER=0 in the engine's environment (EngineConfig."
            "apply_env does) and leave HiSparse attention and watermarking off (they force V2)"
        )


# ---- the scheduler's vLLM internals -------------------------------------------------------
def add_to_finished_outputs(outputs: dict[int, Any], extra: dict[str, dict[str, Any]]) -> None:
    """Merge `extra[request_id]` into the `kv_transfer_params` of that request's finished
    output, keeping any keys a KV connector set.

    Relies on (vLLM 0.32): `Scheduler.update_from_output` returning `dict[client_index,
    EngineCoreOutputs]` whose `.outputs` are mutable `EngineCoreOutput` structs with
    `request_id`, `finish_reason` (None until the last output) and `kv_transfer_params` (a dict
    the output processor copies to `RequestOutput.kv_transfer_params` unchanged)."""
    for eco in outputs.values():
        for out in eco.outputs:
            add = extra.get(out.request_id) if out.finish_reason is not None else None
            if add:
                out.kv_transfer_params = {**(out.kv_transfer_params or {}), **add}


class SchedulerHooks:
    """vLLM Scheduler internals the TRAIL mixin uses, under names that say what they do.

    Relies on (vLLM 0.32 v1 Scheduler): `_free_request(request)` being the one place a finished
    or aborted request leaves; `_preempt_request(request, timestamp)` doing vLLM's own recompute
    preemption (free KV, back to waiting, num_preemptions += 1; under async scheduling it also
    turns the in-flight output stale and zeroes the placeholders) given the request was already
    removed from `running`; `waiting` being any RequestQueue (we install our own); the priority
    policy's KV-pressure victim being max(running, key=(priority, arrival_time)); admission
    being bounded by `max_num_active_reqs` (paused streaming sessions hold a slot too); the
    engine core handing update_from_output the very SchedulerOutput object schedule() returned,
    in scheduling order, zero-token steps included (EngineCore.step, step_with_batch_queue);
    and the KV accounting below.
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

    def free_batch_slots(self) -> int:
        """Requests vLLM would still admit this step: schedule() stops admitting at
        len(running) + num_waiting_for_streaming_input >= max_num_active_reqs."""
        s: Any = self
        return s.max_num_active_reqs - len(s.running) - s.num_waiting_for_streaming_input

    # ---- KV cache: one block pool shared by every KV-cache group ------------------------------
    def install_kv_accounting(self) -> None:
        """Note, once, the KV-cache groups that draw on the device block pool.

        Relies on: KVCacheManager.coordinator.single_type_managers (one manager per KV-cache
        group, in group order) all allocating from the one `kv_cache_manager.block_pool`, except
        HiSparse host groups (own pool; they need Model Runner V2, which
        check_engine_supported refuses); each manager's `block_size` (the group's, DCP
        included), `max_admission_blocks_per_request` (set for recycling groups: sliding
        window, chunked local) and `req_to_blocks` (request id -> its blocks, what
        get_block_ids lists).
        """
        kv = self.kv_cache_manager  # type: ignore[attr-defined]
        pool = kv.block_pool
        self._kv_managers = tuple(
            m for m in kv.coordinator.single_type_managers if m.block_pool is pool
        )
        self._kv_admission_layout = tuple(
            (int(m.block_size), m.max_admission_blocks_per_request) for m in self._kv_managers
        )

    def kv_blocks_held(self, request_id: str) -> int:
        """Blocks the request holds, summed over KV-cache groups: O(1) per group, counting what
        get_block_ids lists. `req_to_blocks` is a defaultdict, so never index it (that would
        insert an entry). For a sliding-window group this includes the null placeholders of
        blocks already returned to the pool, so it overstates what preempting frees there
        (full attention: exact; blocks shared through the prefix cache are counted too)."""
        return sum(len(m.req_to_blocks.get(request_id, ())) for m in self._kv_managers)

    def kv_blocks_to_admit(self, num_tokens: int) -> int:
        """Blocks admitting a request of `num_tokens` takes from the pool, summed over groups
        (prefix-cache hits left out): vLLM's full-sequence admission check
        (scheduler_reserve_full_isl, the default) asks every group for cdiv(tokens, block);
        recycling groups (sliding window, chunked local) are capped at vLLM's own admission
        cap, window + tokens in flight, whatever the prompt. Approximate there: a prompt
        shorter than the window needs fewer, and a Mamba group (state blocks, not token
        blocks) is priced like attention, an upper bound."""
        total = 0
        for block_size, cap in self._kv_admission_layout:
            blocks = -(-num_tokens // block_size)
            total += blocks if cap is None else min(blocks, cap)
        return total

    def free_kv_blocks(self) -> int:
        """Free blocks of the shared pool, evictable prefix-cache blocks included (vLLM
        allocates those too); the null block is never free."""
        return self.kv_cache_manager.block_pool.get_num_free_blocks()  # type: ignore[attr-defined]

    def kv_admission_room(self) -> int:
        """Free blocks a waiting request may take: vLLM keeps `watermark_blocks` free when it
        admits a waiting or preempted request next to scheduled ones."""
        watermark = self.kv_cache_manager.watermark_blocks  # type: ignore[attr-defined]
        return max(self.free_kv_blocks() - watermark, 0)

    def total_kv_blocks(self) -> int:
        """Blocks of the shared pool requests can hold: all but vLLM's null block."""
        return self.kv_cache_manager.block_pool.num_gpu_blocks - 1  # type: ignore[attr-defined]
