"""The writer never blocks and never raises; Redis stopped/paused/restarted (real server)."""

from __future__ import annotations

import time

from trail.metrics import definitions as m
from trail.store import PredictionStore


def _dropped() -> float:
    """This process's drop count, all reasons (multiprocess values are per process)."""
    return sum(m.STORE_DROPPED.labels(reason=r)._value.get() for r in m.STORE_DROP_REASONS)


def _written(kind: str) -> float:
    return m.STORE_WRITES.labels(kind=kind)._value.get()


def _time_steps(store: PredictionStore, n: int) -> tuple[float, float]:
    """(mean, max) seconds per writer call over ``n`` calls."""
    worst = 0.0
    started = time.perf_counter()
    for i in range(n):
        t = time.perf_counter()
        store.step("busy", step=i, expected_remaining=float(i))
        worst = max(worst, time.perf_counter() - t)
    return (time.perf_counter() - started) / n, worst


def _wait_healthy(store: PredictionStore, timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and not store.healthy:
        time.sleep(0.02)
    return store.healthy


def test_writers_do_not_block_while_redis_is_paused(redis_srv):
    store = PredictionStore(
        redis_srv.url, queue_size=1000, flush_interval_s=0.01, socket_timeout_s=0.5
    )
    try:
        store.step("warm", step=0, expected_remaining=1.0)
        assert store.flush(5.0)
        dropped_before = _dropped()
        redis_srv.pause()  # SIGSTOP: connections hang, nothing answers
        mean_s, worst_s = _time_steps(store, 20_000)
        assert mean_s < 50e-6, f"mean writer call {mean_s * 1e6:.1f} µs"
        assert worst_s < 0.05, f"slowest writer call {worst_s * 1e3:.1f} ms"
        # bounded queue: at most one queue-full in flight plus one queued; the rest dropped
        assert _dropped() - dropped_before >= 20_000 - 2 * 1000
        time.sleep(1.0)  # past socket_timeout_s: the stuck pipeline fails, Redis marked down
        assert not store.healthy
        redis_srv.resume()
        assert _wait_healthy(store)
        store.step("after-pause", step=1, expected_remaining=3.0)
        assert store.flush(5.0)
        assert store.get("after-pause")["trajectory"][0]["expected_remaining"] == 3.0
    finally:
        redis_srv.resume()
        store.close()


def test_stopped_redis_drops_and_counts_then_restart_resumes(redis_srv):
    store = PredictionStore(redis_srv.url, flush_interval_s=0.01, socket_timeout_s=0.5)
    try:
        store.step("before", step=1, expected_remaining=5.0)
        assert store.flush(5.0)
        redis_srv.stop()
        dropped_before = _dropped()
        for i in range(500):  # none of these may raise
            store.step("while-down", step=i, expected_remaining=1.0)
            store.finished("while-down", true_length=i, finish_reason="stop", ts=time.time())
        assert store.flush(2.0) is False  # nothing could be written
        assert not store.healthy
        assert _dropped() - dropped_before >= 1
        store.step("still-down", step=1, expected_remaining=1.0)
        assert _dropped() - dropped_before == 1001  # every event accounted for as a drop

        redis_srv.start()  # same port, empty server
        assert _wait_healthy(store)
        written_before = _written("step")
        store.step("resumed", step=7, expected_remaining=2.0)
        assert store.flush(5.0)
        assert store.get("resumed")["trajectory"] == [
            {"step": 7, "expected_remaining": 2.0, "dist": None}
        ]
        assert _written("step") == written_before + 1
    finally:
        store.close()


def test_invalid_events_are_dropped_not_raised(redis_srv):
    store = PredictionStore(redis_srv.url, flush_interval_s=0.01)
    try:
        invalid_before = m.STORE_DROPPED.labels(reason="invalid")._value.get()
        store.step("bad", step=1, expected_remaining="not a number")  # type: ignore[arg-type]
        store.step("good", step=1, expected_remaining=1.0)
        assert store.flush(5.0)
        assert m.STORE_DROPPED.labels(reason="invalid")._value.get() == invalid_before + 1
        assert store.get("good") is not None and store.get("bad") is None
    finally:
        store.close()
