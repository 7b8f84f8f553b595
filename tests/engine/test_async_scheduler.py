"""TrailAsyncScheduler driven the way vLLM's engine core drives it under async scheduling (the
GPU default), on the CPU and without model weights: a real scheduler built from a VllmConfig and
a KVCacheConfig as vLLM's own scheduler tests build one, a fabricated model output per step, and
two steps in flight (step n+1 is scheduled before step n's output is processed).

It checks that vLLM's invariants hold after every call, that the policy preempts (and protects)
as limited preemption says while the victim has output in flight, that each step-cost sample is
the shape and time of its own step, that KV blocks are counted over every KV-cache group, and
that the engine settings TRAIL cannot serve are refused at start-up.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from vllm.config import VllmConfig
from vllm.v1.request import RequestStatus

from tests.support.async_core import (
    LONG_TOKENS,
    SHORT_TOKENS,
    AsyncEngineCore,
    C,
    build_scheduler,
    check_every_block_accounted,
    engine_config,
    full_attention,
    oracle,
    oracle_request,
    sliding_window,
    start_long_request,
)
from trail.engine.engine_config import ASYNC_SCHEDULER_CLS, SCHEDULER_CLS
from trail.engine.scheduler import TrailScheduler
from trail.engine.scheduler_hooks import (
    ASYNC_SCHEDULER_QUALNAME,
    SCHEDULER_QUALNAME,
    check_engine_supported,
)
from trail.engine.trail_config import TrailConfig


def test_a_short_arrival_preempts_a_young_long_request_with_output_in_flight(
    tiny_path: Path,
) -> None:
    engine, long = start_long_request(tiny_path, age=3)  # 3 <= C x 100
    s = engine.scheduler
    short = oracle_request("short", SHORT_TOKENS)
    s.add_request(short)

    engine.schedule()  # TRAIL preempts `long` before vLLM schedules the step
    assert long.status == RequestStatus.PREEMPTED and long in list(s.waiting)
    assert s.running == [short] and dict(s.preemptions) == {"policy": 1}
    assert long.num_preemptions == 1 and long.num_computed_tokens == 0
    # vLLM (Scheduler._preempt_request): the placeholders go, the output in flight turns stale
    assert long.num_output_placeholders == 0 and long.num_stale_output_tokens == 1
    check_every_block_accounted(s)

    engine.process_oldest()  # the step `long` had in flight comes back
    # vLLM delivers a stale token to the preempted request (dropping it would perturb
    # spec-decode acceptance): it counts, and the placeholders are not decremented again
    assert long.num_output_tokens == 4 and long.num_stale_output_tokens == 0
    assert long.status == RequestStatus.PREEMPTED

    engine.run_until(lambda: short.is_finished())
    assert long.status == RequestStatus.PREEMPTED  # one slot: it waited for the short one
    engine.run_until_idle()
    assert short.num_output_tokens == SHORT_TOKENS
    assert long.num_output_tokens == LONG_TOKENS  # resumed, recomputed, nothing lost or extra
    assert long.status == RequestStatus.FINISHED_LENGTH_CAPPED
    assert long.num_preemptions == 1 and dict(s.preemptions) == {"policy": 1}
    assert s.free_kv_blocks() == s.total_kv_blocks() and not s.tracked


def test_a_request_past_c_times_its_prediction_is_not_preempted(tiny_path: Path) -> None:
    engine, long = start_long_request(tiny_path, age=25)  # 25 > C x 100: protected
    s = engine.scheduler
    short = oracle_request("short", SHORT_TOKENS)
    s.add_request(short)

    engine.run_until(lambda: long.is_finished())
    assert short.status == RequestStatus.WAITING and short.num_computed_tokens == 0
    engine.run_until_idle()
    assert long.num_output_tokens == LONG_TOKENS and short.num_output_tokens == SHORT_TOKENS
    assert long.num_preemptions == 0 and not s.preemptions


# ---- (c): every step-cost sample is its own step's -----------------------------------------
class StepSpy:
    """Records what the scheduler reports for each step (observer.step, step_cost.observe)."""

    def __init__(self, scheduler: Any) -> None:
        self.observed: list[tuple[int, int, float]] = []
        self.fitted: list[tuple[int, int, float]] = []
        report, fit = scheduler.observer.step, scheduler.step_cost.observe

        def observer_step(prefill: int, decode: int, context: int, secs: float) -> None:
            self.observed.append((prefill, decode, secs))
            report(prefill, decode, context, secs)

        def observe(prefill: int, decode: int, secs: float) -> None:
            self.fitted.append((prefill, decode, secs))
            fit(prefill, decode, secs)

        scheduler.observer.step = observer_step
        scheduler.step_cost.observe = observe


def test_each_output_observes_the_shape_and_time_of_its_own_step(tiny_path: Path) -> None:
    """Staggered arrivals make neighbouring steps differ in shape (prefill vs decode), so a
    sample taken from the step scheduled after (the old single slot) is caught."""
    config = engine_config(tiny_path, TrailConfig(policy="trail-oracle"))  # fits step costs
    engine = AsyncEngineCore(build_scheduler(config))
    s = engine.scheduler
    spy = StepSpy(s)
    arrivals = {0: (48, 6), 3: (80, 3), 4: (20, 9), 9: (33, 2)}  # call: (prompt, output)

    calls = 0
    while calls < 5000 and (calls <= max(arrivals) or s.has_requests() or engine.batch_queue):
        if calls in arrivals:
            prompt, output = arrivals[calls]
            s.add_request(oracle_request(f"r{calls}", output, prompt_tokens=prompt))
        observed, processed = len(spy.observed), len(engine.processed)
        engine.step()
        calls += 1
        if len(engine.processed) > processed:
            check_last_sample(engine, spy, observed)
        else:
            assert len(spy.observed) == observed, "a sample without an output"

    empty_steps = [o for o in engine.processed if o.total_num_scheduled_tokens == 0]
    assert empty_steps, "vLLM scheduled no zero-token step: the stale-entry check is idle"
    shapes = [engine.shapes[id(o)] for o in engine.processed if o.total_num_scheduled_tokens]
    assert [(p, d) for p, d, _ in spy.observed] == shapes
    assert spy.fitted == spy.observed  # the online fit sees the same samples
    assert not s.timer.in_flight, "a zero-token or processed step left a sample behind"


def check_last_sample(engine: AsyncEngineCore, spy: StepSpy, observed: int) -> None:
    """The output just processed reported exactly its own step's shape, timed from when the
    step ahead of it came back (one device second each), or nothing for a zero-token step."""
    out = engine.processed[-1]
    new = spy.observed[observed:]
    if out.total_num_scheduled_tokens == 0:
        assert not new, "a zero-token step reported a sample"
        return
    assert len(new) == 1
    prefill, decode, secs = new[0]
    assert (prefill, decode) == engine.shapes[id(out)]
    assert secs == pytest.approx(1.0)


# ---- (d): KV blocks over every KV-cache group -------------------------------------------------
def test_kv_blocks_are_counted_over_every_kv_cache_group(tiny_path: Path) -> None:
    """A hybrid model (full attention + a 32-token sliding window) draws both groups' blocks from
    one pool; the counts match vLLM's block lists and its admission arithmetic."""
    config = engine_config(tiny_path, oracle(C), max_num_batched_tokens=64)
    s = build_scheduler(config, kv_specs=[full_attention(), sliding_window(32)], num_blocks=128)
    engine = AsyncEngineCore(s)  # checks kv_blocks_held against get_block_ids every call
    request = oracle_request("hybrid", 60, prompt_tokens=100)  # 100 > 64: chunked prefill
    s.add_request(request)

    engine.run_until(lambda: request.num_output_tokens >= 40)
    full_ids, window_ids = s.kv_cache_manager.get_block_ids("hybrid")
    assert s.kv_blocks_held("hybrid") == len(full_ids) + len(window_ids)
    # documented approximation: the window group's count includes the null placeholders of
    # blocks it already gave back, so only the real blocks plus the free ones fill the pool
    null = s.kv_cache_manager.block_pool.null_block.block_id
    returned = window_ids.count(null)
    assert returned > 0 and full_ids.count(null) == 0
    assert s.free_kv_blocks() + s.kv_blocks_held("hybrid") - returned == s.total_kv_blocks()

    coordinator = s.kv_cache_manager.coordinator
    empty = s.kv_cache_manager.empty_kv_cache_blocks.blocks
    for tokens in (1, 16, 17, 100, 400):  # 400: past the window group's admission cap
        vllm_admits = coordinator.get_num_blocks_to_allocate(
            request_id="not-admitted",
            num_tokens=tokens,
            new_computed_blocks=empty,
            num_encoder_tokens=0,
            total_computed_tokens=0,
            num_local_computed_tokens=0,
            num_tokens_main_model=tokens,
            apply_admission_cap=True,
        )
        assert s.kv_blocks_to_admit(tokens) == vllm_admits, tokens
    engine.run_until_idle()
    assert s.free_kv_blocks() == s.total_kv_blocks()


