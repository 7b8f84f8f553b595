"""The sampler: every `interval_s`, what a leak or a drift would show first.

- RSS and open fds of every process the soak started (by role and pid: ingress, LLM replicas,
  engine cores, Redis, the exporter, Ray's controller/proxy/raylet/GCS, the driver);
- Redis memory (`used_memory`) and key count;
- each ingress router's ledger tables (`trail_router_ledger_entries`, from the metric files);
- bytes on disk: the replicas' load files, the metric files, Ray's session logs;
- free / total KV blocks of the live replicas (their published stats);
- the router's view of each replica's work (`trail_router_replica_work_tokens`) vs the replica's
  own published figure (the truth it lags behind).

A sample never raises: a series that cannot be read this time (Redis restarting) is missing.
"""

from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path

import psutil

from ops.soak.faults import fresh_stats
from ops.soak.stack import Stack


def dir_bytes(root: Path) -> int:
    total = 0
    for path in root.rglob("*"):
        with contextlib.suppress(OSError):
            if path.is_file():
                total += path.stat().st_size
    return total


def process_sample(stack: Stack) -> tuple[dict[str, float], dict[str, float]]:
    """(RSS MiB, open fds) per `role:pid`."""
    rss, fds = {}, {}
    for pid, role in stack.processes().items():
        with contextlib.suppress(psutil.Error):
            proc = psutil.Process(pid)
            rss[f"{role}:{pid}"] = proc.memory_info().rss / 2**20
            fds[f"{role}:{pid}"] = float(proc.num_fds())
    return rss, fds


def redis_sample(stack: Stack) -> dict[str, float]:
    if stack.redis is None:
        return {}
    with contextlib.suppress(Exception):
        client = stack.redis.client()
        return {"memory_kib": client.info("memory")["used_memory"] / 1024, "keys": client.dbsize()}
    return {}


def metric_samples(stack: Stack) -> tuple[dict[str, float], dict[str, float]]:
    """(ledger entries per `table:pid`, router view per replica) from the app's metric files."""
    from prometheus_client.parser import text_string_to_metric_families

    from trail.metrics.exporter import render_latest

    ledger, view = {}, {}
    with contextlib.suppress(Exception):
        body, _ = render_latest(stack.metrics_dir)
        for family in text_string_to_metric_families(body.decode()):
            for s in family.samples:
                if s.name == "trail_router_ledger_entries":
                    ledger[f"{s.labels['table']}:{s.labels.get('pid', '?')}"] = s.value
                elif s.name == "trail_router_replica_work_tokens":
                    view[s.labels["replica"]] = s.value
    return ledger, view


def sample(stack: Stack, t0: float, ray_logs: Path | None) -> dict:
    rss, fds = process_sample(stack)
    ledger, view = metric_samples(stack)
    stats = fresh_stats(stack)
    files = {"load_dir": dir_bytes(stack.load_dir), "metrics_dir": dir_bytes(stack.metrics_dir)}
    if ray_logs is not None:
        files["ray_logs"] = dir_bytes(ray_logs)
    return {
        "t": time.monotonic() - t0,
        "rss_mib": rss,
        "fds": fds,
        "redis": redis_sample(stack),
        "ledger": ledger,
        "files_kib": {k: v / 1024 for k, v in files.items()},
        "metric_files": len(list(stack.metrics_dir.glob("*.db"))),
        "kv": {n: [s.get("kv_free_blocks"), s.get("kv_total_blocks")] for n, s in stats.items()},
        "router_view": {n: v for n, v in view.items() if n in stats},
        "truth": {n: s.get("work_tokens") for n, s in stats.items()},
    }


def ray_session_logs() -> Path | None:
    with contextlib.suppress(Exception):
        import ray

        return Path(ray._private.worker.global_worker.node.get_session_dir_path()) / "logs"
    return None


class Sampler(threading.Thread):
    """Samples now and every `interval_s` until `stop()`; `samples` is the list of dicts."""

    def __init__(self, stack: Stack, interval_s: float, t0: float) -> None:
        super().__init__(daemon=True, name="soak-sampler")
        self.stack, self.interval_s, self.t0 = stack, interval_s, t0
        self.samples: list[dict] = []
        self._halt = threading.Event()
        self.ray_logs = ray_session_logs()

    def run(self) -> None:
        while True:
            with contextlib.suppress(Exception):
                self.samples.append(sample(self.stack, self.t0, self.ray_logs))
            if self._halt.wait(self.interval_s):
                return

    def stop(self) -> None:
        self._halt.set()
        self.join(30)
        with contextlib.suppress(Exception):
            self.samples.append(sample(self.stack, self.t0, self.ray_logs))  # the end state
