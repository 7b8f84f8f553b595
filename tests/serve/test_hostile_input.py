"""Hostile input against the live app: a seeded, bounded schemathesis run over the OpenAPI spec
the app serves, and hand-picked nasty requests. Every answer is a 4xx in vLLM's error shape
(or a 200 where the input is in fact valid), never a 5xx, and the app serves afterwards. What
is valid is vLLM's call (its protocol models validate): tests/serve/test_vllm_parity.py checks
that against a real `vllm serve`.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.serve import chat, wait_idle

pytestmark = [pytest.mark.serve, pytest.mark.reliability]
CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
SPEC = Path(__file__).resolve().parents[2] / "docs" / "openapi.json"
FUZZ_EXAMPLES = 40  # per operation and generation mode; derandomized (seeded by the test)
FUZZ_MAX_TOKENS = 8  # generated output caps are lowered to this, to bound the run's time


def test_docs_openapi_json_is_current():
    from trail.cli.openapi import render

    assert SPEC.read_text() == render(), "run: .venv/bin/python -m trail.cli.openapi"


def test_the_pickled_app_ray_serve_runs_has_the_same_spec():
    """Ray Serve cloudpickles the FastAPI app into the replica; its spec must not drift."""
    from ray import cloudpickle

    from trail.serve.ingress import api

    assert cloudpickle.loads(cloudpickle.dumps(api)).openapi() == json.loads(SPEC.read_text())


def test_served_spec_documents_bodies_and_errors(serve_app):
    spec = without_empty_examples(httpx.get(serve_app.url + "/openapi.json", timeout=30).json())
    docs = json.loads(SPEC.read_text())
    assert spec == docs, differences(spec, docs)[:10]
    op = spec["paths"][CHAT]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/ChatCompletionRequest")
    assert {"400", "404", "413", "429"} <= set(op["responses"])
    body = spec["components"]["schemas"]["ChatCompletionRequest"]  # vLLM's own model
    assert "messages" in body["required"] and "vllm_xargs" in body["properties"]


def without_empty_examples(value: Any) -> Any:
    """Ray Serve's class ingress adds `"example": {}` to every body and path parameter of the
    FastAPI spec it serves (Ray 2.60); nothing else may differ."""
    if isinstance(value, dict):
        return {
            k: without_empty_examples(v)
            for k, v in value.items()
            if not (k == "example" and v == {})
        }
    if isinstance(value, list):
        return [without_empty_examples(v) for v in value]
    return value


def differences(a: Any, b: Any, at: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for key in sorted(set(a) | set(b), key=str):
            out += differences(a.get(key), b.get(key), f"{at}/{key}")
        return out
    return [] if a == b else [f"{at}: {json.dumps(a)[:600]} != {json.dumps(b)[:600]}"]


# ---- schemathesis ---------------------------------------------------------------------------
def pin_model(spec: dict[str, Any], model: str) -> dict[str, Any]:
    """Valid bodies name the served model (else nearly every one stops at a 404)."""
    for name in ("ChatCompletionRequest", "CompletionRequest"):
        spec["components"]["schemas"][name]["properties"]["model"]["enum"] = [model]
    return spec


def bound_output(body: Any) -> None:
    """Lower generated output caps (any valid int, or none: the whole context) to a few
    tokens, so a positive case costs a fraction of a second; invalid values stay as they are."""
    if not isinstance(body, dict):
        return
    for key in ("max_tokens", "max_completion_tokens"):
        if key not in body and key != "max_tokens":  # not every route has it
            continue
        value = body.get(key)
        if value is None or (type(value) is int and value > FUZZ_MAX_TOKENS):
            body[key] = FUZZ_MAX_TOKENS


def send(client: httpx.Client, case: Any, url: str) -> httpx.Response:
    """The case as schemathesis would send it, through httpx (schemathesis' own requests
    transport trips over urllib3-future, which another dependency installs in our venv)."""
    kw = case.as_transport_kwargs(base_url=url)
    body = {"json": kw["json"]} if "json" in kw else {"content": kw.get("data")}
    return client.request(
        kw["method"],
        kw["url"],
        headers=kw.get("headers"),
        params=kw.get("params"),
        cookies=kw.get("cookies"),
        **body,
    )


VLLM_MODELS = {  # the pydantic classes vllm serve (and our ingress) validate each body with
    CHAT: "vllm.entrypoints.openai.chat_completion.protocol:ChatCompletionRequest",
    COMPLETIONS: "vllm.entrypoints.openai.completion.protocol:CompletionRequest",
    "/tokenize": "vllm.entrypoints.serve.tokenize.protocol:TokenizeRequest",
    "/detokenize": "vllm.entrypoints.serve.tokenize.protocol:DetokenizeRequest",
}


def vllm_accepts(path: str, body: Any) -> bool:
    """Would vLLM's own request model take this body? Its models are pydantic in lax mode: a
    `true` is an int and "5" a number there, though the JSON Schema says otherwise."""
    import importlib

    from pydantic import TypeAdapter, ValidationError

    if path not in VLLM_MODELS or not isinstance(body, dict):
        return False
    module, name = VLLM_MODELS[path].split(":")
    try:  # a TypeAdapter: TokenizeRequest is a union of two models
        TypeAdapter(getattr(importlib.import_module(module), name)).validate_python(body)
    except (ValidationError, ValueError, TypeError):
        return False
    return True


def rejects_what_vllm_rejects(ctx, response, case):  # noqa: ANN001, ANN201
    """schemathesis' negative-data check, with vllm serve as the judge of what is invalid: an
    accepted negative body fails only if vLLM's own model for the route rejects it (CI found
    `{"tokens": [true]}` answered 200 on /detokenize — as vllm serve answers it)."""
    from schemathesis.specs.openapi.checks import negative_data_rejection

    negative = case.meta is not None and case.meta.generation.mode.is_negative
    if negative and response.status_code < 400 and vllm_accepts(case.operation.path, case.body):
        return None
    return negative_data_rejection(ctx, response, case)


def fuzz_operation(op, mode, client, url, checks, statuses, failures) -> None:  # noqa: ANN001
    """FUZZ_EXAMPLES derandomized cases of one operation; statuses counted, failures kept."""
    from hypothesis import HealthCheck, Phase, given, settings
    from hypothesis.errors import Unsatisfiable

    tag = f"{op.label} {mode.value}"

    @settings(
        max_examples=FUZZ_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],  # no shrinking against a live app
        suppress_health_check=list(HealthCheck),
    )
    @given(case=op.as_strategy(generation_mode=mode))
    def run(case) -> None:  # noqa: ANN001
        bound_output(case.body)
        response = send(client, case, url)
        statuses[f"{tag} {response.status_code}"] += 1
        try:
            case.validate_response(response, checks=checks)
        except Exception as err:  # FailureGroup: collect, report all at the end
            failures.append(f"{tag}: {err}"[:1500])

    try:
        run()
    except Unsatisfiable:  # nothing to negate (a free-form string path parameter)
        print(f"fuzz: {tag}: no invalid input exists")


def test_fuzz_the_live_api_never_5xx(serve_app):
    import schemathesis
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import (
        content_type_conformance,
        response_schema_conformance,
        status_code_conformance,
    )

    url = serve_app.url
    checks = [
        not_a_server_error,
        status_code_conformance,
        content_type_conformance,
        response_schema_conformance,
        schemathesis.check(rejects_what_vllm_rejects),
    ]
    raw = httpx.get(url + "/openapi.json", timeout=30).json()
    schema = schemathesis.openapi.from_dict(pin_model(raw, "tiny"))
    statuses: Counter[str] = Counter()
    failures: list[str] = []
    t0 = time.monotonic()
    with httpx.Client(timeout=120) as client:
        for result in schema.get_all_operations():
            op = result.ok()
            has_input = op.body or any(True for _ in op.iter_parameters())
            modes = [GenerationMode.POSITIVE] + ([GenerationMode.NEGATIVE] if has_input else [])
            for mode in modes:
                fuzz_operation(op, mode, client, url, checks, statuses, failures)
    wall_s = time.monotonic() - t0
    total = sum(statuses.values())
    by_status = Counter()
    for key, n in statuses.items():
        by_status[key.rsplit(" ", 1)[1]] += n
    print(f"\nfuzz: {total} requests in {wall_s:.0f}s; statuses {dict(sorted(by_status.items()))}")
    for key, n in sorted(statuses.items()):
        print(f"  {key}: {n}")
    assert not failures, "\n\n".join(failures[:10])
    assert not any(s.startswith("5") for s in by_status), by_status
    assert httpx.get(url + "/health", timeout=10).json() == {"status": "ok"}
    wait_idle(serve_app.load_dir)


# ---- hand-picked ----------------------------------------------------------------------------
def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


def raw(text: str) -> bytes:
    return text.encode()


BASE = chat(max_tokens=4)
MSG = {"role": "user", "content": "hi"}
OK_OR_400 = {200, 400}
VLLM_ACCEPTS = {200}  # lax by vLLM's models (coerced, defaulted or ignored), as vllm serve does
CASES: list[tuple[str, str, Any, set[int]]] = [
    # id, route, body (dict: JSON; bytes: raw), allowed statuses
    ("huge-prompt", CHAT, chat("word " * 3000, max_tokens=4), {400}),
    ("prompt-fills-context", CHAT, chat("word " * 500), {400}),
    ("5000-messages", CHAT, {**BASE, "messages": [MSG] * 5000}, {400}),
    ("10MB-body", CHAT, chat("x" * 10_000_000), {413}),
    ("max_tokens=-1", CHAT, {**BASE, "max_tokens": -1}, {400}),
    ("max_tokens=0", CHAT, {**BASE, "max_tokens": 0}, {400}),
    ("max_tokens=1e12", CHAT, {**BASE, "max_tokens": 10**12}, {400}),
    ("max_tokens=abc", CHAT, {**BASE, "max_tokens": "abc"}, {400}),
    ("max_tokens=1.5", CHAT, {**BASE, "max_tokens": 1.5}, {400}),
    ("max_tokens=[]", CHAT, {**BASE, "max_tokens": []}, {400}),
    ("max_tokens-5000-digits", CHAT, raw('{"max_tokens": 1' + "0" * 5000 + "}"), {400}),
    ("max_completion_tokens=-3", CHAT, {**BASE, "max_completion_tokens": -3}, {400}),
    ("temperature=hot", CHAT, {**BASE, "temperature": "hot"}, {400}),
    ("temperature=1e400", CHAT, raw(json.dumps(BASE)[:-1] + ', "temperature": 1e400}'), {400}),
    ("temperature=NaN", CHAT, raw(json.dumps(BASE)[:-1] + ', "temperature": NaN}'), {400}),
    ("rep-penalty=Infinity", CHAT, raw(json.dumps(BASE)[:-1] + ', "repetition_penalty": Infinity}'), {400}),
    ("rep-penalty=1e308", CHAT, {**BASE, "repetition_penalty": 1e308}, {200}),
    ("top_p=[1]", CHAT, {**BASE, "top_p": [1]}, {400}),
    ("stream=yes", CHAT, {**BASE, "stream": "yes"}, VLLM_ACCEPTS),
    ("stream=true-string", CHAT, {**BASE, "stream": "true"}, VLLM_ACCEPTS),
    ("max_tokens=true", CHAT, {**BASE, "max_tokens": True}, VLLM_ACCEPTS),
    ("max_tokens=string-5", CHAT, {**BASE, "max_tokens": "5"}, VLLM_ACCEPTS),
    ("stream=2", CHAT, {**BASE, "stream": 2}, {400}),
    ("stop=5", CHAT, {**BASE, "stop": 5}, {400}),
    ("stop-empty", CHAT, {**BASE, "stop": ""}, {400}),
    ("stop-list-empty-string", CHAT, {**BASE, "stop": ["a", ""]}, {400}),
    ("seed=2**70", CHAT, {**BASE, "seed": 2**70}, {400}),
    ("seed=-1", CHAT, {**BASE, "seed": -1}, {200}),
    ("seed=x", CHAT, {**BASE, "seed": "x"}, {400}),
    ("true_len=1e30", CHAT, {**BASE, "vllm_xargs": {"trail_true_len": 10**30}}, {400}),
    ("true_len=0", CHAT, {**BASE, "vllm_xargs": {"trail_true_len": 0}}, {400}),
    ("true_len=string", CHAT, {**BASE, "vllm_xargs": {"trail_true_len": "5"}}, {400}),
    ("use_max_tokens=maybe", CHAT, {**BASE, "vllm_xargs": {"trail_use_max_tokens": "maybe"}}, {400}),
    ("xargs-trail-reserved", CHAT, {**BASE, "vllm_xargs": {"trail": 1}}, {400}),
    ("trail-object-moved", CHAT, {**BASE, "trail": {"true_len": 5}}, {400}),
    ("trail=list", CHAT, {**BASE, "trail": [1]}, {400}),
    ("n=2", CHAT, {**BASE, "n": 2}, VLLM_ACCEPTS),
    ("model=123", CHAT, {**BASE, "model": 123}, {400}),
    ("model-missing", CHAT, {"messages": [MSG]}, VLLM_ACCEPTS),
    ("model-unknown", CHAT, {**BASE, "model": "gpt-4"}, {404}),
    ("messages=string", CHAT, {**BASE, "messages": "hi"}, {400}),
    ("messages=[1]", CHAT, {**BASE, "messages": [1]}, {400}),
    ("messages-empty", CHAT, {**BASE, "messages": []}, {400}),
    ("messages-null", CHAT, {**BASE, "messages": None}, {400}),
    ("content-null", CHAT, {**BASE, "messages": [{"role": "user", "content": None}]}, {400}),
    ("content-empty", CHAT, {**BASE, "messages": [{"role": "user", "content": ""}]}, {200}),
    ("content=5", CHAT, {**BASE, "messages": [{"role": "user", "content": 5}]}, {400}),
    ("content-dict", CHAT, {**BASE, "messages": [{"role": "user", "content": {"a": 1}}]}, {400}),
    ("content-image-part", CHAT, {**BASE, "messages": [{"role": "user", "content": [{"type": "image_url", "image_url": "x"}]}]}, {400}),
    ("role=robot", CHAT, {**BASE, "messages": [{"role": "robot", "content": "hi"}]}, VLLM_ACCEPTS),
    ("role-missing", CHAT, {**BASE, "messages": [{"content": "hi"}]}, {400}),
    ("only-system", CHAT, {**BASE, "messages": [{"role": "system", "content": "be brief"}]}, OK_OR_400),
    ("assistant-first", CHAT, {**BASE, "messages": [{"role": "assistant", "content": "hi"}] * 3}, OK_OR_400),
    ("unknown-field", CHAT, {**BASE, "logit_biass": {}}, VLLM_ACCEPTS),
    ("unknown-field-in-message", CHAT, {**BASE, "messages": [{**MSG, "x": 1}]}, VLLM_ACCEPTS),
    ("unknown-field-stream_options", CHAT, {**BASE, "stream_options": {"x": True}}, {400}),
    ("nested-10k-body", CHAT, raw(nested(10_000)), {400}),
    ("nested-10k-field", CHAT, raw(json.dumps(BASE)[:-1] + ', "x": ' + nested(10_000) + "}"), {400}),
    ("nested-10k-content", CHAT, raw('{"model": "tiny", "messages": [{"role": "user", "content": ' + nested(10_000) + "}]}"), {400}),
    ("nested-500-field", CHAT, raw(json.dumps(BASE)[:-1] + ', "x": ' + nested(500) + "}"), VLLM_ACCEPTS),
    ("invalid-utf8", CHAT, b'{"model": "tiny", "messages": [{"role": "user", "content": "\xff\xfe\xc3"}]}', {400}),
    ("lone-surrogate", CHAT, raw('{"model": "tiny", "max_tokens": 4, "messages": [{"role": "user", "content": "a\\ud800b"}]}'), {400}),
    ("surrogate-pair", CHAT, raw('{"model": "tiny", "max_tokens": 4, "messages": [{"role": "user", "content": "a\\ud83d\\ude00b"}]}'), {200}),
    ("nul-and-controls", CHAT, chat("a\u0000b\u0007\u001b[31m", max_tokens=4), {200}),
    ("not-json", CHAT, b"{oops", {400}),
    ("empty-body", CHAT, b"", {400}),
    ("json-null", CHAT, b"null", {400}),
    ("json-array", CHAT, b"[]", {400}),
    ("json-number", CHAT, b"123", {400}),
    ("duplicate-keys", CHAT, raw('{"model": "x", "model": "tiny", "max_tokens": 4, "messages": [{"role": "user", "content": "hi"}]}'), {200}),
    ("prompt-empty", COMPLETIONS, {"model": "tiny", "prompt": ""}, {400}),
    ("prompt-empty-list", COMPLETIONS, {"model": "tiny", "prompt": []}, {400}),
    ("prompt-negative-ids", COMPLETIONS, {"model": "tiny", "prompt": [-1, 5]}, {400}),
    ("prompt-huge-ids", COMPLETIONS, {"model": "tiny", "prompt": [10**20]}, {400}),
    ("prompt-list-of-strings", COMPLETIONS, {"model": "tiny", "prompt": ["a", "b"]}, VLLM_ACCEPTS),
    ("prompt=5", COMPLETIONS, {"model": "tiny", "prompt": 5}, {400}),
    ("prompt-lone-surrogate", COMPLETIONS, raw('{"model": "tiny", "max_tokens": 2, "prompt": "\\udfff"}'), {400}),
    ("prompt-ids-too-many", COMPLETIONS, {"model": "tiny", "prompt": [5] * 600}, {400}),
    ("prompt-ids-ok", COMPLETIONS, {"model": "tiny", "prompt": [5, 6, 7], "max_tokens": 2}, {200}),
]  # fmt: skip


def assert_error_shape(r: httpx.Response) -> None:
    """vLLM's error body: message, type, param, and the status as `code`."""
    err = r.json()["error"]
    assert err["message"] and err["type"] and "param" in err and err["code"] == r.status_code, err


