"""vLLM's engine core under async scheduling, reproduced on the CPU without weights: a real
TrailAsyncScheduler from a VllmConfig and KVCacheConfig (as vLLM's own scheduler tests build one),
a fabricated model output per step, two steps in flight; and vLLM's invariants, checked after every
call. Used by tests/engine/test_async_scheduler.py."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import torch
from vllm.config import CacheConfig, ModelConfig, SchedulerConfig, VllmConfig
from vllm.sampling_params import SamplingParams
from vllm.v1.core.sched.output import SchedulerOutput
from vllm.v1.kv_cache_interface import (
    FullAttentionSpec,
    KVCacheConfig,
    KVCacheGroupSpec,
    KVCacheSpec,
    SlidingWindowSpec,
)
from vllm.v1.outputs import ModelRunnerOutput
from vllm.v1.request import Request, RequestStatus
from vllm.v1.structured_output import StructuredOutputManager

from trail.engine.scheduler import TrailAsyncScheduler, TrailScheduler
from trail.engine.step_timing import step_shape
from trail.engine.trail_config import TrailConfig

BLOCK_SIZE = 16
MAX_MODEL_LEN = 512
PROMPT_TOKENS = 32
SAMPLED_TOKEN = 7  # never a stop token: requests run to max_tokens (ignore_eos)
# pinned, so the preemption tests decide the same way however fast this machine is
PINNED_STEP_COST = {"base_s": 0.02, "per_prefill_token_s": 4e-4, "per_decode_seq_s": 6e-3}

SchedulerClass = type[TrailScheduler] | type[TrailAsyncScheduler]


# ---- building a scheduler as vLLM's tests do (tests/v1/core/utils.py: create_scheduler) -----
def model_config_with_trail(model_dir: Path, trail: TrailConfig) -> ModelConfig:
    """TRAIL's settings reach the scheduler as they do in an engine: hf_overrides=TrailOverrides."""
    from trail.engine.overrides import TrailOverrides

    model_config = ModelConfig(
        model=str(model_dir),  # only its config.json is read
        dtype="float32",
        seed=0,
        max_model_len=MAX_MODEL_LEN,
        skip_tokenizer_init=True,
        hf_overrides=TrailOverrides(trail),
    )
    return model_config


def engine_config(
    model_dir: Path,
    trail: TrailConfig,
    *,
    async_scheduling: bool = True,
    max_num_seqs: int = 4,
    max_num_batched_tokens: int = 256,
) -> VllmConfig:
    config = VllmConfig(
        model_config=model_config_with_trail(model_dir, trail),
        scheduler_config=SchedulerConfig(
            max_model_len=MAX_MODEL_LEN,
            is_encoder_decoder=False,
            max_num_seqs=max_num_seqs,
            max_num_batched_tokens=max_num_batched_tokens,
            policy="priority",
            async_scheduling=async_scheduling,
        ),
        cache_config=CacheConfig(block_size=BLOCK_SIZE, enable_prefix_caching=False),
    )
    # the CPU platform turns async scheduling off (platforms/cpu.py); a GPU platform keeps it
    config.scheduler_config.async_scheduling = async_scheduling
    return config


def full_attention() -> KVCacheSpec:
    return FullAttentionSpec(
        block_size=BLOCK_SIZE, num_kv_heads=1, head_size=64, dtype=torch.float32
    )


def sliding_window(window: int) -> KVCacheSpec:
    return SlidingWindowSpec(
        block_size=BLOCK_SIZE,
        num_kv_heads=1,
        head_size=64,
        dtype=torch.float32,
        sliding_window=window,
    )


def build_scheduler(
    config: VllmConfig,
    cls: SchedulerClass = TrailAsyncScheduler,
    kv_specs: Sequence[KVCacheSpec] | None = None,
    num_blocks: int = 64,
) -> Any:
    """One KV-cache group per spec (default: one full-attention group), one shared pool."""
    specs = kv_specs if kv_specs is not None else [full_attention()]
    groups = [KVCacheGroupSpec([f"layer.{i}"], spec) for i, spec in enumerate(specs)]
    config.cache_config.num_gpu_blocks = num_blocks
    return cls(
        vllm_config=config,
        kv_cache_config=KVCacheConfig(
            num_blocks=num_blocks, kv_cache_tensors=[], kv_cache_groups=groups
        ),
        structured_output_manager=StructuredOutputManager(config),
        block_size=BLOCK_SIZE,
    )


def oracle_request(request_id: str, output_tokens: int, prompt_tokens: int = PROMPT_TOKENS):
    """The oracle's true length travels in SamplingParams.extra_args["trail"] (what
    tracking.initial_from_request reads); with ignore_eos the request generates exactly that."""
    params = SamplingParams(
        max_tokens=output_tokens,
        ignore_eos=True,
        extra_args={"trail": {"true_len": output_tokens}},
    )
    return Request(request_id, [1] * prompt_tokens, params, None)


