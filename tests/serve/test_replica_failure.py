"""Kill one LLM replica's process mid-load (SIGKILL, like an OOM kill).

Promised (docs/reliability.md): its in-flight streams end with an OpenAI-style error event
(503 replica_unavailable; not retried by the server, tokens may already have been streamed),
other replicas' streams finish, new requests keep succeeding on the survivor, Serve replaces
the dead replica, the replacement takes traffic, and the dead replica's engine process exits.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time

import httpx
import psutil
import pytest

from tests.support.serve import replica_stats, wait_for
from trail.policy.replica_stats import ReplicaStats

pytestmark = [pytest.mark.serve, pytest.mark.reliability]
CHAT = "/v1/chat/completions"
DEADLINE_S = 60.0  # no request may take longer than this, failure or not


def chat(text: str, **over) -> dict:
    return {"model": "tiny", "messages": [{"role": "user", "content": text}], **over}


def fresh_replicas(load_dir) -> dict[str, ReplicaStats]:  # noqa: ANN001
    return {k: s for k, s in replica_stats(load_dir).items() if time.time() - s.ts < 2}


async def stream_one(client: httpx.AsyncClient, url: str, i: int, started: asyncio.Event) -> dict:
    """One long stream: its replica, chunks received, and how it ended."""
    body = chat(f"long {i}", max_tokens=400, ignore_eos=True, stream=True)
    body["stream_options"] = {"include_usage": True}
    out: dict = {"replica": None, "chunks": 0, "end": None}
    async with client.stream("POST", url + CHAT, json=body) as r:
        out["status"], out["replica"] = r.status_code, r.headers.get("x-trail-replica")
        async for line in r.aiter_lines():
            if not line.startswith("data: "):
                continue
            if line == "data: [DONE]":
                out["end"] = "done"
            elif "error" in (event := json.loads(line[6:])):
                out["end"], out["error"] = "error", event["error"]
            elif event.get("usage"):
                out["tokens"] = event["usage"]["completion_tokens"]
            else:
                out["chunks"] += 1
                if out["chunks"] >= 3:
                    started.set()
    return out


async def kill_during_streams(url: str, load_dir, n: int = 6) -> tuple[list[dict], str, list]:  # noqa: ANN001
    started = asyncio.Event()
    async with httpx.AsyncClient(timeout=DEADLINE_S) as client:
        tasks = [asyncio.create_task(stream_one(client, url, i, started)) for i in range(n)]
        await asyncio.wait_for(started.wait(), 30)
        await asyncio.sleep(0.5)
        victim, stats = max(replica_stats(load_dir).items(), key=lambda kv: kv[1].inflight)
        children = psutil.Process(stats.pid).children(recursive=True)
        os.kill(stats.pid, signal.SIGKILL)
        results = await asyncio.wait_for(asyncio.gather(*tasks), DEADLINE_S)
    return results, victim, children


def test_killed_replica_fails_its_streams_cleanly_and_is_replaced(serve_app):
    url, load_dir = serve_app.url, serve_app.load_dir
    assert wait_for(lambda: len(fresh_replicas(load_dir)) == 2, 60)
    before = set(fresh_replicas(load_dir))
    killed_at = time.monotonic()
    results, victim, engine_children = asyncio.run(kill_during_streams(url, load_dir))
    on_victim = [r for r in results if r["replica"] == victim]
    survivors = [r for r in results if r["replica"] != victim]
    assert on_victim and all(r["end"] == "error" for r in on_victim), on_victim
    assert all(r["error"]["code"] == 503 for r in on_victim), on_victim
    assert all(r["end"] == "done" and r["tokens"] == 400 for r in survivors), survivors

    # new requests: every one ends (200, or a clean 503 while Serve notices), none hangs
    statuses, first_ok = [], None
    with httpx.Client(timeout=DEADLINE_S) as client:
        while time.monotonic() - killed_at < 30 and (first_ok is None or len(statuses) < 10):
            r = client.post(url + CHAT, json=chat("after", max_tokens=4, ignore_eos=True))
            statuses.append(r.status_code)
            if r.status_code == 503:
                assert (
                    r.headers.get("retry-after")
                    and r.json()["error"]["type"] == "Service Unavailable"
                )
            elif first_ok is None and r.status_code == 200:
                first_ok = time.monotonic() - killed_at
    assert set(statuses) <= {200, 503} and first_ok is not None, statuses

    # Serve replaces the replica; the replacement takes traffic; the dead engine exits
    (load_dir / f"{victim}.replica.json").unlink(missing_ok=True)
    (load_dir / f"{victim}.json").unlink(missing_ok=True)
    assert wait_for(lambda: len(fresh_replicas(load_dir)) == 2, 180, interval_s=1)
    replaced_at = time.monotonic()
    (new,) = set(fresh_replicas(load_dir)) - before
    served_by_new = None
    with httpx.Client(timeout=DEADLINE_S) as client:
        while time.monotonic() - replaced_at < 30 and served_by_new is None:
            r = client.post(url + CHAT, json=chat("x", max_tokens=16, ignore_eos=True))
            assert r.status_code == 200
            if r.headers["x-trail-replica"] == new:
                served_by_new = time.monotonic() - replaced_at
    assert served_by_new is not None, "replacement replica got no traffic within 30 s"
    assert wait_for(lambda: not any(p.is_running() for p in engine_children), 30)
    print(
        f"\nkill: {len(on_victim)} streams failed cleanly, {len(survivors)} finished; "
        f"new requests {statuses.count(200)} ok / {statuses.count(503)} 503; first ok "
        f"{first_ok:.1f}s after kill (sent as the streams ended); replacement healthy {replaced_at - killed_at:.0f}s after "
        f"kill, served after {served_by_new:.1f}s"
    )
