"""A real Prometheus (Debian binary, loopback, temp dir) scrapes the TRAIL exporter.

Prometheus runs ops/prometheus/prometheus.yml itself, with only the Ray discovery-file path,
the exporter port (9400 in production) and the scrape interval swapped for test values, so the
port-rewriting relabel rule is exercised too. Metrics come from a SEPARATE writer process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from metrics_writer import finish, start_writer

from ops.grafana.promql import for_prometheus, invalid_expressions, panel_queries
from tests.support.prometheus_server import PrometheusServer, free_port, prometheus_binary
from trail.metrics import start_exporter

CONFIG = Path(__file__).resolve().parents[2] / "ops" / "prometheus" / "prometheus.yml"


def prometheus_config(sd_file: Path, exporter_port: int) -> str:
    text = CONFIG.read_text(encoding="utf-8")
    text = text.replace("/tmp/ray/prom_metrics_service_discovery.json", str(sd_file))
    text = text.replace("${1}:9400", f"${{1}}:{exporter_port}")
    text = re.sub(r"scrape_interval: \d+s", "scrape_interval: 1s", text)
    return text.replace("scrape_timeout: 10s", "scrape_timeout: 1s")


@pytest.fixture(scope="module")
def stack(tmp_path_factory) -> Iterator[PrometheusServer]:
    """writer process -> metrics dir -> exporter -> Prometheus (all loopback)."""
    if prometheus_binary() is None:
        pytest.skip("prometheus binary not installed (apt-get install prometheus)")
    root = tmp_path_factory.mktemp("prom-stack")
    metrics_dir = root / "metrics"
    metrics_dir.mkdir()
    writer = start_writer(metrics_dir, "r-test", 123.0)
    server, _ = start_exporter(port=(port := free_port()), host="127.0.0.1", path=metrics_dir)
    sd_file = root / "ray_sd.json"
    # a "Ray node" on an unused port: the trail job rewrites it to the exporter's port
    sd_file.write_text(
        json.dumps([{"labels": {"job": "ray"}, "targets": [f"127.0.0.1:{free_port()}"]}])
    )
    prom = PrometheusServer(prometheus_config(sd_file, port))
    try:
        prom.start()
        yield prom
    finally:
        prom.close()
        server.shutdown()
        finish(writer)


def test_exporter_is_scraped_through_the_relabelled_discovery_file(stack):
    series = stack.wait_for_series(
        'trail_queue_requests{job="trail",replica="r-test",state="waiting"}'
    )
    assert series and float(series[0]["value"][1]) == 2.0
    remaining = stack.wait_for_series("trail_predicted_remaining_tokens")
    assert [float(s["value"][1]) for s in remaining] == [123.0]
    trail_targets = [t for t in stack.targets() if t["labels"]["job"] == "trail"]
    assert len(trail_targets) == 1 and trail_targets[0]["health"] == "up"


def test_every_dashboard_expression_parses_in_prometheus(stack):
    assert len(panel_queries()) >= 30
    assert invalid_expressions(stack.url) == []


def test_every_trail_panel_query_returns_series(stack):
    """All trail_* panels see data from the writer; vLLM panels need the real engine (later)."""
    trail_queries = [q for q in panel_queries() if "trail_" in q.expr]
    assert stack.wait_for_series("count(trail_probe_calls_total offset 2s)")  # >= 2 scrapes
    empty = [q for q in trail_queries if not stack.query(for_prometheus(q.expr))["data"]["result"]]
    assert empty == []
