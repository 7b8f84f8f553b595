"""The TRAIL scheduler composes with vLLM's async scheduler (the GPU default) and the engine
config picks the class that matches the scheduling mode. CPU vLLM never runs async scheduling,
so this checks the composition; docs/scheduling.md lists what a GPU run must confirm."""

from __future__ import annotations

from vllm.v1.core.sched.async_scheduler import AsyncScheduler
from vllm.v1.core.sched.scheduler import Scheduler

from trail.engine.engine_config import ASYNC_SCHEDULER_CLS, SCHEDULER_CLS, EngineConfig
from trail.engine.scheduler import TrailAsyncScheduler, TrailScheduler, TrailSchedulerMixin
from trail.engine.step_timing import step_shape
from trail.engine.trail_config import TrailConfig


def test_both_classes_put_trail_before_vllm_in_the_mro() -> None:
    assert issubclass(TrailAsyncScheduler, AsyncScheduler)
    assert not issubclass(TrailScheduler, AsyncScheduler) and issubclass(TrailScheduler, Scheduler)
    for cls, base in ((TrailScheduler, Scheduler), (TrailAsyncScheduler, AsyncScheduler)):
        mro = cls.__mro__
        assert mro.index(TrailSchedulerMixin) < mro.index(base)
        for hook in ("schedule", "update_from_output", "add_request", "_free_request"):
            assert getattr(cls, hook) is getattr(TrailSchedulerMixin, hook), hook


def test_engine_config_picks_the_matching_class() -> None:
    trail = TrailConfig(policy="fcfs")
    sync = EngineConfig(trail=trail, async_scheduling=False).engine_kwargs()
    assert sync["scheduler_cls"] == SCHEDULER_CLS and sync["async_scheduling"] is False
    on = EngineConfig(trail=trail, async_scheduling=True).engine_kwargs()
    assert on["scheduler_cls"] == ASYNC_SCHEDULER_CLS
    # None follows the platform: this CPU build of vLLM never schedules asynchronously
    assert EngineConfig(trail=trail).engine_kwargs()["scheduler_cls"] == SCHEDULER_CLS
    assert EngineConfig().engine_kwargs()["enable_prefix_caching"] is True


def test_step_shape_counts_prefill_tokens_and_decoding_sequences() -> None:
    assert step_shape({"a": 1, "b": 1, "c": 300, "d": 17}) == (317, 2)
