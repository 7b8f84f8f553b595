"""Redis as a real deployment runs it: a password in the URL, bounded memory (`maxmemory`),
and what the writer does when Redis refuses writes. Real redis-server processes."""

from __future__ import annotations

import logging
import time

import pytest
import redis

from tests.support.redis_server import RedisServer, redis_server_binary
from trail.metrics import definitions as m
from trail.store import PredictionStore, StoreReader
from trail.store.writer import redact

pytestmark = pytest.mark.skipif(redis_server_binary() is None, reason="redis-server missing")
SECRET = "s3cret-pw"


def write_requests(store: PredictionStore, n: int, start: int = 0) -> None:
    t0 = time.time()
    for i in range(start, start + n):
        rid = f"req-{i}"
        store.arrival(
            rid,
            replica="r",
            policy="trail",
            prompt_tokens=100,
            prompt_hash="h",
            initial_dist=[0.1] * 10,
            initial_expected=50.0,
            ts=t0,
        )
        for step in range(1, 9):
            store.step(rid, step=step, expected_remaining=50.0 - step, dist=[0.1] * 10)
        store.finished(rid, true_length=9, finish_reason="stop", ts=t0 + 1)


def dropped(reason: str) -> float:
    return m.STORE_DROPPED.labels(reason=reason)._value.get()


def test_a_password_in_the_url_is_used_and_never_logged(caplog):
    server = RedisServer(password=SECRET).start()
    try:
        store = PredictionStore(server.url, flush_interval_s=0.01, socket_timeout_s=0.5)
        write_requests(store, 3)
        assert store.flush(5.0)
        assert StoreReader.from_url(server.url).get("req-1")["true_length"] == 9
        anonymous = StoreReader.from_url(server.url.replace(f":{SECRET}@", ""))
        with pytest.raises(redis.AuthenticationError):
            anonymous.get("req-1")
        with caplog.at_level(logging.WARNING, logger="trail.store.writer"):
            server.stop()  # the writer notices, logs, and drops
            write_requests(store, 1, start=10)
            deadline = time.time() + 10
            while store.healthy and time.time() < deadline:
                time.sleep(0.05)
        assert not store.healthy
        text = caplog.text
        assert "failed" in text and "***" in text and SECRET not in text
        store.close()
    finally:
        server.close()


def test_redact_hides_only_the_password():
    assert redact("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert redact(f"rediss://app:{SECRET}@redis.example:6380/2") == (
        "rediss://app:***@redis.example:6380/2"
    )
    assert redact(f"redis://:{SECRET}@h/0") == "redis://:***@h/0"


def test_writes_refused_under_maxmemory_are_counted_and_the_writer_goes_on():
    """noeviction: past the limit Redis answers OOM per command; the writer stays up and
    counts each refused write instead of calling it written."""
    server = RedisServer(config={"maxmemory": "2mb", "maxmemory-policy": "noeviction"}).start()
    try:
        store = PredictionStore(server.url, flush_interval_s=0.01, store_distributions=True)
        before = dropped("rejected")
        for batch in range(40):
            write_requests(store, 100, start=batch * 100)
            store.flush(5.0)
        assert dropped("rejected") > before, "OOM replies must be counted as dropped"
        assert store.healthy  # a refusal is not an outage: the connection is fine
        used = server.client().info("memory")["used_memory"]
        assert used <= 2 * 1024 * 1024 * 1.05
        store.close()
    finally:
        server.close()


def test_with_an_eviction_policy_memory_stays_bounded_and_writes_go_on(capsys):
    """volatile-ttl: every store key has a TTL, so Redis evicts the soonest-expiring first and
    never refuses; used memory stays under the limit however much is written."""
    limit = 4 * 1024 * 1024
    server = RedisServer(config={"maxmemory": str(limit), "maxmemory-policy": "volatile-ttl"})
    server.start()
    try:
        store = PredictionStore(server.url, flush_interval_s=0.01, store_distributions=True)
        client = server.client()
        before = dropped("rejected")
        write_requests(store, 200)
        assert store.flush(5.0)
        per_request = client.info("memory")["used_memory_dataset"] / 200
        peaks = []
        for batch in range(1, 30):
            write_requests(store, 200, start=batch * 200)
            assert store.flush(10.0)
            peaks.append(client.info("memory")["used_memory"])
        assert max(peaks) <= limit * 1.05
        assert dropped("rejected") == before
        assert client.info("stats")["evicted_keys"] > 0
        with capsys.disabled():
            print(
                f"\nprediction store: ~{per_request:.0f} bytes of Redis per request "
                f"(8 steps, distributions on); peak {max(peaks) / 2**20:.1f} MiB "
                f"under maxmemory {limit / 2**20:.0f} MiB after 6,000 requests"
            )
        store.close()
    finally:
        server.close()
