"""The per-node exporter: merges every process's metric files into one Prometheus exposition.

Used three ways: ``trail metrics serve`` (a standalone HTTP server, port 9400 by convention),
:func:`metrics_asgi_app` (mounted by the Serve router at ``/metrics``), and :func:`render_latest`.
Each collection first sweeps live gauges of processes that died without cleaning up.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, make_asgi_app
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from trail.metrics.multiproc import multiproc_dir, sweep_dead_processes

DEFAULT_PORT = 9400
DEFAULT_HOST = "127.0.0.1"


class _SweepingCollector(Collector):
    """MultiProcessCollector that first forgets live gauges of dead processes."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._inner = MultiProcessCollector(None, path=str(path))

    def collect(self) -> Iterable[Any]:
        sweep_dead_processes(self._path)
        return self._inner.collect()


def merged_registry(path: str | os.PathLike[str] | None = None) -> CollectorRegistry:
    """A fresh registry whose only collector reads the node's multiprocess directory."""
    root = Path(path) if path is not None else multiproc_dir()
    root.mkdir(parents=True, exist_ok=True)
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_SweepingCollector(root))
    return registry


def render_latest(path: str | os.PathLike[str] | None = None) -> tuple[bytes, str]:
    """(body, content type) of the merged exposition, for any HTTP framework."""
    return generate_latest(merged_registry(path)), CONTENT_TYPE_LATEST


def metrics_asgi_app(path: str | os.PathLike[str] | None = None) -> Any:
    """An ASGI app serving the merged exposition (mount it at ``/metrics``)."""
    return make_asgi_app(registry=merged_registry(path))


def start_exporter(
    port: int = DEFAULT_PORT,
    host: str = DEFAULT_HOST,
    path: str | os.PathLike[str] | None = None,
) -> tuple[Any, threading.Thread]:
    """Serve the merged exposition on ``http://host:port/metrics`` from a daemon thread.

    Returns prometheus-client's (server, thread); call ``server.shutdown()`` to stop.
    """
    from prometheus_client import start_http_server

    return start_http_server(port, addr=host, registry=merged_registry(path))
