"""One in-process Ray (loopback only) + the Serve app with two tiny-model replicas per module."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.serve.helpers import apply_ray_env, free_port, tiny_args


@pytest.fixture(scope="module")
def serve_app(tiny_path):
    """(base_url, load_dir) of a running app; everything is shut down afterwards."""
    apply_ray_env()
    import ray
    from ray import serve

    from trail.serve.app import build_app

    load_dir = Path(tempfile.mkdtemp(prefix="trail-serve-test-"))
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
        serve.run(build_app(tiny_args(load_dir)), name="trail", route_prefix="/")
        yield f"http://127.0.0.1:{port}", load_dir
    finally:
        serve.shutdown()
        ray.shutdown()
        shutil.rmtree(load_dir, ignore_errors=True)
