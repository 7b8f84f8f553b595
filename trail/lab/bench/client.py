"""One streamed OpenAI request, timed from the client's side.

TTFT is the time to the first chunk that carries generated text (a chat stream's first chunk,
the assistant role with empty content, is not a token); latency ends at the last chunk; the
output token count comes from the stream's usage chunk (counted chunks if a server omits it).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import httpx

from trail.lab.workload.requests import BenchRequest

Endpoint = Literal["chat", "completions"]
Mode = Literal["exact", "natural"]
PATHS = {"chat": "/v1/chat/completions", "completions": "/v1/completions"}


@dataclass
class Record:
    """What one request did, as a JSONL row. Times are seconds; `sent_s` is from run start."""

    id: str
    sent_s: float
    expected_tokens: int
    ok: bool = False
    ttft_s: float | None = None
    latency_s: float | None = None
    out_tokens: int = 0
    prompt_tokens: int | None = None
    finish_reason: str | None = None
    replica: str | None = None
    error: str | None = None
    max_stall_s: float = 0.0  # the longest wait between text chunks after the first

    @property
    def tpot_s(self) -> float | None:
        """Mean time per output token after the first (None for 1-token outputs)."""
        if not self.ok or self.out_tokens < 2 or self.latency_s is None or self.ttft_s is None:
            return None
        return (self.latency_s - self.ttft_s) / (self.out_tokens - 1)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "tpot_s": self.tpot_s}


def make_body(
    req: BenchRequest,
    model: str,
    endpoint: Endpoint = "chat",
    mode: Mode = "exact",
    max_out: int | None = None,
    send_true_len: bool = False,
) -> dict[str, Any]:
    """exact: ignore_eos + max_tokens = the request's length, so every run does identical work.
    natural: greedy up to EOS under one common cap (no per-request length reaches the server).
    `send_true_len` adds TRAIL's `trail_true_len` (the oracle policy needs it). TRAIL's
    extensions travel in `vllm_xargs`, as vLLM passes extra sampling arguments."""
    body: dict[str, Any] = {"model": model, "temperature": 0.0, "stream": True}
    body["stream_options"] = {"include_usage": True}
    if endpoint == "chat":
        body["messages"] = [{"role": "user", "content": req.prompt}]
    else:
        body["prompt"] = req.prompt
    xargs: dict[str, Any] = {}
    if mode == "exact":
        body["max_tokens"] = req.out_tokens
        body["ignore_eos"] = True
        # max_tokens is the answer here: TRAIL-serve must not rank by it (vLLM ignores this)
        xargs["trail_use_max_tokens"] = False
    else:
        body["max_tokens"] = max_out or req.out_tokens
    if send_true_len:
        xargs["trail_true_len"] = req.out_tokens
    if xargs:
        body["vllm_xargs"] = xargs
    return body


def _text(event: dict[str, Any]) -> str:
    choices = event.get("choices") or []
    if not choices:
        return ""
    c = choices[0]
    return (c.get("delta") or {}).get("content") or c.get("text") or ""


async def send(
    client: httpx.AsyncClient, url: str, endpoint: Endpoint, body: dict, rec: Record
) -> Record:
    """Stream one request and fill `rec`; never raises for server or network errors."""
    t0 = time.perf_counter()
    chunks, last = 0, 0.0
    usage: dict[str, Any] | None = None
    try:
        async with client.stream("POST", url + PATHS[endpoint], json=body) as resp:
            rec.replica = resp.headers.get("x-trail-replica")
            if resp.status_code != 200:
                detail = (await resp.aread()).decode(errors="replace")[:200]
                rec.error = f"HTTP {resp.status_code}: {detail}"
                return rec
            async for line in resp.aiter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    break
                event = json.loads(data)
                if "error" in event and not event.get("choices"):
                    rec.error = f"stream error: {json.dumps(event['error'])[:200]}"
                    return rec
                now = time.perf_counter() - t0
                if event.get("usage"):
                    usage = event["usage"]
                if _text(event):
                    chunks += 1
                    if rec.ttft_s is None:
                        rec.ttft_s = now
                    else:
                        rec.max_stall_s = max(rec.max_stall_s, now - last)
                    last = now
                for c in event.get("choices") or []:
                    rec.finish_reason = c.get("finish_reason") or rec.finish_reason
    except (httpx.HTTPError, ValueError) as err:
        rec.error = f"{type(err).__name__}: {err}"[:200]
        return rec
    rec.latency_s = time.perf_counter() - t0
    rec.out_tokens = int(usage["completion_tokens"]) if usage else chunks
    rec.prompt_tokens = int(usage["prompt_tokens"]) if usage else None
    if rec.ttft_s is None:  # nothing but empty text (or no tokens at all)
        rec.ttft_s = rec.latency_s
    rec.ok = rec.out_tokens > 0
    if not rec.ok:
        rec.error = "no output tokens"
    return rec
