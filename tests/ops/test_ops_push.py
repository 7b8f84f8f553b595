"""`trail dashboards push` round-trips through grafana-client against a local HTTP stand-in.

No Grafana server can be installed on this machine, so tests/ops/grafana_standin.py implements
the endpoints grafana-client calls (see its docstring).
"""

from __future__ import annotations

import typer
from grafana_standin import GrafanaStandIn
from typer.testing import CliRunner

from ops.grafana.render import DATASOURCE_UID, rendered_dashboards
from trail.cli.dashboards import app as dashboards_app

root = typer.Typer()
root.add_typer(dashboards_app, name="dashboards")
runner = CliRunner()


def test_push_uploads_every_dashboard_and_reads_it_back():
    with GrafanaStandIn(token="s3cret") as grafana:
        args = [
            "dashboards",
            "push",
            "--url",
            grafana.url,
            "--token",
            "s3cret",
            "--prometheus-url",
            "http://127.0.0.1:19090",
        ]
        result = runner.invoke(root, args, terminal_width=200)
        assert result.exit_code == 0, result.output
        assert result.output.count("ok") == 2
        stored = {uid: s["dashboard"] for uid, s in grafana.state.dashboards.items()}
        for board in rendered_dashboards().values():
            got = {k: v for k, v in stored[board["uid"]].items() if k not in ("id", "version")}
            assert got == board
        assert grafana.state.folders["trail"]["title"] == "TRAIL"
        assert grafana.state.datasources[DATASOURCE_UID]["url"] == "http://127.0.0.1:19090"

        again = runner.invoke(root, args, terminal_width=200)  # idempotent: overwrite, version 2
        assert again.exit_code == 0, again.output
        assert {s["dashboard"]["version"] for s in grafana.state.dashboards.values()} == {2}
        assert ("PUT", f"/api/datasources/uid/{DATASOURCE_UID}") in grafana.state.requests


def test_push_with_a_wrong_token_fails():
    with GrafanaStandIn(token="right") as grafana:
        result = runner.invoke(
            root, ["dashboards", "push", "--url", grafana.url, "--token", "wrong"]
        )
        assert result.exit_code != 0
        assert grafana.state.dashboards == {}