# ---- vLLM's engine core under async scheduling, with a fabricated model ----------------------
class FakeDeviceClock:
    """The scheduler's step clock: each step with tokens takes one second of device time."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class AsyncEngineCore:
    """EngineCore.step_with_batch_queue (vllm/v1/engine/core.py) with a batch queue of two, the
    async-scheduling depth: schedule while the queue has room, else process the oldest step's
    output. The model samples SAMPLED_TOKEN for every request that finished its prefill (a
    partial prefill chunk samples nothing, as vLLM's model runner does). vLLM's invariants are
    checked after every schedule() and update_from_output()."""

    def __init__(self, scheduler: Any) -> None:
        self.scheduler = scheduler
        self.clock = FakeDeviceClock()
        scheduler.timer.clock = self.clock
        self.batch_queue: deque[SchedulerOutput] = deque()
        self.partial_prefills: dict[int, set[str]] = {}
        self.shapes: dict[int, tuple[int, int]] = {}  # of each step, taken when scheduled
        self.processed: list[SchedulerOutput] = []

    def step(self) -> None:
        """One call of step_with_batch_queue."""
        if self.scheduler.has_requests():
            self.schedule()
            if len(self.batch_queue) < 2:
                return  # room for another step: vLLM does not wait for this one's output
        if self.batch_queue:
            self.process_oldest()

    def schedule(self) -> SchedulerOutput:
        out = self.scheduler.schedule()
        self.shapes[id(out)] = step_shape(out.num_scheduled_tokens)
        self.partial_prefills[id(out)] = {
            rid for rid in out.num_scheduled_tokens if self.scheduler.requests[rid].is_prefill_chunk
        }
        self.batch_queue.appendleft(out)
        check_vllm_invariants(self.scheduler)
        return out

    def process_oldest(self) -> SchedulerOutput:
        out = self.batch_queue.pop()
        if out.total_num_scheduled_tokens:
            self.clock.now += 1.0  # this step ran on the device for one second
        self.scheduler.update_from_output(out, self.model_output(out))
        self.processed.append(out)
        check_vllm_invariants(self.scheduler)
        return out

    def model_output(self, out: SchedulerOutput) -> ModelRunnerOutput:
        """As vLLM's tests fabricate one (tests/v1/core/test_async_scheduler.py)."""
        req_ids = list(out.num_scheduled_tokens)
        partial = self.partial_prefills.pop(id(out))
        return ModelRunnerOutput(
            req_ids=req_ids,
            req_id_to_index={rid: i for i, rid in enumerate(req_ids)},
            sampled_token_ids=[[] if rid in partial else [SAMPLED_TOKEN] for rid in req_ids],
        )

    def run_until(self, done: Callable[[], bool], max_calls: int = 2000) -> None:
        for _ in range(max_calls):
            if done():
                return
            self.step()
        raise AssertionError(f"not done after {max_calls} engine steps")

    def run_until_idle(self) -> None:
        self.run_until(lambda: not self.scheduler.has_requests() and not self.batch_queue)


def check_vllm_invariants(s: Any) -> None:
    """What vLLM's own bookkeeping guarantees, and TRAIL's view of it, after every call."""
    running, waiting = list(s.running), [*s.waiting, *s.kv_holding_waiting]
    running_ids = [r.request_id for r in running]
    waiting_ids = [r.request_id for r in waiting]
    assert len(set(running_ids)) == len(running_ids), "a request twice in running"
    assert not set(running_ids) & set(waiting_ids), "a request both running and waiting"
    assert len(running) <= s.max_num_running_reqs
    live = {rid for rid, r in s.requests.items() if not r.is_finished()}
    assert set(running_ids) | set(waiting_ids) == live, "a live request in no queue"
    assert all(r.status == RequestStatus.RUNNING for r in running)
    assert all(r.status in (RequestStatus.WAITING, RequestStatus.PREEMPTED) for r in waiting)
    for r in s.requests.values():
        assert r.num_computed_tokens >= 0 and r.num_in_flight_tokens >= 0
        assert r.num_output_placeholders >= 0 and r.num_stale_output_tokens >= 0
        if r.status == RequestStatus.RUNNING:
            assert r.num_computed_tokens <= r.num_tokens + r.num_output_placeholders
        else:  # _preempt_request zeroes them; a waiting request never had any
            assert r.num_output_placeholders == 0
    # (d) TRAIL's O(1) count is what vLLM's block lists say, summed over KV-cache groups
    for rid in s.requests:
        listed = s.kv_cache_manager.get_block_ids(rid)
        assert s.kv_blocks_held(rid) == sum(len(ids) for ids in listed), rid
    assert set(s.tracked) == set(s.requests), "TRAIL tracks exactly vLLM's live requests"


def check_every_block_accounted(s: Any) -> None:
    """Full attention, no prefix cache: every block of the pool is free or held by a request."""
    held = sum(s.kv_blocks_held(rid) for rid in s.requests)
    assert s.free_kv_blocks() + held == s.total_kv_blocks()


# ---- (a) + (b): limited preemption with output in flight ----------------------------------
def oracle(c: float) -> TrailConfig:
    return TrailConfig(policy="trail-oracle", c=c, step_cost=PINNED_STEP_COST)


LONG_TOKENS, SHORT_TOKENS, C = 100, 4, 0.2  # the long one is preemptible for 20 tokens


def start_long_request(tiny_path: Path, age: int) -> tuple[AsyncEngineCore, Request]:
    """One slot, a long request that has delivered `age` tokens and has a step in flight."""
    config = engine_config(tiny_path, oracle(C), max_num_seqs=1)
    engine = AsyncEngineCore(build_scheduler(config))
    long = oracle_request("long", LONG_TOKENS)
    engine.scheduler.add_request(long)
    engine.run_until(lambda: long.num_output_tokens >= age)
    assert long.num_output_tokens == age and long.num_output_placeholders == 1
    assert len(engine.batch_queue) == 1  # its next step is on the device
    return engine, long
