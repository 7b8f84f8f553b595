"""One in-process Ray (loopback only) + the Serve app with two tiny-model replicas, shared by
every module of tests/serve (package scope: one start-up, about a minute on 2 cores).

The app writes predictions to a test-owned real Redis (so tests can stop and restart it on the
same port) and its metrics to a temp PROMETHEUS_MULTIPROC_DIR (so a test Prometheus sees only
this app). Tests that change state put it back (Redis up, engines idle).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.known_probe import write_known_probe
from tests.support.serve import apply_ray_env, tiny_args
from trail.serve.localcluster import free_port
from trail.store.testing import RedisServer


@dataclass
class ServeStack:
    url: str
    load_dir: Path
    redis: RedisServer
    metrics_dir: Path

    @property
    def port(self) -> int:
        return int(self.url.rsplit(":", 1)[1])


@pytest.fixture(scope="package")
def serve_app(tiny_path) -> Iterator[ServeStack]:  # noqa: ARG001 - the model must exist
    """A running app; everything is shut down afterwards."""
    apply_ray_env()
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
    port = free_port()
    ray.init(
        address="local",
        _node_ip_address="127.0.0.1",
        include_dashboard=False,
        num_cpus=2,
        log_to_driver=False,
    )
    try:
        serve.start(http_options={"host": "127.0.0.1", "port": port})
        # the known probe runs beside the oracle ordering, so records and probe metrics fill in
        probe = write_known_probe(root / "probe")
        trail = {"policy": "trail-oracle", "probe_path": str(probe), "capture": True}
        args = tiny_args(load_dir, redis_url=redis.url)
        args["engine"]["trail"] = trail
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
