"""What the ingress takes from a request before routing it (no Ray): the predictor's text, the
prompt size, the output cap, the choices, TRAIL's vllm_xargs; and the guard in front of FastAPI
(API key, body size)."""

from __future__ import annotations

import asyncio

import pytest
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.entrypoints.openai.completion.protocol import CompletionRequest

from trail.serve.errors import OpenAIError
from trail.serve.guard import Guard, configure
from trail.serve.request_facts import (
    chat_facts,
    completion_facts,
    drop_unknown_fields,
    trail_extensions,
)


@pytest.fixture(scope="module")
def tokenizer(tiny_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_path)


def chat_req(**over) -> ChatCompletionRequest:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], **over}
    return ChatCompletionRequest.model_validate(body)


def test_chat_facts_count_the_templated_prompt_and_read_the_last_user_message(tokenizer):
    from trail.models.chat import chat_prompt_ids

    msgs = [
        {"role": "user", "content": "first"},
        {"role": "assistant", "content": "ok"},
        {"role": "user", "content": [{"type": "text", "text": "second"}]},
    ]
    facts = chat_facts(chat_req(messages=msgs, n=3), tokenizer, 512)
    assert facts.text == "second" and facts.n == 3 and facts.choices == 3
    one = chat_facts(chat_req(), tokenizer, 512)
    assert one.prompt_tokens == len(chat_prompt_ids(tokenizer, "hi"))
    assert one.max_tokens == 512 - one.prompt_tokens  # no max_tokens: the rest of the context
    assert chat_facts(chat_req(max_completion_tokens=7), tokenizer, 512).max_tokens == 7
    assert chat_facts(chat_req(max_tokens=9000), tokenizer, 512).max_tokens < 512  # vLLM's 400


def test_completion_facts_sum_prompts_and_decode_token_ids(tokenizer):
    two = CompletionRequest.model_validate({"model": "tiny", "prompt": ["a b", "c"], "n": 2})
    facts = completion_facts(two, tokenizer, 512)
    assert facts.prompts == 2 and facts.n == 2 and facts.text == "a b"
    assert facts.choices == 4  # n per prompt: the router is told 4 x the predicted length
    assert facts.max_tokens == 16  # vLLM's completions default
    ids = tokenizer("hello there")["input_ids"]
    by_ids = completion_facts(
        CompletionRequest.model_validate({"model": "tiny", "prompt": ids}), tokenizer, 512
    )
    assert by_ids.prompt_tokens == len(ids) and "hello there" in by_ids.text


def test_trail_extensions_come_from_vllm_xargs_and_the_rest_passes_on():
    ext = trail_extensions(
        chat_req(vllm_xargs={"trail_true_len": 40, "trail_use_max_tokens": False, "other": 1})
    )
    assert (ext.true_len, ext.use_max_tokens, ext.xargs) == (40, False, {"other": 1})
    plain = trail_extensions(chat_req())
    assert (plain.true_len, plain.use_max_tokens, plain.xargs) == (None, True, {})
    assert not plain.trail_return
    for flag in (True, 1, "true"):
        assert trail_extensions(chat_req(vllm_xargs={"trail_return": flag})).trail_return
    for flag in (False, 0, "false"):
        asked = trail_extensions(chat_req(vllm_xargs={"trail_return": flag}))
        assert not asked.trail_return and asked.xargs == {}  # never passed on as a plain xarg


@pytest.mark.parametrize(
    "over",
    [
        {"vllm_xargs": {"trail_true_len": 0}},
        {"vllm_xargs": {"trail_true_len": 2**40}},
        {"vllm_xargs": {"trail_true_len": 1.5}},
        {"vllm_xargs": {"trail_use_max_tokens": "maybe"}},
        {"vllm_xargs": {"trail_return": "yes please"}},
        {"vllm_xargs": {"trail_return": 2}},
        {"vllm_xargs": {"trail": "x"}},
        {"trail": {"true_len": 5}},  # the old body field: not silently ignored
    ],
)
def test_bad_trail_extensions_are_400(over):
    with pytest.raises(OpenAIError) as info:
        trail_extensions(chat_req(**over))
    assert info.value.status == 400 and info.value.param


def test_unknown_fields_are_dropped_before_the_hop():
    req = chat_req(logit_biass={}, deep=[[[[1]]]])
    drop_unknown_fields(req)
    assert not req.model_extra and req.model_dump()["messages"]


async def _app(scope, receive, send) -> None:  # noqa: ANN001 - the ASGI app behind the guard
    msg = await receive()
    body = f"got {len(msg['body'])}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def call_guard(
    path: str, body: bytes, headers: dict[str, str], chunk: int = 1000
) -> tuple[int, bytes]:
    scope = {
        "type": "http",
        "method": "POST",
        "path": path,
        "root_path": "",
        "headers": [(k.encode(), v.encode()) for k, v in headers.items()],
    }
    parts = [body[i : i + chunk] for i in range(0, len(body), chunk)] or [b""]
    messages = [
        {"type": "http.request", "body": p, "more_body": i < len(parts) - 1}
        for i, p in enumerate(parts)
    ]
    sent: list[dict] = []

    async def receive() -> dict:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict) -> None:
        sent.append(message)

    asyncio.run(Guard(_app)(scope, receive, send))
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_guard_limits_bodies_declared_or_streamed_and_replays_them_whole():
    configure(None, 4096)
    assert call_guard("/v1/chat/completions", b"x" * 3000, {}) == (200, b"got 3000")
    assert call_guard("/v1/chat/completions", b"x" * 5000, {})[0] == 413  # streamed
    declared = {"content-length": "5000"}
    assert call_guard("/v1/chat/completions", b"x" * 10, declared)[0] == 413


def test_guard_checks_the_key_on_v1_routes_like_vllm_serve():
    configure("s3cret", 4096)
    try:
        status, body = call_guard("/v1/models", b"", {})
        assert status == 401 and body == b'{"error":"Unauthorized"}'  # vllm serve's exact answer
        assert call_guard("/v1/models", b"", {"authorization": "Bearer wrong"})[0] == 401
        assert call_guard("/v1/models", b"", {"authorization": "Bearer s3cret"})[0] == 200
        assert call_guard("/health", b"", {})[0] == 200  # outside /v1: open, as in vLLM
    finally:
        configure(None, 1 << 20)
