"""The Serve application builder: `serve run deployments/cpu.yaml` calls `build_app(args)`.

Ray validates `args` into ServeConfig (typed builder argument); everything else is derived here
once, so replicas receive one finished config.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any

import ray
from ray import serve
from ray.serve import Application
from ray.serve.config import RequestRouterConfig

from trail.serve.config import ServeConfig
from trail.serve.ingress import Ingress
from trail.serve.llm_server import LLMServer
from trail.serve.placement import check_cluster_has, placement_options
from trail.serve.redis_host import resolve_redis_url
from trail.serve.routers import ROUTER_CLASSES

DEFAULT_METRICS_DIR = "/tmp/trail-metrics"


def finish_config(cfg: ServeConfig) -> ServeConfig:
    """Fill what the YAML may leave open: the Redis URL and the replicas' load directory."""
    redis_url = resolve_redis_url(cfg.redis_url)
    # a fixed default: a redeploy that changes only `live` must keep the init args identical
    # (Ray Serve then reconfigures the running replicas instead of replacing them)
    load_dir = cfg.load_dir or os.path.join(tempfile.gettempdir(), "trail-load")
    return cfg.model_copy(update={"redis_url": redis_url, "load_dir": load_dir})


def worker_env() -> dict[str, str]:
    """Environment every replica needs (Ray runtime_env; no scattered env reads elsewhere)."""
    return {
        "PROMETHEUS_MULTIPROC_DIR": os.environ.get("PROMETHEUS_MULTIPROC_DIR", DEFAULT_METRICS_DIR),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "TOKENIZERS_PARALLELISM": "false",
    }


def router_config(cfg: ServeConfig) -> RequestRouterConfig:
    kwargs = {} if cfg.router.kind == "pow2" else {"router_name": cfg.router.kind}
    return RequestRouterConfig(
        request_router_class=ROUTER_CLASSES[cfg.router.kind],
        request_router_kwargs=kwargs,
        request_routing_stats_period_s=cfg.router.stats_period_s,
        request_routing_stats_timeout_s=cfg.router.stats_timeout_s,
    )


def llm_actor_options(cfg: ServeConfig) -> dict[str, Any]:
    """The replica actor: CPUs only; a GPU replica's GPUs are its placement group's bundles."""
    opts: dict[str, Any] = {
        "num_cpus": cfg.replicas.num_cpus,
        "runtime_env": {"env_vars": {**worker_env(), **cfg.replicas.env}},
    }
    return opts


def llm_placement(cfg: ServeConfig) -> dict[str, Any]:
    r = cfg.replicas
    tp = cfg.engine.tensor_parallel_size
    return placement_options(tp, r.num_gpus, r.num_cpus, r.accelerator_type, r.placement_strategy)


def with_ray_executor(cfg: ServeConfig) -> ServeConfig:
    """GPU replicas run vLLM's Ray executor: it starts one worker per GPU bundle of the
    replica's placement group (the mp executor would need the GPUs on the replica actor)."""
    if cfg.replicas.num_gpus <= 0 or "distributed_executor_backend" in cfg.engine.extra:
        return cfg
    extra = {**cfg.engine.extra, "distributed_executor_backend": "ray"}
    return cfg.model_copy(update={"engine": cfg.engine.model_copy(update={"extra": extra})})


def check_gpus(cfg: ServeConfig) -> None:
    """Refuse, when the app is built, GPU replicas this cluster cannot host."""
    placement = llm_placement(cfg)
    if not placement or cfg.replicas.wait_for_gpus or not ray.is_initialized():
        return
    check_cluster_has(
        placement["placement_group_bundles"], cfg.replicas.num_replicas, ray.cluster_resources()
    )


def build_app(args: dict[str, Any]) -> Application:
    cfg = with_ray_executor(finish_config(ServeConfig.model_validate(args)))
    check_gpus(cfg)
    payload = cfg.model_dump(mode="json", exclude={"live"})
    llm = serve.deployment(LLMServer).options(
        name="LLMServer",
        num_replicas=cfg.replicas.num_replicas,
        ray_actor_options=llm_actor_options(cfg),
        **llm_placement(cfg),
        max_ongoing_requests=cfg.replicas.max_ongoing_requests,
        max_queued_requests=cfg.replicas.max_queued_requests,
        request_router_config=router_config(cfg),
        health_check_timeout_s=60,
        user_config=cfg.live.model_dump(mode="json"),
    )
    ingress = serve.deployment(Ingress).options(
        name="Ingress",
        num_replicas=cfg.ingress.num_replicas,
        ray_actor_options={
            "num_cpus": cfg.ingress.num_cpus,
            "runtime_env": {"env_vars": worker_env()},
        },
        max_ongoing_requests=cfg.ingress.max_inflight + 16,
    )
    return ingress.bind(llm.bind(payload), payload)
