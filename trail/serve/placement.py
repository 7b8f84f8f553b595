"""Where a replica's GPUs come from, following Ray Serve's conventions for tensor parallelism.

One replica = one placement group with one bundle per TP rank (`{"GPU": 1}`, plus the
accelerator hint `accelerator_type:<kind>` Ray's own GPU nodes advertise), packed on one node
(STRICT_PACK: TP all-reduces want NVLink). The replica actor itself takes only CPU from the
first bundle; vLLM's Ray executor finds the replica's placement group and starts one worker per
GPU bundle — the layout Ray Serve LLM uses. A cluster without the GPUs is refused when the app
is built (a clear DEPLOY_FAILED), not left pending forever.
"""

from __future__ import annotations

from typing import Any

ACCELERATOR_HINT = 0.001  # Ray's convention: ask for the node kind, not a share of it


def accelerator_resource(kind: str) -> str:
    return f"accelerator_type:{kind}"


def gpu_bundles(tp: int, num_cpus: float, accelerator_type: str | None) -> list[dict[str, float]]:
    """One bundle per TP rank; the first also holds the replica actor's CPUs."""
    bundle: dict[str, float] = {"GPU": 1.0}
    if accelerator_type:
        bundle[accelerator_resource(accelerator_type)] = ACCELERATOR_HINT
    bundles = [dict(bundle) for _ in range(tp)]
    bundles[0]["CPU"] = float(num_cpus)
    return bundles


def placement_options(
    tp: int, num_gpus: float, num_cpus: float, accelerator_type: str | None, strategy: str
) -> dict[str, Any]:
    """Serve deployment options for one LLM replica: CPU-only replicas need none."""
    if num_gpus <= 0:
        return {}
    return {
        "placement_group_bundles": gpu_bundles(tp, num_cpus, accelerator_type),
        "placement_group_strategy": strategy,
    }


def check_cluster_has(bundles: list[dict[str, float]], replicas: int, resources: dict) -> None:
    """Refuse a deployment no node set of this cluster can ever host (GPU count and kind)."""
    need_gpus = sum(b.get("GPU", 0) for b in bundles)
    have_gpus = resources.get("GPU", 0)
    kinds = {k for b in bundles for k in b if k.startswith("accelerator_type:")}
    missing = [k for k in kinds if resources.get(k, 0) <= 0]
    if have_gpus < need_gpus or missing:
        want = f"{need_gpus:g} GPU(s) per replica × {replicas} replica(s)"
        if kinds:
            want += f" on {', '.join(sorted(k.split(':', 1)[1] for k in kinds))} nodes"
        raise ValueError(
            f"this Ray cluster cannot host the LLM replicas: they need {want}, the cluster has "
            f"{have_gpus:g} GPU(s){' and no ' + ', '.join(sorted(missing)) if missing else ''}. "
            "Start GPU nodes (`ray up cluster.yaml`), or serve deployments/cpu.yaml on CPUs; "
            "set replicas.wait_for_gpus: true if an autoscaler will add them"
        )
