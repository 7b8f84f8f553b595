"""A throwaway real Prometheus for tests: loopback, free port, temp TSDB, our own config.

Reusable by the end-to-end tests: start it with a config scraping the app's exporter, then use
ops.grafana.promql.expressions_without_series(server.url).
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.processes import stop_process, wait_ready
from trail.serve.localcluster import free_port


def prometheus_binary() -> str | None:
    return shutil.which("prometheus") or (
        "/usr/bin/prometheus" if Path("/usr/bin/prometheus").exists() else None
    )


def static_scrape_config(targets: list[str], interval: str = "1s") -> dict[str, Any]:
    """A minimal config scraping ``targets`` (host:port) as job ``trail``."""
    return {
        "global": {"scrape_interval": interval, "evaluation_interval": interval},
        "scrape_configs": [{"job_name": "trail", "static_configs": [{"targets": targets}]}],
    }


class PrometheusServer:
    """One prometheus process we own by pid, with its config and TSDB in a temp dir."""

    def __init__(self, config: dict[str, Any] | str, port: int | None = None) -> None:
        binary = prometheus_binary()
        if binary is None:
            raise FileNotFoundError("prometheus not installed")
        self.binary = binary
        self.port = port or free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="trail-prom-"))
        self.config_path = self.dir / "prometheus.yml"
        text = config if isinstance(config, str) else yaml.safe_dump(config)
        self.config_path.write_text(text, encoding="utf-8")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 20.0) -> PrometheusServer:
        args = [
            self.binary,
            f"--config.file={self.config_path}",
            f"--storage.tsdb.path={self.dir / 'data'}",
            f"--web.listen-address=127.0.0.1:{self.port}",
            "--storage.tsdb.retention.time=1h",
            "--log.level=warn",
        ]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self._wait_ready(timeout_s)
        return self

    def _wait_ready(self, timeout_s: float) -> None:
        assert self.proc is not None
        ready = lambda: httpx.get(f"{self.url}/-/ready", timeout=1.0).status_code == 200  # noqa: E731
        wait_ready(self.proc, "prometheus", ready, timeout_s, 0.1, (httpx.HTTPError,))

    def query(self, expr: str) -> dict[str, Any]:
        reply = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=10.0)
        return dict(reply.json())

    def wait_for_series(self, expr: str, timeout_s: float = 15.0) -> list[dict[str, Any]]:
        """Poll until ``expr`` returns at least one series; [] on timeout."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            reply = self.query(expr)
            if reply.get("status") == "success" and reply["data"]["result"]:
                return list(reply["data"]["result"])
            time.sleep(0.25)
        return []

    def targets(self) -> list[dict[str, Any]]:
        reply = httpx.get(f"{self.url}/api/v1/targets", timeout=10.0).json()
        return list(reply["data"]["activeTargets"])

    def stop(self) -> None:
        if self.proc is None:
            return
        stop_process(self.proc, grace_s=10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@contextlib.contextmanager
def prometheus_server(config: dict[str, Any] | str) -> Iterator[PrometheusServer]:
    server = PrometheusServer(config).start()
    try:
        yield server
    finally:
        server.close()
