"""Engine settings as one pydantic model; the Serve YAML and the CLI both build it."""

from __future__ import annotations

import os
from typing import Any, Literal

from pydantic import BaseModel, Field

from trail.engine.overrides import TrailOverrides
from trail.engine.scheduler_hooks import check_single_pipeline_stage
from trail.engine.trail_config import TrailConfig
from trail.models.paths import smollm2_dir

SCHEDULER_CLS = "trail.engine.scheduler.TrailScheduler"
ASYNC_SCHEDULER_CLS = "trail.engine.scheduler.TrailAsyncScheduler"


V2_RUNNER_ENV = "VLLM_USE_V2_MODEL_RUNNER"


def force_v1_runner() -> None:
    """TRAIL hooks vLLM's V1 GPUModelRunner; vLLM picks Model Runner V2 on GPUs with Triton
    unless told otherwise. Called wherever an engine with TRAIL starts (serve, CLI, profile),
    before vLLM reads its environment; an explicit request for V2 is refused, not overridden."""
    if os.environ.get(V2_RUNNER_ENV, "").strip().lower() in ("1", "true"):
        raise RuntimeError(
            f"{V2_RUNNER_ENV}=1 asks for vLLM's Model Runner V2, which TRAIL does not hook "
            "(its probe would silently never run): unset it or set it to 0"
        )
    os.environ[V2_RUNNER_ENV] = "0"


def scheduler_cls_for(is_async: bool) -> str:
    """TRAIL's scheduler class for vLLM's async-scheduling mode (a mismatch degrades or fails)."""
    return ASYNC_SCHEDULER_CLS if is_async else SCHEDULER_CLS


def trail_engine_args(trail: TrailConfig) -> dict[str, Any]:
    """The engine args every door gives an engine with TRAIL, the scheduler class aside (it
    follows the async mode): the settings as a callable override (out of the compile hash) and
    priority scheduling, whose KV-pressure victim the scheduler sets each step."""
    return {"scheduling_policy": "priority", "hf_overrides": TrailOverrides(trail)}


def lane_seats(trail: TrailConfig | None) -> int:
    """Sequences the ranking lane adds to vLLM's max_num_seqs: `max_num_seqs` stays the decode
    batch a user sized, and the lane's prefills come on top (trail/policy/lane.py)."""
    return 0 if trail is None else trail.policy_config().rank_lane_seqs


class EngineConfig(BaseModel):
    """What a vLLM engine needs, with CPU-friendly defaults."""

    model: str = Field(default_factory=lambda: str(smollm2_dir()))
    # fp32 by default: without AVX512-BF16 (this 2-core AVX2 CPU) bf16 matmuls run ~8x slower;
    # the weights are the same bf16 values either way
    dtype: Literal["bfloat16", "float32", "float16", "auto"] = "float32"
    max_model_len: int = 2048
    max_num_seqs: int = 32
    max_num_batched_tokens: int | None = None
    kv_cache_gib: int = Field(1, ge=1, description="VLLM_CPU_KVCACHE_SPACE (whole GiB) on CPU")
    block_size: int | None = None
    enforce_eager: bool = True
    tensor_parallel_size: int = 1
    seed: int = 0
    in_process: bool = Field(
        False, description="VLLM_ENABLE_V1_MULTIPROCESSING=0: engine core in this process"
    )
    enable_prefix_caching: bool = Field(
        True,
        description="on, as in vLLM: a preempted request's blocks stay cached, so resuming it "
        "recomputes only what was evicted; the initial probe input is the last prompt token's "
        "state, which vLLM computes even on a full cache hit",
    )
    async_scheduling: bool | None = Field(
        None,
        description="vLLM async scheduling; None: vLLM's default (on for GPUs, off on CPU), "
        "with the TRAIL scheduler class that matches it",
    )
    trail: TrailConfig | None = Field(None, description="None: stock vLLM (FCFS)")
    extra: dict[str, Any] = Field(default_factory=dict, description="more vLLM engine args")

    def apply_env(self) -> None:
        """Environment vLLM reads at start (it has no engine arg for these)."""
        os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(self.kv_cache_gib)
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0" if self.in_process else "1"
        if self.trail is not None:
            force_v1_runner()

    def uses_async(self) -> bool:
        if self.async_scheduling is not None:
            return self.async_scheduling
        from vllm.platforms import current_platform

        return not current_platform.is_cpu()  # vLLM forces it off on CPU

    def check_supported(self) -> None:
        """Refuse before start what TRAIL cannot run (the scheduler re-checks in the engine)."""
        if self.trail is None:
            return
        check_single_pipeline_stage(int(self.extra.get("pipeline_parallel_size", 1)))

    def engine_kwargs(self) -> dict[str, Any]:
        kw: dict[str, Any] = dict(
            model=self.model,
            dtype=self.dtype,
            max_model_len=self.max_model_len,
            max_num_seqs=self.max_num_seqs + lane_seats(self.trail),
            enforce_eager=self.enforce_eager,
            tensor_parallel_size=self.tensor_parallel_size,
            seed=self.seed,
        )
        kw["enable_prefix_caching"] = self.enable_prefix_caching
        if self.async_scheduling is not None:
            kw["async_scheduling"] = self.async_scheduling
        if self.trail is not None:
            # explicit, so that vLLM errors instead of quietly turning async off under a
            # scheduler class chosen for it (the TRAIL scheduler refuses a mismatch too)
            kw["async_scheduling"] = self.uses_async()
            kw["scheduler_cls"] = scheduler_cls_for(self.uses_async())
            kw.update(trail_engine_args(self.trail))
        if self.max_num_batched_tokens:
            kw["max_num_batched_tokens"] = self.max_num_batched_tokens
        if self.block_size:
            kw["block_size"] = self.block_size
        kw.update(self.extra)
        self.check_supported()
        return kw


def start_async_engine(cfg: EngineConfig) -> Any:
    """An AsyncLLM exactly as a Serve replica starts it (and `trail doctor` checks it)."""
    cfg.apply_env()  # before vLLM reads its environment
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.v1.engine.async_llm import AsyncLLM

    return AsyncLLM.from_engine_args(AsyncEngineArgs(**cfg.engine_kwargs()))
