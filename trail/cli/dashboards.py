"""`trail dashboards ...`: render, list, check and push the Grafana dashboards."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Grafana dashboards as code (grafana-foundation-sdk, Grafana 11.6).")
console = Console()


@app.command("render")
def render_cmd(
    out: Annotated[
        Path | None, typer.Option(help="Write under this dir (default: ops/grafana).")
    ] = None,
) -> None:
    """Render dashboards to JSON and write the file-provisioning YAML."""
    from ops.grafana.render import render

    for path in render(out):
        console.print(str(path))


@app.command("push")
def push_cmd(
    url: Annotated[str, typer.Option(envvar="GRAFANA_URL", help="Grafana base URL.")],
    token: Annotated[
        str | None, typer.Option(envvar="GRAFANA_TOKEN", help="Service-account token.")
    ] = None,
    folder: Annotated[str, typer.Option(help="Folder uid to push into.")] = "trail",
    prometheus_url: Annotated[
        str | None, typer.Option(help="Also create/update the Prometheus datasource.")
    ] = None,
) -> None:
    """Upload every dashboard with grafana-client and verify it reads back unchanged."""
    from grafana_client.client import GrafanaException

    from ops.grafana.push import push_all

    try:
        results = push_all(url, token, folder_uid=folder, prometheus_url=prometheus_url)
    except GrafanaException as exc:
        console.print(f"[red]push to {url} failed: {exc}[/red]")
        raise typer.Exit(1) from exc
    table = Table(title=f"pushed to {url}")
    for column in ("uid", "title", "version", "round trip"):
        table.add_column(column)
    for r in results:
        table.add_row(r.uid, r.title, str(r.version), "ok" if r.round_trip_ok else "DIFFERS")
    console.print(table)
    if not all(r.round_trip_ok for r in results):
        raise typer.Exit(1)


@app.command("queries")
def queries_cmd(
    prometheus: Annotated[
        str | None, typer.Option(help="Also run each query against this Prometheus URL.")
    ] = None,
) -> None:
    """List every panel's PromQL; with --prometheus, flag invalid and empty ones."""
    from ops.grafana.promql import expressions_without_series, invalid_expressions, panel_queries

    invalid = {q for q, _ in invalid_expressions(prometheus)} if prometheus else set()
    empty = set(expressions_without_series(prometheus)) if prometheus else set()
    for q in panel_queries():
        flag = "INVALID " if q in invalid else "EMPTY   " if q in empty else ""
        console.print(f"{flag}[bold]{q.dashboard}[/bold] / {q.panel} [{q.ref_id}]: {q.expr}")
    if invalid:
        raise typer.Exit(1)
