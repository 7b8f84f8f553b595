"""A separate process that writes every TRAIL metric (multiprocess mode), then waits.

Run with PROMETHEUS_MULTIPROC_DIR set; prints "ready" once written and exits when stdin closes
(or immediately with --exit; --no-clean-exit skips the atexit hooks, like a crash).
The test modules import start_writer/finish from here.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from trail.metrics import ReplicaMetrics, router_decision, router_view
from trail.metrics import definitions as m


def write_all(replica: str, remaining: float) -> None:
    r = ReplicaMetrics(replica, policy="trail", probe_version="v1")
    r.set_queues(running=3, waiting=2)
    r.set_predicted_remaining(remaining)
    r.preempted("policy")
    r.preempted("kv_pressure")
    r.probe_call(0.002)
    r.aged()
    r.starvation_promoted()
    r.request_finished(
        true_length=40,
        finish_reason="stop",
        initial_expected=50.0,
        trajectory=[(10, 25.0)],
        probe_version="v1",
    )
    for n in range(8):  # enough finished requests for the version's online Kendall tau
        r.request_finished(
            true_length=10 + n,
            finish_reason="stop",
            initial_expected=None,
            trajectory=[(0, 12.0 + n)],
            probe_version="v1",
        )
    router_decision("trail", replica)
    router_view("trail", replica, remaining)
    for kind in m.STORE_EVENT_KINDS:
        m.STORE_WRITES.labels(kind=kind).inc(3)
    m.STORE_DROPPED.labels(reason="redis_down").inc()
    m.STORE_QUEUE_EVENTS.set(7)
    m.STORE_FLUSH_SECONDS.observe(0.003)


def start_writer(metrics_dir: Path, replica: str, remaining: float, *flags: str):
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)}
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), replica, str(remaining), *flags],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def finish(proc) -> None:
    proc.stdin.close()
    proc.wait(timeout=10)


if __name__ == "__main__":
    write_all(sys.argv[1], float(sys.argv[2]))
    print("ready", flush=True)
    if "--no-clean-exit" in sys.argv:
        os._exit(0)
    if "--exit" not in sys.argv:
        sys.stdin.read()
