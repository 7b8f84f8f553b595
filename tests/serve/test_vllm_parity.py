"""Parity with `vllm serve`: the same requests to the real vLLM OpenAI API server (same model,
same engine settings, FCFS) and to our app must get the same status codes, the same response
shape field by field, and — for greedy requests — identical text and token counts.

Requests go one at a time, so the TRAIL scheduler's order cannot change a greedy result. What
differs on purpose: ids, timestamps, and our x-trail-* headers.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from tests.support.vllm_server import vllm_serve

pytestmark = pytest.mark.serve
FLAGS = ["--enable-auto-tool-choice", "--tool-call-parser", "pythonic"]
ENGINE_FLAGS = ["--dtype", "float32", "--max-model-len", "512", "--max-num-seqs", "4"]
VOLATILE = {"id", "created", "system_fingerprint"}
MSG = [{"role": "user", "content": "Tell me about the sea."}]
TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
SCHEMA = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}


def chat(**kw: Any) -> dict[str, Any]:
    return {"model": "tiny", "messages": MSG, "max_tokens": 8, "temperature": 0, **kw}


def comp(**kw: Any) -> dict[str, Any]:
    return {"model": "tiny", "prompt": "Once upon a time", "max_tokens": 8, "temperature": 0, **kw}


C, P = "/v1/chat/completions", "/v1/completions"
CASES: list[tuple[str, str, str, Any]] = [
    # valid: every sampling and output feature
    ("chat", "POST", C, chat()),
    ("chat n=2", "POST", C, chat(n=2)),
    ("chat logprobs", "POST", C, chat(logprobs=True, top_logprobs=3)),
    ("chat stream", "POST", C, chat(stream=True)),
    ("chat stream usage", "POST", C, chat(stream=True, stream_options={"include_usage": True})),
    ("chat stream n=2", "POST", C, chat(stream=True, n=2)),
    ("chat stop", "POST", C, chat(stop=["the", "."])),
    ("chat stop_token_ids", "POST", C, chat(stop_token_ids=[13, 29889])),
    ("chat min_tokens", "POST", C, chat(min_tokens=6, max_tokens=6)),
    ("chat max_completion_tokens", "POST", C, {**chat(), "max_completion_tokens": 5}),
    (
        "chat penalties",
        "POST",
        C,
        chat(presence_penalty=0.5, frequency_penalty=0.5, repetition_penalty=1.2),
    ),
    (
        "chat top_k/top_p/min_p",
        "POST",
        C,
        chat(temperature=0.8, top_k=5, top_p=0.9, min_p=0.05, seed=7),
    ),
    ("chat ignore_eos", "POST", C, chat(ignore_eos=True)),
    ("chat json_object", "POST", C, chat(response_format={"type": "json_object"})),
    (
        "chat json_schema",
        "POST",
        C,
        chat(
            response_format={"type": "json_schema", "json_schema": {"name": "x", "schema": SCHEMA}}
        ),
    ),
    ("chat choice", "POST", C, chat(structured_outputs={"choice": ["yes", "no"]})),
    ("chat regex", "POST", C, chat(structured_outputs={"regex": "[0-9]{3}"})),
    ("chat tools auto", "POST", C, chat(tools=[TOOL], tool_choice="auto")),
    (
        "chat tools named",
        "POST",
        C,
        chat(tools=[TOOL], tool_choice={"type": "function", "function": {"name": "get_weather"}}),
    ),
    ("chat tools none", "POST", C, chat(tools=[TOOL], tool_choice="none")),
    ("chat prompt_logprobs", "POST", C, chat(prompt_logprobs=1)),
    (
        "chat system + multi-turn",
        "POST",
        C,
        chat(
            messages=[
                {"role": "system", "content": "Be brief."},
                *MSG,
                {"role": "assistant", "content": "It is big."},
                {"role": "user", "content": "More?"},
            ]
        ),
    ),
    (
        "chat content parts",
        "POST",
        C,
        chat(messages=[{"role": "user", "content": [{"type": "text", "text": "Hello"}]}]),
    ),
    ("chat logit_bias", "POST", C, chat(logit_bias={"13": -100, "29889": 5})),
    ("chat bad_words", "POST", C, chat(bad_words=["the", "sea"])),
    ("chat allowed_token_ids", "POST", C, chat(allowed_token_ids=[450, 7205, 338, 13])),
    ("chat include_stop_str", "POST", C, chat(stop=["."], include_stop_str_in_output=True)),
    ("chat skip_special_tokens off", "POST", C, chat(skip_special_tokens=False)),
    ("chat truncate_prompt_tokens", "POST", C, chat(truncate_prompt_tokens=6)),
    ("chat greedy seed", "POST", C, chat(seed=11)),
    (
        "chat echo",
        "POST",
        C,
        {**chat(echo=True), "messages": [*MSG, {"role": "assistant", "content": "The"}]},
    ),
    ("chat stream logprobs", "POST", C, chat(stream=True, logprobs=True, top_logprobs=2)),
    ("chat structured json", "POST", C, chat(structured_outputs={"json": SCHEMA})),
    ("completion", "POST", P, comp()),
    ("completion echo", "POST", P, comp(echo=True)),
    ("completion logprobs", "POST", P, comp(logprobs=2)),
    ("completion token ids", "POST", P, comp(prompt=[1, 450, 7205, 338])),
    ("completion two prompts", "POST", P, comp(prompt=["Hello", "The sky is"])),
    ("completion n=2", "POST", P, comp(n=2)),
    (
        "completion stream usage",
        "POST",
        P,
        comp(stream=True, stream_options={"include_usage": True}),
    ),
    ("completion stop", "POST", P, comp(stop=[" a"])),
    ("completion prompt_logprobs", "POST", P, comp(prompt_logprobs=2)),
    (
        "completion default max_tokens",
        "POST",
        P,
        {"model": "tiny", "prompt": "Hi", "temperature": 0},
    ),
    ("tokenize prompt", "POST", "/tokenize", {"model": "tiny", "prompt": "Hello world"}),
    ("tokenize messages", "POST", "/tokenize", {"model": "tiny", "messages": MSG}),
    ("detokenize", "POST", "/detokenize", {"model": "tiny", "tokens": [1, 450, 7205]}),
    ("models", "GET", "/v1/models", None),
    # invalid: the same 4xx, the same error shape
    ("not json", "POST", C, b"{oops"),
    ("not an object", "POST", C, [1, 2]),
    ("no messages", "POST", C, {"model": "tiny"}),
    ("unknown model", "POST", C, chat(model="nope")),
    ("negative max_tokens", "POST", C, chat(max_tokens=-5)),
    ("max_tokens beyond context", "POST", C, chat(max_tokens=100000)),
    (
        "prompt beyond context",
        "POST",
        C,
        chat(messages=[{"role": "user", "content": "word " * 700}]),
    ),
    ("temperature string", "POST", C, chat(temperature="hot")),
    ("n=0", "POST", C, chat(n=0)),
    ("top_logprobs without logprobs", "POST", C, chat(top_logprobs=3)),
    ("top_logprobs too many", "POST", C, chat(logprobs=True, top_logprobs=50)),
    ("stream_options without stream", "POST", C, chat(stream_options={"include_usage": True})),
    ("bad response_format", "POST", C, chat(response_format={"type": "xml"})),
    ("stop not a string", "POST", C, chat(stop=5)),
    ("bad role", "POST", C, chat(messages=[{"role": "wizard", "content": "hi"}])),
    (
        "tool_choice without tools",
        "POST",
        C,
        chat(tool_choice={"type": "function", "function": {"name": "x"}}),
    ),
    ("completion no prompt", "POST", P, {"model": "tiny"}),
    ("completion bad token id", "POST", P, comp(prompt=[10**9])),
    ("completion logprobs too many", "POST", P, comp(logprobs=50)),
    ("tokenize no input", "POST", "/tokenize", {"model": "tiny"}),
]


def send(client: httpx.Client, url: str, method: str, path: str, body: Any) -> httpx.Response:
    if method == "GET":
        return client.get(url + path)
    if isinstance(body, bytes):
        return client.post(url + path, content=body, headers={"content-type": "application/json"})
    return client.post(url + path, json=body)


def shape(value: Any) -> Any:
    """Keys, list lengths and leaf types, recursively; volatile values left out."""
    if isinstance(value, dict):
        return {k: "*" if k in VOLATILE else shape(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def keys(value: Any) -> Any:
    """The field structure alone: leaves as "*", a list as its distinct element structures. In
    a stream, whether an event carries a finish reason or text, and how many tokens (so how
    many logprob entries) it holds, depends on how deltas were merged — a CI run under load
    merged 7 tokens into one event where vLLM's own server, read promptly, sent one each."""
    if isinstance(value, dict):
        return {k: "*" if k in VOLATILE else keys(v) for k, v in sorted(value.items())}
    if isinstance(value, list):
        return sorted({json.dumps(keys(v)) for v in value})
    return "*"


