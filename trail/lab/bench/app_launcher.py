"""Start Ray (loopback) once, then deploy one app configuration after another.

`trail bench replay --http` needs a fresh engine per (policy, c, router, replicas): the policy lives
in the engine's scheduler, so changing it means new replicas. The old app is deleted first, so
two sets of engines never compete for the two cores.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from pathlib import Path
from typing import Any

from trail.serve.localcluster import start_loopback_serve

APP_NAME = "trail"


def app_args(
    policy: str,
    router: str = "trail",
    replicas: int = 1,
    c: float | None = None,
    model: str = "smollm2",
    max_num_seqs: int = 4,
    max_model_len: int = 2048,
    served_model_name: str = "smollm2",
) -> dict[str, Any]:
    """A ServeConfig (as YAML `args`) for one benchmark setting; queues are unbounded enough
    that an open-loop run is never answered 429."""
    trail: dict[str, Any] = {"policy": policy}
    if c is not None:
        trail["c"] = c
    return {
        "served_model_name": served_model_name,
        "engine": {
            "model": model,
            "dtype": "float32",
            "max_model_len": max_model_len,
            "max_num_seqs": max_num_seqs,
            "kv_cache_gib": 1,
            "enforce_eager": True,
            "trail": trail,
        },
        "replicas": {
            "num_replicas": replicas,
            "num_cpus": 0.5,
            "max_ongoing_requests": 256,
            "max_queued_requests": -1,
            "env": {"VLLM_CPU_OMP_THREADS_BIND": "nobind"},
        },
        "router": {"kind": router, "stats_period_s": 0.2},
        "ingress": {"num_cpus": 0.25, "max_inflight": 1024},
    }


class AppLauncher:
    """Ray + Serve on 127.0.0.1 for the lifetime of a benchmark (a context manager)."""

    def __init__(self, num_cpus: int = 2) -> None:
        self.num_cpus = num_cpus
        self.port = 0
        self.workdir = Path(tempfile.mkdtemp(prefix="trail-bench-"))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> AppLauncher:
        self.port = start_loopback_serve(self.num_cpus)
        return self

    def deploy(self, args: dict[str, Any]) -> float:
        """Replace the running app with `args`; returns seconds until it serves."""
        from ray import serve

        from trail.serve.app import build_app

        t0 = time.perf_counter()
        with contextlib.suppress(Exception):  # nothing deployed yet
            serve.delete(APP_NAME)
        load_dir = self.workdir / f"load-{int(t0 * 1000)}"
        args = {"load_dir": str(load_dir), **args}  # a caller's own load_dir wins
        serve.run(build_app(args), name=APP_NAME, route_prefix="/")
        return time.perf_counter() - t0

    def __exit__(self, *exc: object) -> None:
        import shutil

        import ray
        from ray import serve

        try:
            serve.shutdown()
        finally:
            ray.shutdown()
            shutil.rmtree(self.workdir, ignore_errors=True)
