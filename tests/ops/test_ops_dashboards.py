"""Dashboards as code: committed JSON is current, valid per the SDK's Grafana 11.6 types,
and consistent with the metrics TRAIL defines."""

from __future__ import annotations

import re

import yaml
from grafana_foundation_sdk.cog.plugins import register_default_plugins
from grafana_foundation_sdk.models import prometheus, timeseries
from grafana_foundation_sdk.models.dashboard import Dashboard, Panel, RowPanel

from ops.grafana import GRAFANA_VERSION, SDK_BUILD
from ops.grafana.promql import all_promql, panel_queries
from ops.grafana.render import (
    DASHBOARD_DIR,
    PROVISIONING_DIR,
    dashboard_json,
    rendered_dashboards,
    stale_files,
)
from ops.grafana.trail_dashboards import all_dashboards
from trail.metrics import definitions

SUFFIXES = ("_total", "_bucket", "_sum", "_count")


def test_committed_files_match_the_code():
    assert stale_files() == [], "run: .venv/bin/python -m ops.grafana.render"
    assert sorted(p.stem for p in DASHBOARD_DIR.glob("*.json")) == sorted(all_dashboards())


def test_installed_sdk_is_the_pinned_grafana_build():
    from importlib.metadata import version

    assert version("grafana-foundation-sdk") == SDK_BUILD
    assert SDK_BUILD.endswith(f"!{GRAFANA_VERSION}.0")


def test_json_round_trips_through_the_sdk_models_with_typed_panels():
    register_default_plugins()  # so targets/options decode to their typed models
    for stem, data in rendered_dashboards().items():
        model = Dashboard.from_json(data)
        assert dashboard_json_from_model(model) == data, stem
        panels = [p for p in model.panels if isinstance(p, Panel)]
        assert panels and all(
            isinstance(t, prometheus.Dataquery) for p in panels for t in p.targets
        )
        assert all(
            isinstance(p.options, timeseries.Options) for p in panels if p.type_val == "timeseries"
        )
        assert any(isinstance(p, RowPanel) for p in model.panels)


def dashboard_json_from_model(model: Dashboard) -> dict:
    class _Wrap:  # dashboard_json expects a builder
        def build(self) -> Dashboard:
            return model

    return dashboard_json(_Wrap())


def test_panels_have_unique_ids_datasource_and_queries():
    for data in rendered_dashboards().values():
        ids = [p["id"] for p in data["panels"]]
        assert len(ids) == len(set(ids))
        for panel in data["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert panel["targets"], panel["title"]
            assert panel["fieldConfig"]["defaults"]["unit"]
        names = [v["name"] for v in data["templating"]["list"]]
        assert names[0] == "datasource"


def test_every_trail_metric_in_a_query_is_defined_and_every_brief_metric_is_shown():
    defined = {metric._name for metric in definitions.ALL_METRICS}
    used = set()
    for expr in all_promql():
        for name in re.findall(r"\b(trail_[a-z_]+)", expr):
            base = next((name[: -len(s)] for s in SUFFIXES if name.endswith(s)), name)
            used.add(base)
    assert used <= defined, used - defined
    shown = {
        "trail_predicted_remaining_tokens",
        "trail_queue_requests",
        "trail_preemptions",
        "trail_recomputed_tokens",
        "trail_probe_calls",
        "trail_probe_seconds",
        "trail_prediction_abs_error_tokens",
        "trail_online_kendall_tau",
        "trail_capture_rows",
        "trail_aged_requests",
        "trail_starvation_promotions",
        "trail_store_writes",
        "trail_store_dropped",
        "trail_router_decisions",
    }
    assert shown <= used, shown - used
    vllm = " ".join(all_promql())
    for name in (
        "vllm:num_requests_running",
        "vllm:e2e_request_latency_seconds_bucket",
        "vllm:time_to_first_token_seconds_bucket",
    ):
        assert name in vllm


def test_panel_queries_are_listed_per_panel():
    queries = panel_queries()
    assert {q.dashboard for q in queries} == {"trail-scheduling", "trail-vllm"}
    assert all(q.expr and q.panel and q.ref_id for q in queries)


def test_provisioning_yaml_points_at_the_dashboards_and_prometheus():
    provider = yaml.safe_load((PROVISIONING_DIR / "dashboards" / "trail.yaml").read_text())
    assert provider["providers"][0]["type"] == "file"
    assert provider["providers"][0]["options"]["path"].startswith("/")
    sources = yaml.safe_load((PROVISIONING_DIR / "datasources" / "prometheus.yaml").read_text())
    assert sources["datasources"][0]["type"] == "prometheus"