def events(text: str) -> list[Any]:
    out = []
    for line in text.splitlines():
        if line.startswith("data: "):
            data = line[len("data: ") :]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


def strip_volatile(value: Any) -> Any:
    """Everything but ids and timestamps; floats rounded (logprobs of two runs of one model)."""
    if isinstance(value, dict):
        return {
            k: strip_volatile(v)
            for k, v in value.items()
            if k not in VOLATILE and k != "permission"
        }
    if isinstance(value, list):
        return [strip_volatile(v) for v in value]
    if isinstance(value, float):
        return round(value, 2)
    return value


@pytest.fixture(scope="module")
def vllm_url(tiny_path, serve_app) -> Any:  # noqa: ARG001 - our app first: it owns Ray
    with vllm_serve(tiny_path, "tiny", *ENGINE_FLAGS, "--enforce-eager", *FLAGS) as url:
        yield url


def test_same_requests_get_the_same_answers_as_vllm_serve(serve_app, vllm_url):
    assert len(CASES) >= 40
    mismatches = []
    with httpx.Client(timeout=120) as client:
        for name, method, path, body in CASES:
            ours = send(client, serve_app.url, method, path, body)
            theirs = send(client, vllm_url, method, path, body)
            problem = compare(
                ours, theirs, greedy=isinstance(body, dict) and body.get("temperature") == 0
            )
            if problem:
                mismatches.append(f"{name}: {problem}")
    assert not mismatches, "\n".join(mismatches)


