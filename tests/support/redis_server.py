"""A throwaway real redis-server for tests: loopback, free port, no persistence, temp dir.

Used by tests/store and reusable by the end-to-end tests (stop/start it on the same port to
check that the app resumes writing without a restart).
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import redis

from tests.support.processes import stop_process, wait_ready
from trail.serve.localcluster import free_port


def redis_server_binary() -> str | None:
    return shutil.which("redis-server") or (
        "/usr/bin/redis-server" if Path("/usr/bin/redis-server").exists() else None
    )


class RedisServer:
    """One redis-server process we own by pid; ``stop``/``start`` keep the same port."""

    def __init__(
        self,
        port: int | None = None,
        binary: str | None = None,
        password: str | None = None,
        config: dict[str, str] | None = None,
    ) -> None:
        found = binary or redis_server_binary()
        if found is None:
            raise FileNotFoundError("redis-server not installed")
        self.binary: str = found
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="trail-redis-")
        self.proc: subprocess.Popen[bytes] | None = None
        self.password = password
        self.config = dict(config or {})  # more redis.conf settings, e.g. maxmemory

    @property
    def url(self) -> str:
        auth = f":{self.password}@" if self.password else ""
        return f"redis://{auth}127.0.0.1:{self.port}/0"

    def client(self) -> redis.Redis:
        return redis.Redis.from_url(self.url, socket_timeout=5.0)

    def start(self, timeout_s: float = 10.0) -> RedisServer:
        args = [self.binary, "--bind", "127.0.0.1", "--port", str(self.port), "--save", ""]
        args += ["--appendonly", "no", "--dir", self.dir, "--daemonize", "no"]
        args += ["--protected-mode", "yes", "--loglevel", "warning"]
        if self.password:
            args += ["--requirepass", self.password]
        for key, value in self.config.items():
            args += [f"--{key}", value]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.proc is not None
        ready = lambda: bool(  # noqa: E731
            redis.Redis(port=self.port, password=self.password, socket_timeout=0.5).ping()
        )
        wait_ready(self.proc, "redis-server", ready, timeout_s, 0.02, (redis.RedisError,))

    def pause(self) -> None:
        """SIGSTOP: the port still accepts connections but nothing answers (a 'slow' Redis)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGCONT)
        stop_process(self.proc, grace_s=5)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def redis_server(port: int | None = None) -> Iterator[RedisServer]:
    server = RedisServer(port).start()
    try:
        yield server
    finally:
        server.close()
