"""Serve settings as pydantic models, validated from the Serve YAML's application `args`.

One `ServeConfig` describes the whole application (engine, replicas, router, limits); the app
builder validates it once and hands the same object to every deployment, so the ingress and the
replicas can never disagree about, say, `max_model_len`.
"""

from __future__ import annotations

import os
from typing import Literal

from pydantic import BaseModel, Field, field_validator, model_validator

from trail.engine.engine_config import EngineConfig
from trail.models.paths import smollm2_dir, tiny_dir

MODEL_ALIASES = {"smollm2": smollm2_dir, "tiny": tiny_dir}
RouterName = Literal["trail", "pow2", "round_robin"]


def resolve_model(model: str) -> str:
    """`smollm2` / `tiny` name the prepared local models; anything else is a path or HF id."""
    factory = MODEL_ALIASES.get(model)
    return str(factory()) if factory else os.path.expanduser(model)


class ReplicaConfig(BaseModel):
    """How many LLM replicas and what each asks Ray for (one replica = one TP group)."""

    num_replicas: int = Field(1, ge=1)
    num_cpus: float = Field(0.5, ge=0, description="CPU bookkeeping only; vLLM uses what it finds")
    num_gpus: float = Field(
        0, ge=0, description="GPUs per replica: 0 on CPUs, = engine.tensor_parallel_size on GPUs"
    )
    accelerator_type: str | None = Field(None, description='e.g. "A100" to pin the GPU kind')
    placement_strategy: Literal["STRICT_PACK", "PACK", "SPREAD", "STRICT_SPREAD"] = Field(
        "STRICT_PACK", description="GPU replicas: one placement-group bundle per TP rank, so packed"
    )
    wait_for_gpus: bool = Field(
        False,
        description="GPU replicas: deploy even if the cluster has no such GPUs yet (an "
        "autoscaler adds them); otherwise the app is refused when built",
    )
    max_ongoing_requests: int = Field(64, ge=1, description="Serve: in flight per replica")
    max_queued_requests: int = Field(
        64, ge=-1, description="Serve: queued in the handle before 429 (-1: unbounded)"
    )
    env: dict[str, str] = Field(
        default_factory=dict,
        description="extra env for replica processes (Ray runtime_env), e.g. "
        "VLLM_CPU_OMP_THREADS_BIND=nobind so two CPU replicas are not both pinned to core 0",
    )


class RouterConfig(BaseModel):
    """Which Ray Serve RequestRouter picks replicas, and how fresh its stats are."""

    kind: RouterName = "trail"
    stats_period_s: float = Field(0.2, gt=0, description="record_routing_stats period")
    stats_timeout_s: float = Field(5.0, gt=0)


class IngressConfig(BaseModel):
    num_replicas: int = Field(
        1, ge=1, description="ingress replicas; each runs its own router on its own stale stats"
    )
    num_cpus: float = Field(0.25, ge=0)
    max_inflight: int = Field(
        256, ge=1, description="requests in flight in one ingress replica before it answers 429"
    )
    retry_after_s: int = Field(1, ge=0, description="Retry-After on 429/503")
    max_body_bytes: int = Field(
        1 << 20, ge=1024, description="larger request bodies get 413 before they are read"
    )
    api_key: str | None = Field(
        None, description="bearer key; also read from $TRAIL_API_KEY in the ingress"
    )


class CaptureConfig(BaseModel):
    """Opt-in capture of served traffic, to retrain the probe on it (docs/online_learning.md):
    for a sampled share of requests, the probe layer's hidden state every `every` decode
    positions (worker-side, a bounded background writer) and, at finish, the true length."""

    fraction: float = Field(0.0, ge=0, le=1, description="share of requests captured; 0 = off")
    every: int = Field(4, ge=1, description="one row every N decode positions (0 = prefill)")
    dir: str | None = Field(None, description="default: ~/.cache/trail/served/<model name>")
    quota_mb: float = Field(
        2048,
        gt=0,
        description="disk quota of each worker's rows (one worker per replica at TP 1); rows "
        "past it are dropped",
    )
    queue_rows: int = Field(4096, ge=1, description="writer queue; a full queue drops rows")


class LiveConfig(BaseModel):
    """What changes without a restart: Ray Serve hands it to running replicas as `user_config`
    when a declarative deploy (`serve deploy CONFIG`) changes only this. (`serve.run` from
    Python replaces the replicas instead: use `probe_watch` there.)"""

    probe_path: str | None = Field(None, description="swap the replicas' probe (same bins)")


class ServeConfig(BaseModel):
    """The application: engine + TRAIL settings, replicas, router, ingress, observability."""

    served_model_name: str = Field("smollm2", description="the `model` clients must send")
    openai_args: list[str] = Field(
        default_factory=list,
        description="extra `vllm serve` flags for vLLM's OpenAI layer in each replica, e.g. "
        '["--enable-auto-tool-choice", "--tool-call-parser", "hermes"] or ["--chat-template", '
        "PATH]",
    )
    engine: EngineConfig = Field(default_factory=EngineConfig)
    replicas: ReplicaConfig = Field(default_factory=ReplicaConfig)
    router: RouterConfig = Field(default_factory=RouterConfig)
    ingress: IngressConfig = Field(default_factory=IngressConfig)
    prompt_predictor_path: str | None = Field(
        None, description="PromptPredictor dir (default: the packaged one, if present)"
    )
    default_prediction: float = Field(
        256.0, gt=0, description="predicted output tokens when no predictor is available"
    )
    redis_url: str | None = Field(None, description="None: embedded Redis started by the builder")
    load_dir: str | None = Field(None, description="where replicas' engines publish EngineLoad")
    capture: CaptureConfig = Field(default_factory=CaptureConfig)
    live: LiveConfig = Field(default_factory=LiveConfig)
    probe_watch: str | None = Field(
        None,
        description="a probe folder (or a symlink to one) every replica polls: a new probe "
        "there is swapped in without a restart; re-point the symlink to roll back",
    )
    prompt_watch: str | None = Field(
        None, description="likewise for the ingress's prompt head (same bins and encoder)"
    )
    probe_watch_s: float = Field(
        2.0, gt=0, description="how often replicas / ingress look at probe_watch / prompt_watch"
    )

    model_config = {"extra": "forbid"}

    @field_validator("engine", mode="after")
    @classmethod
    def _resolve_model(cls, engine: EngineConfig) -> EngineConfig:
        return engine.model_copy(update={"model": resolve_model(engine.model)})

    @model_validator(mode="after")
    def _gpus_match_tensor_parallel(self) -> ServeConfig:
        gpus, tp = self.replicas.num_gpus, self.engine.tensor_parallel_size
        if gpus > 0 and gpus != tp:
            raise ValueError(
                f"replicas.num_gpus={gpus:g} must equal engine.tensor_parallel_size={tp}: "
                "one GPU per TP rank, one placement-group bundle each"
            )
        return self

    @model_validator(mode="after")
    def _capture_needs_trail(self) -> ServeConfig:
        if self.capture.fraction > 0 and self.engine.trail is None:
            raise ValueError("capture needs the TRAIL engine (engine.trail set)")
        return self

    def capture_dir(self) -> str:
        return os.path.expanduser(
            self.capture.dir or f"~/.cache/trail/served/{self.served_model_name}"
        )

    @property
    def policy(self) -> str:
        return self.engine.trail.policy if self.engine.trail else "vllm-fcfs"
