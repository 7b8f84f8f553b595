"""TRAIL Prometheus metrics (prometheus-client multiprocess mode, one directory per node).

Importing this package points the process at ``$PROMETHEUS_MULTIPROC_DIR`` (default
``/tmp/trail-metrics``); child processes inherit it. See docs/observability.md.
"""

from trail.metrics import definitions
from trail.metrics.definitions import *  # noqa: F403
from trail.metrics.exporter import (
    DEFAULT_PORT,
    merged_registry,
    metrics_asgi_app,
    render_latest,
    start_exporter,
)
from trail.metrics.multiproc import (
    enable_multiprocess,
    mark_process_dead,
    multiproc_dir,
    reset_multiproc_dir,
    sweep_dead_processes,
)
from trail.metrics.recorders import ReplicaMetrics, router_decision, router_ledger, router_view

__all__ = [
    *definitions.__all__,
    "DEFAULT_PORT",
    "ReplicaMetrics",
    "enable_multiprocess",
    "mark_process_dead",
    "merged_registry",
    "metrics_asgi_app",
    "multiproc_dir",
    "render_latest",
    "reset_multiproc_dir",
    "router_decision",
    "router_ledger",
    "router_view",
    "start_exporter",
    "sweep_dead_processes",
]
