"""Every PromQL expression of every dashboard panel, and checks of them against a Prometheus.

``invalid_expressions`` (parse/evaluate errors) needs only a running Prometheus;
``expressions_without_series`` needs the real app being scraped (end-to-end tests).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from ops.grafana.render import rendered_dashboards

# Grafana template variables -> values Prometheus accepts as-is.
GRAFANA_VARIABLES = {
    "$__rate_interval": "1m",
    "$__interval": "15s",
    "$replica": ".*",
    "$router": ".*",
}


@dataclass(frozen=True)
class PanelQuery:
    dashboard: str
    panel: str
    ref_id: str
    expr: str


def _panels(panels: list[dict[str, Any]]) -> list[dict[str, Any]]:
    flat = []
    for panel in panels:
        flat.append(panel)
        flat.extend(_panels(panel.get("panels", [])))  # collapsed rows nest their panels
    return flat


def panel_queries(dashboards: dict[str, dict[str, Any]] | None = None) -> list[PanelQuery]:
    """(dashboard uid, panel title, refId, expr) of every Prometheus target of every panel."""
    boards = dashboards if dashboards is not None else rendered_dashboards()
    queries = []
    for board in boards.values():
        for panel in _panels(board.get("panels", [])):
            for target in panel.get("targets", []):
                if "expr" in target:
                    queries.append(
                        PanelQuery(board["uid"], panel["title"], target["refId"], target["expr"])
                    )
    return queries


def all_promql() -> list[str]:
    """Unique PromQL expressions used by the dashboards, in panel order."""
    return list(dict.fromkeys(q.expr for q in panel_queries()))


def for_prometheus(expr: str) -> str:
    """Substitute Grafana's template variables so Prometheus can run the expression."""
    for variable in sorted(GRAFANA_VARIABLES, key=len, reverse=True):
        expr = expr.replace(variable, GRAFANA_VARIABLES[variable])
    return expr


def query(prom_url: str, expr: str, client: httpx.Client) -> dict[str, Any]:
    response = client.get(f"{prom_url.rstrip('/')}/api/v1/query", params={"query": expr})
    return dict(response.json())


def invalid_expressions(prom_url: str) -> list[tuple[PanelQuery, str]]:
    """Panel queries Prometheus rejects, with its error message."""
    bad = []
    with httpx.Client(timeout=10.0) as client:
        for q in panel_queries():
            reply = query(prom_url, for_prometheus(q.expr), client)
            if reply.get("status") != "success":
                bad.append((q, str(reply.get("error"))))
    return bad


def expressions_without_series(prom_url: str) -> list[PanelQuery]:
    """Panel queries that run but return no series (metric never emitted or never scraped)."""
    empty = []
    with httpx.Client(timeout=10.0) as client:
        for q in panel_queries():
            reply = query(prom_url, for_prometheus(q.expr), client)
            if reply.get("status") != "success" or not reply["data"]["result"]:
                empty.append(q)
    return empty