def merged(stream: list[Any]) -> dict[str, Any]:
    """A stream's sum: text and finish reason per choice, the usage, the event shapes. How many
    tokens one event carries depends on timing (vLLM merges the deltas a slow reader missed),
    so the number of events is not compared, only what they add up to."""
    text: dict[int, str] = {}
    finish: dict[int, Any] = {}
    usage = None
    for event in stream:
        if event == "[DONE]":
            continue
        usage = event.get("usage") or usage
        for c in event.get("choices") or []:
            piece = (c.get("delta") or {}).get("content") or c.get("text") or ""
            text[c["index"]] = text.get(c["index"], "") + piece
            finish[c["index"]] = c.get("finish_reason") or finish.get(c["index"])
    mid = [e for e in stream[1:] if is_mid_stream(e)]
    edge = stream[:1] + [e for e in stream[1:] if not is_mid_stream(e)]
    return {
        "text": text,
        "finish": finish,
        "usage": usage,
        "shapes": sorted({json.dumps(keys(e)) for e in edge}),
        "mid_shapes": sorted({json.dumps(keys(e)) for e in mid}),
        "done": stream[-1],
    }


def is_mid_stream(event: Any) -> bool:
    """A token event before the end: a slow reader can get none at all (a CI run under load got
    every token merged into the final event), so its shape is compared only where both have one."""
    choices = event.get("choices") if isinstance(event, dict) else None
    return (
        bool(choices)
        and not event.get("usage")
        and all(not c.get("finish_reason") for c in choices)
    )


def compare_streams(a: list[Any], b: list[Any], greedy: bool) -> str | None:
    ma, mb = merged(a), merged(b)
    if (ma["shapes"], ma["done"]) != (mb["shapes"], mb["done"]):
        return f"event shapes differ:\n  ours   {ma['shapes']}\n  theirs {mb['shapes']}"
    if ma["mid_shapes"] and mb["mid_shapes"] and ma["mid_shapes"] != mb["mid_shapes"]:
        return (
            f"token event shapes differ:\n  ours   {ma['mid_shapes']}\n  theirs {mb['mid_shapes']}"
        )
    if greedy and (ma["text"], ma["finish"], ma["usage"]) != (
        mb["text"],
        mb["finish"],
        mb["usage"],
    ):
        return f"stream content differs:\n  ours   {ma}\n  theirs {mb}"
    return None


def compare(ours: httpx.Response, theirs: httpx.Response, greedy: bool) -> str | None:
    if ours.status_code != theirs.status_code:
        return f"status {ours.status_code} vs {theirs.status_code}: {ours.text[:300]} | {theirs.text[:300]}"
    streamed = theirs.headers.get("content-type", "").startswith("text/event-stream")
    if streamed:
        return compare_streams(events(ours.text), events(theirs.text), greedy)
    a, b = ours.json(), theirs.json()
    if shape(a) != shape(b):
        return f"shape differs:\n  ours   {json.dumps(shape(a))[:600]}\n  theirs {json.dumps(shape(b))[:600]}"
    if theirs.status_code >= 400:
        ea, eb = a["error"], b["error"]
        if isinstance(eb, dict) and (ea["type"], ea["param"], ea["code"]) != (
            eb["type"],
            eb["param"],
            eb["code"],
        ):
            return f"error differs: {ea} vs {eb}"
        return None
    if greedy and strip_volatile(a) != strip_volatile(b):
        return f"content differs:\n  ours   {json.dumps(strip_volatile(a))[:600]}\n  theirs {json.dumps(strip_volatile(b))[:600]}"
    return None
