"""Request validation without Ray: OpenAI-style 4xx decisions and the engine inputs."""

from __future__ import annotations

import json

import pytest

from trail.serve.errors import OpenAIError
from trail.serve.schemas import ChatCompletionRequest, CompletionRequest
from trail.serve.validation import (
    check_bearer,
    check_model,
    parse_body,
    prepare_chat,
    prepare_completion,
    sampling_kwargs,
)

pytestmark = pytest.mark.serve


@pytest.fixture(scope="module")
def tokenizer(tiny_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(tiny_path)


def chat_body(**over) -> bytes:
    body = {"model": "tiny", "messages": [{"role": "user", "content": "hi"}], **over}
    return json.dumps(body).encode()


def error_of(raw: bytes, model=ChatCompletionRequest) -> OpenAIError:
    with pytest.raises(OpenAIError) as info:
        parse_body(raw, model)
    return info.value


@pytest.mark.parametrize(
    "raw, param, code",
    [
        (b"{not json", None, "invalid_json"),
        (b"[1, 2]", None, "invalid_json"),
        (chat_body(max_tokens=-1), "max_tokens", "invalid_value"),
        (chat_body(temperature=2.5), "temperature", "invalid_value"),
        (chat_body(n=2), "n", "invalid_value"),
        (chat_body(top_p=0), "top_p", "invalid_value"),
        (chat_body(stop=["a", "b", "c", "d", "e"]), "stop", "invalid_value"),
        (chat_body(logit_bias_typo=1), "logit_bias_typo", "unknown_parameter"),
        (chat_body(messages=[]), "messages", "invalid_value"),
        (chat_body(logprobs=True), "logprobs", "invalid_value"),
        (chat_body(top_logprobs=2), "top_logprobs", "invalid_value"),
        (chat_body(stop=5), "stop", "invalid_value"),  # not "stop.str": union members unnamed
        (
            json.dumps({"messages": [{"role": "user", "content": "x"}]}).encode(),
            "model",
            "missing_required_parameter",
        ),
    ],
)
def test_bad_bodies_are_400_with_the_offending_param(raw, param, code):
    err = error_of(raw)
    assert err.status == 400
    body = err.body()["error"]
    assert body["type"] == "invalid_request_error"
    assert body["param"] == param and body["code"] == code
    assert body["message"]


def test_clients_that_send_logprobs_off_are_accepted():
    """`vllm bench serve` and SDKs send `logprobs: null/false/0`: not an unknown field."""
    parse_body(chat_body(logprobs=False, top_logprobs=0), ChatCompletionRequest)
    raw = json.dumps({"model": "tiny", "prompt": "x", "logprobs": None}).encode()
    parse_body(raw, CompletionRequest)
    bad = json.dumps({"model": "tiny", "prompt": "x", "logprobs": 1}).encode()
    assert error_of(bad, CompletionRequest).param == "logprobs"


def test_unknown_model_is_404():
    req = parse_body(chat_body(model="gpt-9"), ChatCompletionRequest)
    with pytest.raises(OpenAIError) as info:
        check_model(req, "tiny")
    assert info.value.status == 404 and info.value.code == "model_not_found"


def test_prompt_too_long_is_context_length_exceeded(tokenizer):
    long = parse_body(
        chat_body(messages=[{"role": "user", "content": "word " * 600}]), ChatCompletionRequest
    )
    with pytest.raises(OpenAIError) as info:
        prepare_chat(long, tokenizer, max_model_len=512)
    assert info.value.code == "context_length_exceeded" and info.value.status == 400
    short = parse_body(chat_body(max_tokens=600), ChatCompletionRequest)
    with pytest.raises(OpenAIError) as info:
        prepare_chat(short, tokenizer, max_model_len=512)
    assert info.value.param == "max_tokens"


def test_chat_uses_the_chat_template_and_fills_max_tokens(tokenizer):
    from trail.models.chat import chat_prompt_ids

    req = parse_body(chat_body(), ChatCompletionRequest)
    prepared = prepare_chat(req, tokenizer, max_model_len=512)
    assert prepared.prompt_token_ids == chat_prompt_ids(tokenizer, "hi")
    assert prepared.max_tokens == 512 - len(prepared.prompt_token_ids)
    assert prepared.predictor_text == "hi"
    kw = sampling_kwargs(req, prepared.max_tokens)
    assert kw["max_tokens"] == prepared.max_tokens and kw["stop"] is None


def test_completion_token_ids_are_range_checked(tokenizer):
    req = parse_body(b'{"model": "tiny", "prompt": [1, 99999999]}', CompletionRequest)
    with pytest.raises(OpenAIError):
        prepare_completion(req, tokenizer, max_model_len=512)
    ok = parse_body(b'{"model": "tiny", "prompt": [1, 2, 3], "max_tokens": 4}', CompletionRequest)
    assert prepare_completion(ok, tokenizer, 512).prompt_token_ids == [1, 2, 3]


def test_bearer_key_when_configured():
    check_bearer(None, None)  # no key configured: open
    check_bearer("Bearer s3cret", "s3cret")
    for header in (None, "Bearer wrong", "s3cret"):
        with pytest.raises(OpenAIError) as info:
            check_bearer(header, "s3cret")
        assert info.value.status == 401 and info.value.code == "invalid_api_key"