# ---- (e): start-up refusals -----------------------------------------------------------------
def test_the_scheduler_class_must_match_the_scheduling_mode(tiny_path: Path) -> None:
    trail = oracle(C)
    with pytest.raises(ValueError, match="async_scheduling=True") as sync_under_async:
        build_scheduler(engine_config(tiny_path, trail, async_scheduling=True), TrailScheduler)
    assert ASYNC_SCHEDULER_CLS in str(sync_under_async.value)
    with pytest.raises(ValueError, match="async_scheduling=False") as async_under_sync:
        build_scheduler(engine_config(tiny_path, trail, async_scheduling=False))
    assert SCHEDULER_CLS in str(async_under_sync.value)
    assert (SCHEDULER_QUALNAME, ASYNC_SCHEDULER_QUALNAME) == (SCHEDULER_CLS, ASYNC_SCHEDULER_CLS)
    build_scheduler(engine_config(tiny_path, trail, async_scheduling=False), TrailScheduler)


def test_pipeline_parallelism_is_refused(tiny_path: Path) -> None:
    config = engine_config(tiny_path, oracle(C))
    config.parallel_config.pipeline_parallel_size = 2
    with pytest.raises(ValueError, match="pipeline_parallel_size=2.*not relayed"):
        build_scheduler(config)


def test_model_runner_v2_is_refused(tiny_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = engine_config(tiny_path, oracle(C))
    check_engine_supported(config, is_async=True)
    # a property of VllmConfig (VLLM_USE_V2_MODEL_RUNNER, which vLLM may cache per process)
    monkeypatch.setattr(VllmConfig, "use_v2_model_runner", property(lambda self: True))
    with pytest.raises(RuntimeError, match="VLLM_USE_V2_MODEL_RUNNER=0"):
        build_scheduler(config)


def test_the_check_imports_nothing_heavy() -> None:
    """Callers run it before starting an engine: importing it must not pull in vLLM or torch."""
    code = (
        "import sys, trail.engine.scheduler_hooks\n"
        "heavy = [m for m in sys.modules if m.split('.')[0] in ('vllm', 'torch')]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=Path(__file__).parents[2])
