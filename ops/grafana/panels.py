"""Panel helpers on top of grafana-foundation-sdk builders (one style for every TRAIL panel).

Every panel queries the dashboard's ``$datasource`` (a Prometheus datasource variable), so the
same JSON works with the provisioned datasource and with any other Prometheus in Grafana.
"""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import DataSourceRef, VariableRefresh, VariableSort

DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
RATE = "$__rate_interval"


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str = "__auto"


@dataclass(frozen=True)
class PanelSpec:
    """What one panel shows; kept declarative so dashboards read like a table of contents."""

    title: str
    description: str
    queries: tuple[Query, ...]
    unit: str = "short"
    kind: str = "timeseries"  # or "stat"
    width: int = 12
    height: int = 8
    stacked: bool = False


def _target(query: Query, ref_id: str) -> prometheus.Dataquery:
    return (
        prometheus.Dataquery()
        .expr(query.expr)
        .legend_format(query.legend)
        .ref_id(ref_id)
        .datasource(DATASOURCE)
        .range()
    )


def _timeseries(spec: PanelSpec) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .line_width(1)
        .fill_opacity(10 if not spec.stacked else 40)
        .legend(
            common_b.VizLegendOptions()
            .show_legend(True)
            .display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.BOTTOM)
            .calcs(["mean", "max", "lastNotNull"])
        )
    )
    if spec.stacked:
        panel = panel.stacking(common_b.StackingConfig().mode(common.StackingMode.NORMAL))
    return panel


def build_panel(spec: PanelSpec) -> timeseries.Panel | stat.Panel:
    panel = _timeseries(spec) if spec.kind == "timeseries" else stat.Panel()
    panel = (
        panel.title(spec.title)
        .description(spec.description)
        .datasource(DATASOURCE)
        .unit(spec.unit)
        .span(spec.width)
        .height(spec.height)
    )
    for index, query in enumerate(spec.queries):
        panel = panel.with_target(_target(query, chr(ord("A") + index)))
    return panel


def datasource_variable() -> dash_b.DatasourceVariable:
    return dash_b.DatasourceVariable("datasource").label("Prometheus").type("prometheus")


def label_variable(name: str, metric: str, label: str) -> dash_b.QueryVariable:
    """A multi-select ``$name`` over the values of ``label`` on ``metric`` (All = ``.*``)."""
    return (
        dash_b.QueryVariable(name)
        .label(label)
        .datasource(DATASOURCE)
        .query({"query": f"label_values({metric}, {label})", "refId": "PrometheusVariableQuery"})
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def build_dashboard(
    *,
    uid: str,
    title: str,
    description: str,
    rows: list[tuple[str, list[PanelSpec]]],
    variables: list[dash_b.QueryVariable],
) -> dash_b.Dashboard:
    board = (
        dash_b.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["trail", "llm-serving"])
        .refresh("10s")
        .time("now-30m", "now")
        .timezone("browser")
        .with_variable(datasource_variable())
    )
    for variable in variables:
        board = board.with_variable(variable)
    panel_id = 0
    for row_title, specs in rows:
        panel_id += 1
        board = board.with_row(dash_b.Row(row_title).id(panel_id))
        for spec in specs:
            panel_id += 1
            board = board.with_panel(build_panel(spec).id(panel_id))
    return board
