"""Engine- and cluster-level experiments: the c sweep under KV budgets, routers vs replicas, scale."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from typing import Any

from trail.lab.sim import theory
from trail.lab.sim.cluster import simulate_cluster
from trail.lab.sim.distributions import PredictionModel, SizeDist
from trail.lab.sim.engine import SimEngineConfig
from trail.lab.sim.workload import WorkloadSpec, make_requests, mean_output_tokens
from trail.policy import get_policy

Progress = Callable[[], None] | None


def engine_capacity_rps(cfg: SimEngineConfig, spec: WorkloadSpec) -> float:
    """Requests/s one engine sustains with a full batch, from the cost model (no preemption):
    the rate that load factors are relative to."""
    return full_batch_rps(cfg, spec.prompt.mean, mean_output_tokens(spec))


def full_batch_rps(cfg: SimEngineConfig, prompt_mean: float, output_mean: float) -> float:
    """Requests/s of a full batch of requests with these mean prompt and output lengths."""
    ctx = cfg.max_num_seqs * (prompt_mean + output_mean / 2)
    step = cfg.cost.step_seconds(0, cfg.max_num_seqs, ctx)
    return 1.0 / (
        output_mean * step / cfg.max_num_seqs + cfg.cost.per_prefill_token_s * prompt_mean
    )


def sweep_c(
    spec: WorkloadSpec,
    cfg: SimEngineConfig,
    kv_budgets: Iterable[int],
    cs: Iterable[float],
    requests: int,
    policy: str = "trail",
    seed: int = 0,
    tick: Progress = None,
) -> list[dict[str, Any]]:
    """Mean and tail latency of one engine for each (KV budget, c); same requests everywhere."""
    rows = []
    for kv in kv_budgets:
        engine = SimEngineConfig(**{**cfg.__dict__, "kv_tokens": int(kv)})
        for c in cs:
            reqs = make_requests(spec, requests, seed)
            res = simulate_cluster(reqs, 1, engine, get_policy(policy, c=c), seed=seed)
            rows.append({"kv_tokens": int(kv), "c": c, **res.summary()})
            if tick:
                tick()
    return rows


def theory_vs_c(
    size: SizeDist, sigma: float, load: float, cs: Iterable[float]
) -> list[dict[str, Any]]:
    """M/G/1 mean response time (in tokens of work) of SPRPT-LP for each c: no memory limits."""
    cloud = theory.Cloud.build(size, PredictionModel(sigma))
    lam = load / size.mean
    return [{"c": c, "mean_response": theory.sprpt_lp_mean_response(cloud, lam, c)} for c in cs]


def compare_routers(
    spec_per_engine: WorkloadSpec,
    cfg: SimEngineConfig,
    replicas: Iterable[int],
    routers: Iterable[str],
    requests_per_engine: int,
    policy: str = "trail",
    seed: int = 0,
    tick: Progress = None,
    ingress: int = 1,
    stats_period_s: float = 0.0,
) -> list[dict[str, Any]]:
    """Same per-engine load and requests per engine at every cluster size."""
    rows = []
    for n in replicas:
        spec = WorkloadSpec(**{**spec_per_engine.__dict__, "rate": spec_per_engine.rate * n})
        count = requests_per_engine * n  # equal run length per engine: equal warm-up bias
        for router in routers:
            reqs = make_requests(spec, count, seed)
            started = time.perf_counter()
            res = simulate_cluster(
                reqs,
                n,
                cfg,
                get_policy(policy),
                router=router,
                seed=seed,
                ingress=ingress,
                stats_period_s=stats_period_s,
            )
            wall = time.perf_counter() - started
            rows.append(
                {
                    "replicas": n,
                    "router": router,
                    "ingress": ingress,
                    "stats_period_s": stats_period_s,
                    "wall_s": wall,
                    **res.summary(),
                }
            )
            if tick:
                tick()
    return rows


def scale_run(
    spec: WorkloadSpec,
    cfg: SimEngineConfig,
    engines: int,
    requests: int,
    router: str,
    policy: str = "trail",
) -> dict[str, Any]:
    """Wall and CPU time to simulate `requests` on `engines` engines (request generation
    excluded); CPU time is the fairer figure on a machine shared with other jobs."""
    reqs = make_requests(spec, requests, seed=0)
    started, cpu = time.perf_counter(), time.process_time()
    res = simulate_cluster(reqs, engines, cfg, get_policy(policy), router=router)
    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
    return {
        "engines": engines,
        "requests": requests,
        "router": router,
        "wall_s": wall,
        "cpu_s": cpu,
        **res.summary(),
    }


def c_label(c: float) -> str:
    return "inf" if math.isinf(c) else f"{c:g}"
