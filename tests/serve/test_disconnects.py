"""1,000 streaming clients that vanish at seeded random points (ops/loadtest/disconnects.py).

Afterwards nothing may be left of them anywhere: the engines publish nothing running or
waiting and every KV block free, the replicas hold no request, and the ingress admits a full
admission window again (a leaked in-flight count would answer 429).
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest

from ops.loadtest.disconnects import storm
from tests.support.serve import chat, replica_stats, wait_for, wait_idle

pytestmark = [pytest.mark.serve, pytest.mark.reliability]
N, CONCURRENCY, MAX_TOKENS, SEED = 1000, 12, 24, 7
IDLE_WITHIN_S = 30.0
CHAT = "/v1/chat/completions"


def drained(load_dir, since: float) -> bool:
    stats = replica_stats(load_dir)
    return len(stats) == 2 and all(
        s.inflight == 0
        and s.engine_unfinished == 0
        and s.engine_running == 0
        and s.engine_waiting == 0
        and (s.kv_total_blocks or 0) > 0
        and s.kv_free_blocks == s.kv_total_blocks
        and (s.engine_load_ts or 0.0) > since  # published during or after the storm
        and time.time() - s.ts < 2
        for s in stats.values()
    )


def test_disconnect_storm_leaves_engines_empty_and_kv_free(serve_app):
    url, load_dir = serve_app.url, serve_app.load_dir
    wait_idle(load_dir)
    started = time.time()
    r = asyncio.run(
        storm(url, "tiny", n=N, concurrency=CONCURRENCY, max_tokens=MAX_TOKENS, seed=SEED)
    )
    ended = time.monotonic()
    print(f"\ndisconnect storm: {r.summary()}")
    assert r.sent == N and r.adds_up(), r.summary()
    assert r.errors == 0, r.error_samples
    assert r.disconnected >= 0.5 * N and r.completed > 0, r.summary()
    assert r.outcomes["before_headers/disconnected"] > 0, r.outcomes  # some left pre-headers

    assert wait_for(lambda: drained(load_dir, started), IDLE_WITHIN_S), replica_stats(load_dir)
    idle_s = time.monotonic() - ended
    stats = replica_stats(load_dir)
    kv = {name[:8]: (s.kv_free_blocks, s.kv_total_blocks) for name, s in stats.items()}
    print(f"idle {idle_s:.1f}s after the storm; kv free/total per replica: {kv}")

    # the ingress let go of every storm request: a full admission window of streams held open
    # at once is admitted (one leaked in-flight count would turn the last into a 429)
    assert asyncio.run(full_window(url)) == [200] * CONCURRENCY
    wait_idle(load_dir)


async def full_window(url: str) -> list[int]:
    ready: list[int] = []
    release = asyncio.Event()
    async with httpx.AsyncClient(timeout=120) as client:

        async def hold() -> None:
            body = chat(max_tokens=200, ignore_eos=True, stream=True)
            async with client.stream("POST", url + CHAT, json=body) as r:
                ready.append(r.status_code)
                await release.wait()  # leaving closes the stream: aborted in the engine

        tasks = [asyncio.create_task(hold()) for _ in range(CONCURRENCY)]
        deadline = time.monotonic() + 60
        while len(ready) < CONCURRENCY and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        release.set()
        await asyncio.gather(*tasks)
    return sorted(ready)
