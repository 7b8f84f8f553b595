"""`trail metrics ...`: the per-node exporter of TRAIL (and vLLM) metrics."""

from __future__ import annotations

import signal
import threading
from typing import Annotated

import typer

from trail.metrics.exporter import DEFAULT_HOST, DEFAULT_PORT, start_exporter
from trail.metrics.multiproc import multiproc_dir, reset_multiproc_dir

app = typer.Typer(help="Prometheus metrics: per-node exporter (multiprocess mode).")

PathOption = Annotated[
    str | None,
    typer.Option(help="Metrics dir (default: $PROMETHEUS_MULTIPROC_DIR or /tmp/trail-metrics)."),
]


@app.command("serve")
def serve(
    port: Annotated[int, typer.Option(help="Listen port (9400 by convention).")] = DEFAULT_PORT,
    host: Annotated[
        str, typer.Option(help="Bind address; the node IP in a cluster.")
    ] = DEFAULT_HOST,
    path: PathOption = None,
    reset: Annotated[
        bool, typer.Option(help="Wipe old *.db files first (only before any writer starts).")
    ] = False,
) -> None:
    """Serve the merged metrics of every process on this node at /metrics until interrupted."""
    root = path or str(multiproc_dir())
    if reset:
        typer.echo(f"removed {reset_multiproc_dir(root)} old metric files from {root}", err=True)
    server, _ = start_exporter(port=port, host=host, path=root)
    typer.echo(f"serving {root} on http://{host}:{port}/metrics", err=True)
    stop = threading.Event()
    # explicit handlers: a parent that ignores SIGINT (Ray and vLLM processes do) passes SIG_IGN
    # on through exec, and Python then never raises KeyboardInterrupt
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        server.shutdown()


@app.command("reset")
def reset_cmd(path: PathOption = None) -> None:
    """Delete old metric files (run at node start, before the serving processes)."""
    root = path or str(multiproc_dir())
    typer.echo(f"removed {reset_multiproc_dir(root)} files from {root}")


if __name__ == "__main__":
    app()
