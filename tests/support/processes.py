"""Stopping a server process the tests started: politely first, then for sure."""

from __future__ import annotations

import contextlib
import subprocess
import time
from collections.abc import Callable


def stop_process(proc: subprocess.Popen, grace_s: float) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def wait_ready(
    proc: subprocess.Popen,
    name: str,
    ready: Callable[[], bool],
    timeout_s: float,
    poll_s: float,
    not_yet: tuple[type[Exception], ...],
) -> None:
    """Until `ready()` holds (its `not_yet` errors mean "still starting"); a clear error if the
    server exits first or is not ready in time."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with {proc.returncode}")
        with contextlib.suppress(*not_yet):
            if ready():
                return
        time.sleep(poll_s)
    raise TimeoutError(f"{name} was not ready within {timeout_s:g} s")
