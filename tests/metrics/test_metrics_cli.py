"""`trail metrics serve` as a real process serving another process's metrics over HTTP."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import httpx
from metrics_writer import finish, start_writer

from trail.serve.localcluster import free_port


def wait_for_metrics(url: str, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            reply = httpx.get(url, timeout=1.0)
            if reply.status_code == 200:
                return reply.text
        except httpx.HTTPError:
            time.sleep(0.1)
    raise TimeoutError(url)


def test_serve_exposes_the_directory_and_stops_on_sigint(tmp_path):
    (tmp_path / "gauge_livesum_999999999.db").write_bytes(b"")  # stale: --reset removes it
    writer = None
    port = free_port()
    args = [sys.executable, "-m", "trail.cli.metrics", "serve", "--port", str(port)]
    args += ["--path", str(tmp_path), "--reset"]
    # started with SIGINT ignored, as under a Ray or vLLM parent (it passes SIG_IGN through exec)
    exporter = subprocess.Popen(
        args,
        env={**os.environ},
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_IGN),
    )
    try:
        wait_for_metrics(f"http://127.0.0.1:{port}/metrics")
        assert not (tmp_path / "gauge_livesum_999999999.db").exists()
        writer = start_writer(tmp_path, "r-cli", 77.0)
        body = wait_for_metrics(f"http://127.0.0.1:{port}/metrics")
        assert 'trail_predicted_remaining_tokens{replica="r-cli"} 77.0' in body
        assert 'trail_queue_requests{replica="r-cli",state="running"} 3.0' in body
    finally:
        if writer is not None:
            finish(writer)
        exporter.send_signal(signal.SIGINT)
        assert exporter.wait(timeout=30) == 0  # a loaded machine (CI) took > 10 s
