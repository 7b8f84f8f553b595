"""Overload: measure saturation (closed loop), then offer an open-loop Poisson load above it.

Every request must end within a deadline with a result or a clean 429/503 carrying Retry-After;
the counts must add up (sent = completed + rejected + failed). Bounded in count and time.

    .venv/bin/python -m ops.loadtest.overload --url http://127.0.0.1:8000 --model smollm2
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections import Counter
from dataclasses import asdict, dataclass, field

import httpx

from trail.lab.workload.arrivals import arrival_times

CHAT = "/v1/chat/completions"


@dataclass
class Outcomes:
    """How each request ended; `failed` covers 5xx other than 503, transport errors, deadline."""

    sent: int = 0
    completed: int = 0
    rejected: int = 0  # 429/503 with Retry-After
    failed: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    slowest_s: float = 0.0
    wall_s: float = 0.0

    def adds_up(self) -> bool:
        return self.sent == self.completed + self.rejected + self.failed

    def summary(self) -> dict:
        return {**asdict(self), "statuses": dict(self.statuses)}


def body(model: str, i: int, max_tokens: int) -> dict:
    prompt = f"Request {i}: say something."
    messages = [{"role": "user", "content": prompt}]
    return {"model": model, "messages": messages, "max_tokens": max_tokens, "ignore_eos": True}


async def one(client: httpx.AsyncClient, url: str, payload: dict, out: Outcomes) -> None:
    out.sent += 1
    t0 = time.monotonic()
    try:
        r = await client.post(url + CHAT, json=payload)
        key = str(r.status_code)
        if r.status_code == 200 and r.json()["usage"]["completion_tokens"] > 0:
            out.completed += 1
        elif r.status_code in (429, 503) and r.headers.get("retry-after") and "error" in r.json():
            out.rejected += 1
        else:
            out.failed += 1
    except httpx.HTTPError as err:  # incl. the deadline (client timeout)
        key = type(err).__name__
        out.failed += 1
    out.statuses[key] += 1
    out.slowest_s = max(out.slowest_s, time.monotonic() - t0)


async def saturation(
    url: str, model: str, concurrency: int, n: int, max_tokens: int, deadline_s: float
) -> float:
    """Completed requests per second with `concurrency` clients always busy."""
    out, sem = Outcomes(), asyncio.Semaphore(concurrency)
    async with httpx.AsyncClient(timeout=deadline_s) as client:

        async def slot(i: int) -> None:
            async with sem:
                await one(client, url, body(model, i, max_tokens), out)

        t0 = time.monotonic()
        await asyncio.gather(*[slot(i) for i in range(n)])
    return out.completed / (time.monotonic() - t0)


async def open_loop(
    url: str, model: str, rate: float, duration_s: float, max_tokens: int, deadline_s: float
) -> Outcomes:
    """Poisson arrivals for `duration_s`; waits for every request (each bounded by the deadline)."""
    arrivals = [
        t for t in arrival_times(int(rate * duration_s * 2) + 10, rate, 0) if t < duration_s
    ]
    out = Outcomes()
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    async with httpx.AsyncClient(timeout=deadline_s, limits=limits) as client:
        t0 = time.monotonic()
        tasks = []
        for i, at in enumerate(arrivals):
            await asyncio.sleep(max(0.0, at - (time.monotonic() - t0)))
            tasks.append(asyncio.create_task(one(client, url, body(model, i, max_tokens), out)))
        await asyncio.gather(*tasks)
        out.wall_s = time.monotonic() - t0
    return out


async def scenario(
    url: str,
    model: str,
    *,
    factor: float = 1.5,
    duration_s: float = 20.0,
    concurrency: int = 8,
    max_tokens: int = 32,
    deadline_s: float = 60.0,
) -> dict:
    sat = await saturation(url, model, concurrency, 3 * concurrency, max_tokens, deadline_s)
    out = await open_loop(url, model, factor * sat, duration_s, max_tokens, deadline_s)
    return {"saturation_rps": sat, "offered_rps": factor * sat, **out.summary()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", default="http://127.0.0.1:8000")
    ap.add_argument("--model", default="smollm2")
    ap.add_argument("--factor", type=float, default=1.5)
    ap.add_argument("--duration", type=float, default=30.0)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=32)
    a = ap.parse_args()
    result = asyncio.run(
        scenario(
            a.url,
            a.model,
            factor=a.factor,
            duration_s=a.duration,
            concurrency=a.concurrency,
            max_tokens=a.max_tokens,
        )
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
