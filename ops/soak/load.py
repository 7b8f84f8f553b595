"""The soak's load: an open-loop Poisson mix of what real clients send, plus bursts.

Open loop on purpose: a closed loop slows down when the server does, so it can never show a
queue that grows or requests that pile up. The rate is a fraction of the app's saturation (a
configured figure, or one measured first); bursts of many requests at once overflow the
ingresses' admission limits on a schedule, so 429s are exercised all through the run.

Every request goes through the outcome ledger (ops/soak/outcomes.py): opened before it is sent,
closed exactly once, whatever happens.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

from ops.soak.outcomes import Ledger, Outcome

CHAT, COMPLETIONS = "/v1/chat/completions", "/v1/completions"
# kind -> share of the Poisson arrivals; long answers and vanishing clients hold engine slots
MIX = {
    "chat": 0.22,
    "chat_stream": 0.18,
    "completion": 0.10,
    "completion_stream": 0.10,
    "chat_long_stream": 0.06,
    "completion_long": 0.04,
    "vanish": 0.12,
    "invalid": 0.12,
    "overlong": 0.06,
}
SHORT, LONG = 8, 96  # max_tokens: most answers short so 2 CPU cores keep up, a few long
INVALID_BODIES: tuple[Callable[[str], bytes], ...] = (
    lambda m: b"{not json",
    lambda m: json.dumps({"model": m, "messages": "hi"}).encode(),
    lambda m: json.dumps({"model": m, "messages": [], "max_tokens": -1}).encode(),
    lambda m: json.dumps({"model": m, "prompt": "x", "temperature": "hot"}).encode(),
    lambda m: json.dumps({"model": "no-such-model", "messages": [{"role": "user"}]}).encode(),
)


@dataclass
class LoadConfig:
    model: str = "tiny"
    rate: float = 3.0  # requests per second (Poisson)
    burst_every_s: float = 60.0
    burst_size: int = 36  # > both ingresses' admission windows together (2 x 12)
    deadline_s: float = 60.0  # no request may take longer, failure or not
    max_model_len: int = 512
    seed: int = 0


def chat_body(model: str, text: str, max_tokens: int, stream: bool) -> dict:
    body = {
        "model": model,
        "messages": [{"role": "user", "content": text}],
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "stream": stream,
    }
    return body


def completion_body(model: str, text: str, max_tokens: int, stream: bool) -> dict:
    return {
        "model": model,
        "prompt": text,
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "stream": stream,
    }


def plan(kind: str, cfg: LoadConfig, rng: random.Random) -> tuple[str, bytes, bool, int]:
    """(path, body, streaming, chunks before a planned vanish) for one request of `kind`."""
    m, text = cfg.model, f"soak {rng.randrange(10**6)}: tell me something."
    bodies = {
        "chat": (CHAT, chat_body(m, text, SHORT, False)),
        "chat_stream": (CHAT, chat_body(m, text, SHORT, True)),
        "completion": (COMPLETIONS, completion_body(m, text, SHORT, False)),
        "completion_stream": (COMPLETIONS, completion_body(m, text, SHORT, True)),
        "chat_long_stream": (CHAT, chat_body(m, text, LONG, True)),
        "completion_long": (COMPLETIONS, completion_body(m, text, LONG, False)),
        "vanish": (CHAT, chat_body(m, text, LONG, True)),
        "overlong": (COMPLETIONS, completion_body(m, "word " * cfg.max_model_len, SHORT, False)),
        "burst": (CHAT, chat_body(m, text, SHORT, False)),
        "probe": (CHAT, chat_body(m, text, 4, False)),
    }
    if kind == "invalid":
        return CHAT, rng.choice(INVALID_BODIES)(m), False, 0
    path, body = bodies[kind]
    return path, json.dumps(body).encode(), bool(body["stream"]), rng.randint(1, 6)


def classify_status(status: int, headers: httpx.Headers) -> str:
    if status == 200:
        return "ok"
    if status in (429, 503) and headers.get("retry-after"):
        return "rejected"
    return "server_5xx" if status >= 500 else "client_4xx"


async def read_stream(r: httpx.Response, out: Outcome, vanish_after: int | None) -> tuple[str, str]:
    """(class, detail) of a 200 stream: [DONE], an in-band error event, a cut, or we left."""
    chunks = 0
    async for line in r.aiter_lines():
        if not line.startswith("data: "):
            continue
        if line == "data: [DONE]":
            return "ok", ""
        if '"error"' in line and "error" in json.loads(line[6:]):
            return "stream_error", line[6:]
        chunks += 1
        if vanish_after is not None and chunks >= vanish_after:
            return "vanished", f"left after {chunks} chunks"
    return "transport", f"stream cut after {chunks} chunks (no [DONE])"


async def send(
    client: httpx.AsyncClient,
    url: str,
    ledger: Ledger,
    kind: str,
    cfg: LoadConfig,
    rng: random.Random,
) -> Outcome:
    """One request, closed in the ledger whatever happens (the deadline is the client's)."""
    path, body, stream, k = plan(kind, cfg, rng)
    out = ledger.open(kind, expected_4xx=kind in ("invalid", "overlong"))
    headers = {"content-type": "application/json"}
    try:
        async with client.stream("POST", url + path, content=body, headers=headers) as r:
            out.ingress, out.replica = (
                r.headers.get("x-trail-ingress"),
                r.headers.get("x-trail-replica"),
            )
            cls = classify_status(r.status_code, r.headers)
            if cls == "ok" and stream:
                cls, detail = await read_stream(r, out, k if kind == "vanish" else None)
            else:
                detail = (await r.aread()).decode(errors="replace") if cls != "ok" else ""
            ledger.close(out, cls, r.status_code, detail)
    except httpx.HTTPError as err:
        ledger.close(out, "transport", None, f"{type(err).__name__}: {err}")
    except Exception as err:  # noqa: BLE001 - a request the harness fumbled is still counted
        ledger.close(out, "transport", None, f"harness: {type(err).__name__}: {err}")
    return out


def draw_kind(rng: random.Random) -> str:
    return rng.choices(list(MIX), list(MIX.values()))[0]


async def open_loop(
    url: str, ledger: Ledger, cfg: LoadConfig, duration_s: float, stop: asyncio.Event
) -> None:
    """Poisson arrivals of the mix plus periodic bursts for `duration_s` (or until `stop`);
    then waits for every request (each bounded by the deadline)."""
    rng = random.Random(cfg.seed)
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    tasks: set[asyncio.Task] = set()
    async with httpx.AsyncClient(timeout=cfg.deadline_s, limits=limits) as client:
        t0 = time.monotonic()
        next_at, next_burst = 0.0, cfg.burst_every_s
        while (now := time.monotonic() - t0) < duration_s and not stop.is_set():
            if now >= next_burst:
                next_burst += cfg.burst_every_s
                for _ in range(cfg.burst_size):
                    _spawn(tasks, send(client, url, ledger, "burst", cfg, rng))
            if now >= next_at:
                _spawn(tasks, send(client, url, ledger, draw_kind(rng), cfg, rng))
                next_at += rng.expovariate(cfg.rate)
            await asyncio.sleep(max(0.0, min(next_at, next_burst) - (time.monotonic() - t0)))
        if tasks:
            await asyncio.wait(tasks, timeout=cfg.deadline_s + 10)


def _spawn(tasks: set[asyncio.Task], coro) -> None:  # noqa: ANN001
    task = asyncio.create_task(coro)
    tasks.add(task)
    task.add_done_callback(tasks.discard)


async def probe(url: str, ledger: Ledger, cfg: LoadConfig) -> Outcome:
    """One short request through the ledger (recovery checks use these when they need
    traffic of their own)."""
    async with httpx.AsyncClient(timeout=cfg.deadline_s) as client:
        return await send(client, url, ledger, "probe", cfg, random.Random())
