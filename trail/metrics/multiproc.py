"""prometheus-client multiprocess mode: one metrics directory per node, shared by all processes.

The TRAIL scheduler runs in vLLM's EngineCore child process, replicas and the router in Ray actor
processes. Each process writes its samples to mmap files in ``PROMETHEUS_MULTIPROC_DIR``; one
per-node exporter merges them (``MultiProcessCollector``). prometheus-client picks its value class
when it is first imported, so :func:`enable_multiprocess` also repairs a process that imported it
before the variable was set (vLLM and Ray import it early).
"""

from __future__ import annotations

import atexit
import contextlib
import glob
import os
import re
from pathlib import Path

from prometheus_client import multiprocess, values

ENV_VAR = "PROMETHEUS_MULTIPROC_DIR"
DEFAULT_DIR = "/tmp/trail-metrics"
_LIVE_FILE = re.compile(r"^gauge_live\w+?_(\d+)\.db$")
_exit_hooks: set[str] = set()


def multiproc_dir() -> Path:
    """The node's metrics directory: ``$PROMETHEUS_MULTIPROC_DIR`` or the documented default."""
    return Path(os.environ.get(ENV_VAR) or DEFAULT_DIR)


def enable_multiprocess(path: str | os.PathLike[str] | None = None) -> Path:
    """Point this process (and its future children) at the shared directory, creating it.

    Must run before the first metric object is constructed in this process; child processes
    inherit the environment variable and so write to the same directory.
    """
    target = Path(path) if path is not None else multiproc_dir()
    target.mkdir(parents=True, exist_ok=True)
    os.environ[ENV_VAR] = str(target)
    if not getattr(values.ValueClass, "_multiprocess", False):
        values.ValueClass = values.MultiProcessValue()
    if str(target) not in _exit_hooks:
        _exit_hooks.add(str(target))
        atexit.register(_mark_self_dead, target)
    return target


def _mark_self_dead(path: Path) -> None:
    """At a clean exit, stop this process's live gauges from counting (pid read at exit)."""
    with contextlib.suppress(OSError):
        mark_process_dead(os.getpid(), path)


def mark_process_dead(pid: int, path: str | os.PathLike[str] | None = None) -> None:
    """Drop a dead process's ``live*`` gauge files so its gauges stop counting.

    Counters and histograms of dead processes are kept on purpose: totals stay monotonic.
    """
    multiprocess.mark_process_dead(pid, str(path) if path is not None else str(multiproc_dir()))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def sweep_dead_processes(path: str | os.PathLike[str] | None = None) -> list[int]:
    """Mark every process whose live-gauge file outlived it (e.g. SIGKILLed) as dead.

    PIDs are node-local, which is why the exporter is per node.
    """
    root = Path(path) if path is not None else multiproc_dir()
    dead: set[int] = set()
    for name in os.listdir(root) if root.is_dir() else []:
        match = _LIVE_FILE.match(name)
        if match and not _pid_alive(int(match.group(1))):
            dead.add(int(match.group(1)))
    for pid in sorted(dead):
        mark_process_dead(pid, root)
    return sorted(dead)


def reset_multiproc_dir(path: str | os.PathLike[str] | None = None) -> int:
    """Delete all ``*.db`` files; only safe before any metric-writing process starts on the node.

    Without it, counters from a previous run would carry over (prometheus-client's documented
    requirement: wipe the directory between runs).
    """
    root = Path(path) if path is not None else multiproc_dir()
    removed = 0
    for file in glob.glob(str(root / "*.db")):
        with contextlib.suppress(FileNotFoundError):
            os.remove(file)
            removed += 1
    return removed
