"""Where the embedded Redis lives when the config gives no `redis_url`.

`serve run CONFIG.yaml` calls the app builder inside a short-lived Ray task: a redis-server
started there would be stopped whenever that worker exits. A detached actor owns it instead, so
the store lives as long as the Ray cluster (single node only; clusters need a real Redis URL).
"""

from __future__ import annotations

import os
import subprocess
import sys

import ray

ACTOR_NAME = "trail-embedded-redis"
NAMESPACE = "trail"


WATCHDOG = """
import os, signal, sys, time
if os.fork():  # detach (Ray kills its workers' direct children when they exit)
    sys.exit(0)
os.setsid()
owner, child = int(sys.argv[1]), int(sys.argv[2])
def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
while alive(owner) and alive(child):
    time.sleep(0.5)
if alive(child):
    os.kill(child, signal.SIGTERM)
"""


def stop_with_owner(owner_pid: int, child_pid: int) -> None:
    """Ray ends actors with SIGKILL (no atexit): a tiny watchdog stops Redis after its owner."""
    subprocess.run(
        [sys.executable, "-c", WATCHDOG, str(owner_pid), str(child_pid)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
    )


@ray.remote(num_cpus=0)
class EmbeddedRedisHost:
    def __init__(self) -> None:
        from trail.store import ensure_redis
        from trail.store.embedded import embedded_redis_pid

        self._url = ensure_redis(None)
        pid = embedded_redis_pid()
        if pid:
            stop_with_owner(os.getpid(), pid)

    def url(self) -> str:
        return self._url


def resolve_redis_url(url: str | None) -> str:
    """The configured URL, or one embedded Redis per Ray cluster (or per process without Ray)."""
    from trail.store import ensure_redis

    if url is not None or not ray.is_initialized():
        return ensure_redis(url)
    host = EmbeddedRedisHost.options(
        name=ACTOR_NAME, namespace=NAMESPACE, lifetime="detached", get_if_exists=True
    ).remote()
    return ray.get(host.url.remote(), timeout=60)