@pytest.mark.parametrize("route, body, allowed", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hand_picked_hostile_requests(serve_app, route, body, allowed):
    url = serve_app.url
    kw = {"content": body} if isinstance(body, bytes) else {"json": body}
    headers = {"content-type": "application/json"}
    r = httpx.post(url + route, timeout=60, headers=headers, **kw)
    assert r.status_code in allowed, (r.status_code, r.text[:500])
    if r.status_code != 200:
        assert_error_shape(r)
    assert httpx.get(url + "/health", timeout=10).status_code == 200


@pytest.mark.parametrize(
    "content_type, body, status",
    [
        ("text/plain", json.dumps(BASE), 400),  # vLLM's rule: only application/json
        ("application/x-www-form-urlencoded", "model=tiny&max_tokens=4", 400),
        ("multipart/form-data; boundary=x", "--x\r\n\r\nhi\r\n--x--", 400),
        ("application/json; charset=latin-1", json.dumps(BASE), 200),
    ],
)
def test_content_types(serve_app, content_type, body, status):
    r = httpx.post(
        serve_app.url + CHAT, content=body, headers={"content-type": content_type}, timeout=60
    )
    assert r.status_code == status, r.text[:300]
    if status != 200:
        assert_error_shape(r)


def test_oversized_bodies_are_refused_declared_or_streamed(serve_app):
    """413 whether the size is declared (Content-Length) or only seen while reading (chunked)."""
    url, big = serve_app.url, json.dumps(chat("x" * 3_000_000)).encode()

    def chunks():
        for i in range(0, len(big), 65536):
            yield big[i : i + 65536]

    json_type = {"content-type": "application/json"}
    declared = httpx.post(url + CHAT, content=big, headers=json_type, timeout=60)
    streamed = httpx.post(url + CHAT, content=chunks(), headers=json_type, timeout=60)
    for r in (declared, streamed):
        assert r.status_code == 413
        assert_error_shape(r)


def test_wrong_methods_and_routes_are_openai_4xx(serve_app):
    url = serve_app.url
    for method, path, status in [
        ("GET", CHAT, 405),
        ("PUT", COMPLETIONS, 405),
        ("DELETE", "/v1/models", 405),
        ("GET", "/v1/../../etc/passwd", 404),
        ("GET", "/v1/trail/requests/%00%ff", 404),
    ]:
        r = httpx.request(method, url + path, timeout=30)
        assert r.status_code == status, (method, path, r.status_code, r.text[:200])
        assert r.json()["error"]["message"]


def test_still_serving_after_hostile_input(serve_app):
    url = serve_app.url
    r = httpx.post(url + CHAT, json=chat("Hello!", max_tokens=6, ignore_eos=True), timeout=60)
    assert r.status_code == 200 and r.json()["usage"]["completion_tokens"] == 6
    wait_idle(serve_app.load_dir)
