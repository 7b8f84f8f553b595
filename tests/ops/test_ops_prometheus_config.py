"""ops/prometheus/prometheus.yml is a valid config for the Debian Prometheus (promtool)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

CONFIG = Path(__file__).resolve().parents[2] / "ops" / "prometheus" / "prometheus.yml"


def test_promtool_accepts_the_config():
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    result = subprocess.run(
        [promtool, "check", "config", str(CONFIG)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_both_jobs_use_rays_discovery_file_and_trail_uses_port_9400():
    jobs = {j["job_name"]: j for j in yaml.safe_load(CONFIG.read_text())["scrape_configs"]}
    sd = "/tmp/ray/prom_metrics_service_discovery.json"
    assert jobs["ray"]["file_sd_configs"][0]["files"] == [sd]
    assert jobs["trail"]["file_sd_configs"][0]["files"] == [sd]
    assert jobs["trail"]["relabel_configs"][0]["replacement"] == "${1}:9400"
