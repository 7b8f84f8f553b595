"""A scripted OpenAI streaming server (httpx.MockTransport) for client-side tests."""

from __future__ import annotations

import asyncio
import json

import httpx


def sse(*events: dict) -> list[bytes]:
    return [f"data: {json.dumps(e)}\n\n".encode() for e in events] + [b"data: [DONE]\n\n"]


def chat_events(n: int = 3) -> list[dict]:
    role = {"choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}}]}
    toks = [{"choices": [{"index": 0, "delta": {"content": f"t{i}"}}]} for i in range(n)]
    toks[-1]["choices"][0]["finish_reason"] = "length"
    usage = {"choices": [], "usage": {"prompt_tokens": 9, "completion_tokens": n}}
    return [role, *toks, usage]


def transport(
    parts: list[bytes], status: int = 200, delay_s: float = 0.0, seen: list | None = None
):
    async def handler(request: httpx.Request) -> httpx.Response:
        if seen is not None:
            seen.append(json.loads(request.content))

        async def stream():
            for i, p in enumerate(parts):
                if i == 1:  # the role chunk first, then the model "thinks"
                    await asyncio.sleep(delay_s)
                yield p

        headers = {"content-type": "text/event-stream", "x-trail-replica": "rep1"}
        return httpx.Response(status, headers=headers, content=stream())

    return httpx.MockTransport(handler)
