"""Load generators: open loop (requests leave at fixed times whatever the server does, so a
slow server builds a queue, as real traffic does) and closed loop (K requests always in flight:
the server's saturation throughput).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import httpx

from trail.lab.bench.client import Endpoint, Record, send
from trail.lab.workload.requests import BenchRequest

BodyFn = Callable[[BenchRequest], dict[str, Any]]


def _client(timeout_s: float) -> httpx.AsyncClient:
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=64)
    return httpx.AsyncClient(timeout=httpx.Timeout(timeout_s, connect=30.0), limits=limits)


def _progress(show: bool, total: int, label: str):  # noqa: ANN202 - rich Progress | nullcontext
    if not show:
        return nullcontext(None)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        transient=True,
    )
    bar.add_task(label, total=total)
    return bar


async def open_loop(
    url: str,
    requests: Sequence[BenchRequest],
    times: Sequence[float],
    body: BodyFn,
    endpoint: Endpoint = "chat",
    timeout_s: float = 600.0,
    progress: bool = True,
    label: str = "requests",
) -> list[Record]:
    """Send request i at times[i] seconds after the start; wait for all to finish."""
    with _progress(progress, len(requests), label) as bar:
        async with _client(timeout_s) as client:
            t0 = time.perf_counter()

            async def one(req: BenchRequest, at: float) -> Record:
                await asyncio.sleep(max(0.0, at - (time.perf_counter() - t0)))
                rec = Record(req.id, time.perf_counter() - t0, req.out_tokens)
                await send(client, url, endpoint, body(req), rec)
                if bar is not None:
                    bar.advance(bar.task_ids[0])
                return rec

            return list(
                await asyncio.gather(*(one(r, t) for r, t in zip(requests, times, strict=True)))
            )


async def closed_loop(
    url: str,
    requests: Sequence[BenchRequest],
    concurrency: int,
    body: BodyFn,
    endpoint: Endpoint = "chat",
    timeout_s: float = 600.0,
    progress: bool = True,
    label: str = "saturation",
    on_done: Callable[[], None] | None = None,
) -> list[Record]:
    """`concurrency` workers, each sending its next request as soon as the last one finished;
    `on_done` is called after each one (e.g. to change the app mid-run)."""
    queue: asyncio.Queue[BenchRequest] = asyncio.Queue()
    for r in requests:
        queue.put_nowait(r)
    records: list[Record] = []
    with _progress(progress, len(requests), label) as bar:
        async with _client(timeout_s) as client:
            t0 = time.perf_counter()

            async def worker() -> None:
                while not queue.empty():
                    req = queue.get_nowait()
                    rec = Record(req.id, time.perf_counter() - t0, req.out_tokens)
                    records.append(await send(client, url, endpoint, body(req), rec))
                    if on_done is not None:
                        on_done()
                    if bar is not None:
                        bar.advance(bar.task_ids[0])

            await asyncio.gather(*(worker() for _ in range(max(1, concurrency))))
    return records


def save_jsonl(records: Sequence[Record], path: Path, extra: dict | None = None) -> None:
    """One row per request, with `extra` (policy, rate, ...) repeated on every row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rows = [{**(extra or {}), **r.to_dict()} for r in records]
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def load_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
