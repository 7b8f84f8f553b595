"""Observability of the running app: records in a real Redis (also while Redis goes away and
comes back), and a real Prometheus scraping the app for every dashboard panel's query.

Grafana itself cannot be installed here; the dashboards' JSON is checked in tests/ops.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from ops.grafana.promql import expressions_without_series
from tests.support.prometheus_server import (
    PrometheusServer,
    prometheus_binary,
    static_scrape_config,
)
from tests.support.serve import wait_for

pytestmark = pytest.mark.serve
CHAT = "/v1/chat/completions"


def chat(text: str = "hi", **over) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": text}], **over}


def metric_sum(url: str, family: str, **labels: str) -> float:
    """Sum of a family's samples on the app's /metrics (all processes, matching labels)."""
    text = httpx.get(f"{url}/metrics", timeout=10).text
    total = 0.0
    for fam in text_string_to_metric_families(text):
        if fam.name != family:
            continue
        for sample in fam.samples:
            wanted = all(sample.labels.get(k) == v for k, v in labels.items())
            if wanted and sample.name in (family, f"{family}_total"):
                total += sample.value
    return total


def record(url: str, rid: str) -> dict | None:
    r = httpx.get(f"{url}/v1/trail/requests/{rid}", timeout=10)
    return r.json() if r.status_code == 200 else None


def finished_record(url: str, rid: str, timeout_s: float = 15) -> dict | None:
    box: dict = {}

    def done() -> bool:
        box["rec"] = record(url, rid)
        return box["rec"] is not None and box["rec"].get("finish_ts") is not None

    wait_for(done, timeout_s, interval_s=0.2)
    return box.get("rec")


async def send_all(url: str, bodies: list[dict], concurrency: int) -> list[httpx.Response]:
    sem = asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=120) as client:

        async def one(body: dict) -> httpx.Response:
            async with sem:
                return await client.post(url + CHAT, json=body)

        return await asyncio.gather(*[one(b) for b in bodies])


def test_served_request_leaves_a_complete_record(serve_app):
    url = serve_app.url
    r = httpx.post(url + CHAT, json=chat("Tell me.", max_tokens=10, ignore_eos=True), timeout=60)
    assert r.status_code == 200
    rid, replica = r.headers["x-trail-request-id"], r.headers["x-trail-replica"]
    rec = finished_record(url, rid)
    assert rec is not None, httpx.get(f"{url}/v1/trail/requests/{rid}").text
    assert rec["replica"] == replica and rec["policy"] == "trail-oracle"
    assert rec["true_length"] == 10 and rec["finish_reason"] == "length"
    assert rec["prompt_tokens"] == r.json()["usage"]["prompt_tokens"]
    assert rec["arrival_ts"] <= rec["first_token_ts"] <= rec["finish_ts"]
    # predict_every=1: the prefill prediction (step 0) and one per decode step
    assert [p["step"] for p in rec["trajectory"]] == list(range(10))
    assert "Tell me." not in str(rec)  # prompt text is not stored
    missing = httpx.get(f"{url}/v1/trail/requests/nope", timeout=10)
    assert missing.status_code == 404 and missing.json()["error"]["code"] == 404


@pytest.mark.reliability
def test_redis_outage_does_not_fail_requests_and_writes_resume(serve_app):
    url, redis = serve_app.url, serve_app.redis
    dropped_before = metric_sum(url, "trail_store_dropped")
    bodies = [chat(f"q{i}", max_tokens=24, ignore_eos=True) for i in range(16)]
    try:
        redis.stop()  # the app keeps the URL; nothing answers on the port now
        responses = asyncio.run(send_all(url, bodies, concurrency=6))
        assert [r.status_code for r in responses] == [200] * len(bodies)
        assert all(r.json()["usage"]["completion_tokens"] == 24 for r in responses)
        assert wait_for(lambda: metric_sum(url, "trail_store_dropped") > dropped_before, 10)
        assert record(url, responses[0].headers["x-trail-request-id"]) is None  # 503 while down
        down = httpx.get(f"{url}/v1/trail/requests/x", timeout=10)
        assert down.status_code == 503 and "error" in down.json()
    finally:
        redis.start()  # same port, empty database, no app restart
    started = time.monotonic()

    def new_request_recorded() -> bool:
        r = httpx.post(url + CHAT, json=chat("after", max_tokens=4, ignore_eos=True), timeout=60)
        rec = finished_record(url, r.headers["x-trail-request-id"], timeout_s=2)
        return rec is not None and rec["true_length"] == 4

    assert wait_for(new_request_recorded, 30, interval_s=0.5)
    print(f"writes resumed {time.monotonic() - started:.1f}s after Redis restarted")


@pytest.mark.reliability
def test_paused_redis_slows_no_request_and_writes_resume(serve_app):
    """SIGSTOP: Redis accepts connections but never answers (the worst 'slow Redis')."""
    url, redis = serve_app.url, serve_app.redis
    bodies = [chat(f"s{i}", max_tokens=24, ignore_eos=True) for i in range(12)]
    t0 = time.monotonic()
    assert all(r.status_code == 200 for r in asyncio.run(send_all(url, bodies, 6)))
    healthy_s = time.monotonic() - t0
    dropped_before = metric_sum(url, "trail_store_dropped")
    redis.pause()
    try:
        t0 = time.monotonic()
        responses = asyncio.run(send_all(url, bodies, 6))
        paused_s = time.monotonic() - t0
        assert [r.status_code for r in responses] == [200] * len(bodies)
        assert wait_for(lambda: metric_sum(url, "trail_store_dropped") > dropped_before, 15)
        t0 = time.monotonic()
        read = httpx.get(f"{url}/v1/trail/requests/x", timeout=30)
        assert read.status_code == 503 and time.monotonic() - t0 < 10  # the read times out
    finally:
        redis.resume()
    print(f"12 requests: {healthy_s:.1f}s with Redis up, {paused_s:.1f}s with Redis paused")
    assert paused_s < 3 * healthy_s + 5  # generous: CPU noise, not the store, dominates

    def new_request_recorded() -> bool:
        r = httpx.post(url + CHAT, json=chat("resume", max_tokens=4, ignore_eos=True), timeout=60)
        rec = finished_record(url, r.headers["x-trail-request-id"], timeout_s=2)
        return rec is not None and rec["true_length"] == 4

    assert wait_for(new_request_recorded, 30, interval_s=0.5)


@pytest.mark.skipif(prometheus_binary() is None, reason="prometheus not installed (make setup)")
def test_prometheus_scrapes_the_app_for_every_dashboard_panel(serve_app):
    url = serve_app.url
    prom = PrometheusServer(static_scrape_config([f"127.0.0.1:{serve_app.port}"], "1s"))
    try:
        prom.start()
        assert prom.wait_for_series('up{job="trail"} == 1'), prom.targets()
        # traffic for the rate() panels: mixed lengths over both replicas
        bodies = [chat(f"p{i}", max_tokens=8 + 16 * (i % 4), ignore_eos=True) for i in range(10)]
        assert all(r.status_code == 200 for r in asyncio.run(send_all(url, bodies, 6)))
        # two scrapes after the traffic, so every counter has a rate over the window
        assert prom.wait_for_series("count(vllm:generation_tokens_total offset 2s)", 30)
        time.sleep(2.5)
        empty = expressions_without_series(prom.url)
        assert empty == [], [f"{q.panel}: {q.expr}" for q in empty]
        replicas = prom.query("count by (replica) (trail_predicted_remaining_tokens)")
        assert len(replicas["data"]["result"]) == 2  # one series per replica, not one merged
    finally:
        prom.close()
