"""Disconnect storm: N streaming chat requests whose clients vanish at seeded random points.

Each request draws where its client goes away: before the response headers (after a random
delay of up to `max_delay_s`), right after the headers, after k streamed chunks, or never (it
reads to `[DONE]`). At most `concurrency` requests are open at once; a 429 from the ingress's
admission limit is counted, not retried. Every request ends in exactly one bucket:

    sent = disconnected + completed + rejected + errors

Afterwards the server must hold nothing for these requests (the test reads the engines' stats).

    .venv/bin/python -m ops.loadtest.disconnects --url http://127.0.0.1:8000 --model smollm2 -n 1000
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import httpx

CHAT = "/v1/chat/completions"
PLANS = ("before_headers", "after_headers", "after_chunks", "complete")
WEIGHTS = (0.3, 0.2, 0.35, 0.15)


@dataclass
class Plan:
    kind: str  # one of PLANS
    delay_s: float = 0.0  # before_headers: how long the client waits for the headers
    chunks: int = 0  # after_chunks: events read before leaving


def plans(n: int, seed: int, max_tokens: int, max_delay_s: float) -> list[Plan]:
    """Every request's disconnect point, drawn up front so a seed fixes the storm."""
    rng = random.Random(seed)
    out = []
    for kind in rng.choices(PLANS, WEIGHTS, k=n):
        plan = Plan(kind)
        if kind == "before_headers":
            plan.delay_s = rng.uniform(0.0, max_delay_s)
        elif kind == "after_chunks":
            plan.chunks = rng.randint(1, max_tokens)
        out.append(plan)
    return out


@dataclass
class Storm:
    """How each request ended. `disconnected`: the client left before the end of the stream;
    `errors`: 5xx, transport errors, an error event inside the stream, or a stream with no
    [DONE]."""

    sent: int = 0
    disconnected: int = 0
    completed: int = 0
    rejected: int = 0  # 429 with Retry-After
    errors: int = 0
    plans: Counter[str] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)  # plan/outcome
    statuses: Counter[str] = field(default_factory=Counter)
    error_samples: list[str] = field(default_factory=list)
    wall_s: float = 0.0

    def adds_up(self) -> bool:
        return self.sent == self.disconnected + self.completed + self.rejected + self.errors

    def summary(self) -> dict:
        out = asdict(self)
        for key in ("plans", "outcomes", "statuses"):
            out[key] = dict(getattr(self, key))
        return out

    def count(self, plan: str, outcome: str, detail: str | None = None) -> None:
        setattr(self, outcome, getattr(self, outcome) + 1)
        self.outcomes[f"{plan}/{outcome}"] += 1
        if outcome == "errors" and detail and len(self.error_samples) < 10:
            self.error_samples.append(f"{plan}: {detail}")


def body(model: str, i: int, max_tokens: int) -> dict:
    messages = [{"role": "user", "content": f"Request {i}: tell me a story."}]
    return {
        "model": model,
        "messages": messages,
        "max_tokens": max_tokens,
        "ignore_eos": True,
        "stream": True,
    }


async def one(
    client: httpx.AsyncClient,
    url: str,
    payload: dict,
    p: Plan,
    out: Storm,
) -> None:
    plan = p.kind
    out.sent += 1
    out.plans[plan] += 1
    request = client.build_request("POST", url + CHAT, json=payload)
    # before_headers: leave after delay_s if no headers yet (the cancel closes the connection),
    # or right after the headers if they came first
    wait_s = p.delay_s if plan == "before_headers" else None
    k = 0 if plan == "before_headers" else None if plan == "complete" else p.chunks
    try:
        response = await asyncio.wait_for(client.send(request, stream=True), wait_s)
    except TimeoutError:
        out.statuses["none"] += 1
        out.count(plan, "disconnected")
        return
    except httpx.HTTPError as err:
        out.statuses[type(err).__name__] += 1
        out.count(plan, "errors", repr(err))
        return
    await read(response, plan, k, out)


async def read(response: httpx.Response, plan: str, k: int | None, out: Storm) -> None:
    """Read k events (None: all), then close; classify the outcome."""
    out.statuses[str(response.status_code)] += 1
    try:
        if response.status_code == 429 and response.headers.get("retry-after"):
            await response.aread()
            out.count(plan, "rejected")
            return
        if response.status_code != 200:
            text = (await response.aread()).decode(errors="replace")[:200]
            out.count(plan, "errors", f"{response.status_code} {text}")
            return
        seen = 0
        async for line in response.aiter_lines():
            if not line.startswith("data: "):
                continue
            data = line[len("data: ") :]
            if data == "[DONE]":
                out.count(plan, "completed")
                return
            if '"error"' in data and "error" in json.loads(data):
                out.count(plan, "errors", data[:200])
                return
            seen += 1
            if k is not None and seen >= k:
                out.count(plan, "disconnected")
                return
        if k is not None and seen < k:  # ended before the planned point: a short stream
            out.count(plan, "errors", f"stream ended after {seen} events without [DONE]")
        else:
            out.count(plan, "errors", "stream ended without [DONE]")
    except httpx.HTTPError as err:
        out.count(plan, "errors", repr(err))
    finally:
        await response.aclose()  # unread body: the connection is closed, not pooled


async def storm(
    url: str,
    model: str,
    *,
    n: int = 1000,
    concurrency: int = 12,
    max_tokens: int = 32,
    max_delay_s: float = 0.05,
    seed: int = 0,
    timeout_s: float = 120.0,
) -> Storm:
    drawn = plans(n, seed, max_tokens, max_delay_s)
    out, sem = Storm(), asyncio.Semaphore(concurrency)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=timeout_s, limits=limits) as client:

        async def slot(i: int) -> None:
            async with sem:
                await one(client, url, body(model, i, max_tokens), drawn[i], out)

        t0 = time.monotonic()
        await asyncio.gather(*[slot(i) for i in range(n)])
        out.wall_s = round(time.monotonic() - t0, 2)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--concurrency", type=int, default=12)
    ap.add_argument("--max-tokens", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    result = asyncio.run(
        storm(
            a.url,
            a.model,
            n=a.n,
            concurrency=a.concurrency,
            max_tokens=a.max_tokens,
            seed=a.seed,
        )
    )
    print(json.dumps(result.summary(), indent=2))


if __name__ == "__main__":
    main()
