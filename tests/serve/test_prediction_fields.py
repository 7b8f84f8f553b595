"""Opt-in prediction fields (vllm_xargs.trail_return): the `trail` field in a whole body and as
one extra SSE chunk before `data: [DONE]`, the x-trail-predicted-tokens header; and without
the flag, vLLM's own shape (no field, no header, no extra chunk)."""

from __future__ import annotations

import asyncio
import json
from types import SimpleNamespace

import httpx
import pytest

from tests.support.serve import chat
from trail.serve.openai_layer import DONE, TrailField
from trail.serve.protocol import OpenAICall
from trail.serve.tracked_engine import TrackedEngine

CHAT, COMP = "/v1/chat/completions", "/v1/completions"
HEADER = "x-trail-predicted-tokens"
ASK = {"vllm_xargs": {"trail_return": True}}
SUMMARY_KEYS = {
    "request_id", "initial_pred", "admitted_pred", "final_pred", "refinements", "generated",
    "preemptions", "parks",
}  # fmt: skip


# ---- no Ray: the replica's part --------------------------------------------------------------
class FakeEngine:
    def __init__(self, outs: list) -> None:
        self.outs = outs

    async def generate(self, *args, **kwargs):  # noqa: ANN002, ANN003, ANN201
        for out in self.outs:
            yield out


def run_generate(engine: TrackedEngine, rid: str) -> list:
    async def go() -> list:
        return [o async for o in engine.generate("p", SimpleNamespace(n=1), rid)]

    return asyncio.run(go())


def test_the_engine_wrapper_takes_the_summary_and_restores_vllms_value():
    mine = {"generated": 3}
    outs = [
        SimpleNamespace(kv_transfer_params=None),
        SimpleNamespace(kv_transfer_params={"trail": mine}),
    ]
    engine = TrackedEngine(FakeEngine(outs), None, lambda: None)
    run_generate(engine, "cmpl-a-0")
    assert [o.kv_transfer_params for o in outs] == [None, None]  # as vLLM has it
    kept = [SimpleNamespace(kv_transfer_params={"trail": {"generated": 1}, "connector": 7})]
    engine._engine = FakeEngine(kept)
    run_generate(engine, "cmpl-a-1")
    assert kept[0].kv_transfer_params == {"connector": 7}  # a KV connector's keys stay
    assert engine.take_reports(("cmpl-a-0", "cmpl-a-1")) == [mine, {"generated": 1}]
    assert engine.reports == {}


def test_the_stream_gets_one_usage_shaped_chunk_before_done():
    engine = TrackedEngine(None, None, lambda: None)
    engine.reports["chatcmpl-x"] = [{"generated": 2}]
    field = TrailField(
        engine, OpenAICall("chat", request_id="chatcmpl-x", engine_ids=("chatcmpl-x",))
    )
    head = {"id": "chatcmpl-x", "object": "chat.completion.chunk", "created": 5, "model": "tiny"}
    first = f"data: {json.dumps({**head, 'choices': [{'index': 0}]})}\n\n"
    assert field.before_done(first) == [] and field.before_done("data: {}\n\n") == []
    [extra] = field.before_done(DONE)
    chunk = json.loads(extra.removeprefix("data: "))
    assert chunk == {**head, "choices": [], "trail": {"sequences": [{"generated": 2}]}}
    assert engine.reports == {}


# ---- the app --------------------------------------------------------------------------------
def sse(r: httpx.Response) -> list[str]:
    return [line for line in r.text.splitlines() if line.startswith("data: ")]


def check_sequences(trail: dict, tokens: list[int]) -> None:
    seqs = trail["sequences"]
    assert [s["generated"] for s in seqs] == tokens
    for s in seqs:
        assert set(s) == SUMMARY_KEYS
        assert s["final_pred"] is not None and s["refinements"] >= 1  # the known probe ran
        assert s["preemptions"] == s["parks"] == 0


@pytest.mark.serve
def test_chat_with_and_without_the_flag(serve_app):
    url = serve_app.url
    body = chat(max_tokens=6, ignore_eos=True, temperature=0)
    with httpx.Client(timeout=120) as client:
        plain = client.post(url + CHAT, json=body)
        asked = client.post(url + CHAT, json={**body, **ASK})
    assert plain.status_code == asked.status_code == 200, (plain.text, asked.text)
    assert HEADER not in plain.headers and float(asked.headers[HEADER]) > 0
    mine, theirs = asked.json(), plain.json()
    assert set(mine) - set(theirs) == {"trail"} and "trail" not in theirs
    assert theirs["kv_transfer_params"] is None is mine["kv_transfer_params"]
    check_sequences(mine["trail"], [6])
    seq = mine["trail"]["sequences"][0]
    assert seq["request_id"] == mine["id"] == asked.headers["x-trail-request-id"]
    assert seq["admitted_pred"] == 6.0  # the oracle: ignore_eos + max_tokens is the length
    assert mine["choices"][0]["message"] == theirs["choices"][0]["message"]  # greedy


@pytest.mark.serve
def test_chat_stream_with_and_without_the_flag(serve_app):
    url = serve_app.url
    body = chat(max_tokens=5, ignore_eos=True, temperature=0, stream=True)
    with httpx.Client(timeout=120) as client:
        plain = client.post(url + CHAT, json=body)
        asked = client.post(url + CHAT, json={**body, **ASK})
    assert plain.status_code == asked.status_code == 200
    assert HEADER not in plain.headers and HEADER in asked.headers
    theirs, mine = sse(plain), sse(asked)
    assert len(mine) == len(theirs) + 1 and mine[-1] == theirs[-1] == "data: [DONE]"
    assert not any('"trail"' in e for e in theirs)
    extra = json.loads(mine[-2].removeprefix("data: "))
    last = json.loads(mine[-3].removeprefix("data: "))
    assert extra["choices"] == [] and extra["object"] == "chat.completion.chunk"
    assert (extra["id"], extra["model"], extra["created"]) == (
        last["id"], last["model"], last["created"],
    )  # fmt: skip
    check_sequences(extra["trail"], [5])


@pytest.mark.serve
def test_completion_of_two_prompts_and_a_bad_flag(serve_app):
    url = serve_app.url
    body = {"model": "tiny", "prompt": ["Once upon", "a time"], "max_tokens": 4, "ignore_eos": True}
    with httpx.Client(timeout=120) as client:
        asked = client.post(url + COMP, json={**body, **ASK})
        bad = client.post(url + COMP, json={**body, "vllm_xargs": {"trail_return": "maybe"}})
    assert asked.status_code == 200, asked.text
    out = asked.json()
    check_sequences(out["trail"], [4, 4])  # one per prompt, in prompt order
    assert [s["request_id"] for s in out["trail"]["sequences"]] == [
        f"{out['id']}-0",
        f"{out['id']}-1",
    ]
    assert bad.status_code == 400 and HEADER not in bad.headers
    assert bad.json()["error"]["param"] == "vllm_xargs.trail_return"
