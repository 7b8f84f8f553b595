"""The streaming client against a scripted server (httpx.MockTransport): TTFT skips the role
chunk, tokens come from usage, errors become records instead of exceptions."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from tests.support.sse import chat_events, sse, transport
from trail.lab.bench.client import Record, make_body, send
from trail.lab.bench.loadgen import closed_loop, open_loop
from trail.lab.workload.requests import BenchRequest

REQ = BenchRequest("r0", "Hello?", out_tokens=3, natural_tokens=40)


def run_send(t: httpx.MockTransport, body: dict | None = None) -> Record:
    async def go() -> Record:
        async with httpx.AsyncClient(transport=t) as client:
            rec = Record("r0", 0.0, 3)
            return await send(client, "http://x", "chat", body or {}, rec)

    return asyncio.run(go())


def test_bodies_for_both_modes():
    exact = make_body(REQ, "m", mode="exact", send_true_len=True)
    assert exact["max_tokens"] == 3 and exact["ignore_eos"] is True
    xargs = {"trail_true_len": 3, "trail_use_max_tokens": False}
    assert exact["vllm_xargs"] == xargs and exact["stream_options"]["include_usage"]
    assert exact["messages"] == [{"role": "user", "content": "Hello?"}]
    blind = make_body(REQ, "m", mode="exact")  # non-oracle: max_tokens must not rank
    assert blind["vllm_xargs"] == {"trail_use_max_tokens": False} and blind["max_tokens"] == 3
    natural = make_body(REQ, "m", endpoint="completions", mode="natural", max_out=128)
    assert (
        natural["max_tokens"] == 128 and "ignore_eos" not in natural and "vllm_xargs" not in natural
    )
    assert natural["prompt"] == "Hello?" and natural["temperature"] == 0.0


def test_ttft_skips_the_role_chunk_and_tokens_come_from_usage():
    rec = run_send(transport(sse(*chat_events()), delay_s=0.2))
    assert rec.ok and rec.error is None
    assert rec.out_tokens == 3 and rec.prompt_tokens == 9
    assert rec.finish_reason == "length" and rec.replica == "rep1"
    assert 0.2 <= rec.ttft_s <= rec.latency_s


def test_errors_are_recorded():
    rec = run_send(transport([b'{"error": {"message": "busy"}}'], status=429))
    assert not rec.ok and rec.error.startswith("HTTP 429")
    mid = sse({"error": {"message": "replica died", "code": 503}})
    rec = run_send(transport(mid))
    assert not rec.ok and "replica died" in rec.error

    def boom(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    rec = run_send(httpx.MockTransport(boom))
    assert not rec.ok and "ConnectError" in rec.error


def test_without_usage_chunks_are_counted():
    rec = run_send(transport(sse(*chat_events(4)[:-1])))
    assert rec.ok and rec.out_tokens == 4 and rec.prompt_tokens is None


@pytest.mark.parametrize("closed", [False, True])
def test_load_loops_send_every_request(monkeypatch: pytest.MonkeyPatch, closed: bool):
    seen: list = []
    t = transport(sse(*chat_events()), seen=seen)
    real = httpx.AsyncClient
    monkeypatch.setattr(httpx, "AsyncClient", lambda **kw: real(transport=t, **kw))
    reqs = [BenchRequest(f"r{i}", "hi", 3, 3) for i in range(5)]

    def body(r: BenchRequest) -> dict:
        return make_body(r, "m")

    if closed:
        recs = asyncio.run(closed_loop("http://x", reqs, 2, body, progress=False))
    else:
        times = [0.0, 0.05, 0.1, 0.15, 0.2]
        recs = asyncio.run(open_loop("http://x", reqs, times, body, progress=False))
        assert [r.sent_s >= t - 0.01 for r, t in zip(recs, times, strict=True)] == [True] * 5
    assert len(seen) == 5 and all(r.ok for r in recs)
    assert sorted(r.id for r in recs) == [f"r{i}" for i in range(5)]
