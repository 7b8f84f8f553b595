"""Serve tests' helpers: loopback-only Ray settings, app configs for the tiny model, waiting."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.support.redis_server import RedisServer
from trail.policy.replica_stats import ReplicaStats
from trail.serve.localcluster import RAY_ENV, start_loopback_serve


def apply_ray_env() -> None:
    os.environ.update(RAY_ENV)


def tiny_args(load_dir: Path, **over: Any) -> dict[str, Any]:
    """A two-replica tiny-model app: the smallest real engines (1 GiB KV, eager)."""
    args: dict[str, Any] = {
        "served_model_name": "tiny",
        "openai_args": ["--enable-auto-tool-choice", "--tool-call-parser", "pythonic"],
        "engine": {
            "model": "tiny",
            "dtype": "float32",
            "max_model_len": 512,
            "max_num_seqs": 4,
            "kv_cache_gib": 1,
            "enforce_eager": True,
            "trail": {"policy": "trail-oracle"},
        },
        "replicas": {
            "num_replicas": 2,
            "num_cpus": 0.25,
            "max_ongoing_requests": 16,
            "env": {"VLLM_CPU_OMP_THREADS_BIND": "nobind"},
        },
        "router": {"kind": "trail", "stats_period_s": 0.2},
        "ingress": {"num_cpus": 0.1, "max_inflight": 12, "retry_after_s": 2},
        "load_dir": str(load_dir),
    }
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(args.get(key), dict):
            args[key] = {**args[key], **value}
        else:
            args[key] = value
    return args


def replica_stats(load_dir: Path) -> dict[str, ReplicaStats]:
    """Each replica's last record_routing_stats, as it wrote it next to its EngineLoad, parsed
    as the router parses it (what a live replica publishes must parse: a refusal raises)."""
    out = {}
    for path in load_dir.glob("*.replica.json"):
        try:
            raw = json.loads(path.read_text())
        except ValueError:
            continue
        stats = ReplicaStats.from_dict(raw)
        out[stats.replica] = stats
    return out


def wait_for(predicate, timeout_s: float, interval_s: float = 0.1) -> bool:  # noqa: ANN001
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def chat(text: str = "hi", **over: Any) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": text}], **over}


def wait_idle(load_dir: Path, timeout_s: float = 60) -> dict[str, ReplicaStats]:
    """Both live replicas report nothing in flight (recently): the app is quiet. A replica
    Serve replaced leaves its last stats file behind; only fresh files count."""

    def idle() -> bool:
        live = [s for s in replica_stats(load_dir).values() if time.time() - s.ts < 2]
        return len(live) == 2 and all(s.inflight == 0 and s.engine_unfinished == 0 for s in live)

    assert wait_for(idle, timeout_s), replica_stats(load_dir)
    return replica_stats(load_dir)


@dataclass
class ServeStack:
    url: str
    load_dir: Path
    redis: RedisServer
    metrics_dir: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@contextmanager
def running_app(customise: Callable[[dict, Path], None], **over: Any) -> Iterator[ServeStack]:
    """One in-process Ray (loopback only) + the tiny-model app (`tiny_args(**over)`, then
    `customise(args, root)`), predictions in a test-owned real Redis, metrics in a temp
    PROMETHEUS_MULTIPROC_DIR; everything is shut down afterwards."""
    apply_ray_env()  # before Ray is imported
    import ray
    from ray import serve

    from trail.serve.app import build_app

    root = Path(tempfile.mkdtemp(prefix="trail-serve-test-"))
    load_dir, metrics_dir = root / "load", root / "metrics"
    load_dir.mkdir()
    metrics_dir.mkdir()
    saved_metrics_env = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(metrics_dir)  # read by build_app's worker_env
    redis = RedisServer().start()
    port = start_loopback_serve()
    try:
        args = tiny_args(load_dir, redis_url=redis.url, **over)
        customise(args, root)
        serve.run(build_app(args), name="trail", route_prefix="/")
        yield ServeStack(f"http://127.0.0.1:{port}", load_dir, redis, metrics_dir)
    finally:
        serve.shutdown()
        ray.shutdown()
        redis.close()
        if saved_metrics_env is None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
        else:
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = saved_metrics_env
        shutil.rmtree(root, ignore_errors=True)
