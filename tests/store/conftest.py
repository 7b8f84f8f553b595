"""Store fixtures: a real redis-server per test (Debian binary, loopback, free port, no disk)."""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator

import pytest

# Keep this test process's metric files out of the node's shared /tmp/trail-metrics.
if "PROMETHEUS_MULTIPROC_DIR" not in os.environ:
    _dir = tempfile.mkdtemp(prefix="trail-test-metrics-")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _dir
    atexit.register(shutil.rmtree, _dir, True)

from tests.support.redis_server import RedisServer, redis_server_binary  # noqa: E402


@pytest.fixture
def redis_srv() -> Iterator[RedisServer]:
    if redis_server_binary() is None:
        pytest.skip("redis-server binary not installed (apt-get install redis-server)")
    server = RedisServer().start()
    try:
        yield server
    finally:
        server.close()
