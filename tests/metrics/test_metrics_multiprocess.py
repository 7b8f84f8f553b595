"""Multiprocess merging: values written by other processes appear in the exporter's output."""

from __future__ import annotations

from pathlib import Path

from metrics_writer import finish, start_writer
from prometheus_client.parser import text_string_to_metric_families

from trail.metrics import mark_process_dead, render_latest, sweep_dead_processes


def samples(metrics_dir: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = render_latest(metrics_dir)
    assert content_type.startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def remaining(metrics_dir: Path, replica: str) -> float | None:
    return samples(metrics_dir).get(("trail_predicted_remaining_tokens", (("replica", replica),)))


def test_counters_sum_and_live_gauges_follow_live_processes(tmp_path):
    a = start_writer(tmp_path, "r1", 100.0)
    b = start_writer(tmp_path, "r1", 50.0)  # same labels: livesum adds live processes
    try:
        got = samples(tmp_path)
        assert got[("trail_predicted_remaining_tokens", (("replica", "r1"),))] == 150.0
        assert got[("trail_preemptions_total", (("reason", "policy"), ("replica", "r1")))] == 2.0
        assert got[("trail_store_writes_total", (("kind", "step"),))] == 6.0
        assert (
            got[
                (
                    "trail_prediction_abs_error_tokens_count",
                    (("phase", "refined"), ("predictor", "v1"), ("replica", "r1")),
                )
            ]
            == 2 * 9  # two writers, each 1 + 8 refined points
        )
        assert (
            abs(got[("trail_online_kendall_tau", (("predictor", "v1"), ("replica", "r1")))] - 1.0)
            < 1e-9
        )  # the most recent writer's window: predictions ranked exactly as the lengths
    finally:
        finish(a)
    assert remaining(tmp_path, "r1") == 50.0  # a's clean exit removed its live gauge
    finish(b)
    assert remaining(tmp_path, "r1") is None
    # counters of dead processes stay (totals must not go backwards)
    assert (
        samples(tmp_path)[
            ("trail_router_decisions_total", (("replica", "r1"), ("router", "trail")))
        ]
        == 2.0
    )


def test_crashed_process_gauges_are_swept(tmp_path):
    crashed = start_writer(tmp_path, "r2", 30.0, "--no-clean-exit")
    crashed.wait(timeout=10)
    assert any(p.name.startswith("gauge_livesum_") for p in tmp_path.iterdir())
    assert sweep_dead_processes(tmp_path) == [crashed.pid]
    assert remaining(tmp_path, "r2") is None


def test_mark_process_dead_by_pid(tmp_path):
    proc = start_writer(tmp_path, "r3", 12.0)
    try:
        assert remaining(tmp_path, "r3") == 12.0
        mark_process_dead(proc.pid, tmp_path)  # e.g. a supervisor that saw it die
        assert not any(str(proc.pid) in p.name for p in tmp_path.glob("gauge_live*"))
    finally:
        finish(proc)


def test_asgi_app_serves_the_merged_exposition(tmp_path):
    """What the Serve router mounts at /metrics."""
    from starlette.testclient import TestClient

    from trail.metrics import metrics_asgi_app

    proc = start_writer(tmp_path, "r-asgi", 5.0)
    try:
        reply = TestClient(metrics_asgi_app(tmp_path)).get("/")
    finally:
        finish(proc)
    assert reply.status_code == 200
    assert 'trail_predicted_remaining_tokens{replica="r-asgi"} 5.0' in reply.text
