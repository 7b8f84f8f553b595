"""The ingress's prompt-predictor batcher: one thread, concurrent callers batched, errors to all."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from trail.serve.prediction import Batcher


@pytest.mark.asyncio
async def test_concurrent_calls_are_batched_on_one_thread() -> None:
    batches: list[int] = []
    threads: set[int] = set()

    def square(xs: list[int]) -> list[int]:
        threads.add(threading.get_ident())
        batches.append(len(xs))
        time.sleep(0.02)
        return [x * x for x in xs]

    batcher = Batcher(square, max_batch=8)
    got = await asyncio.gather(*(batcher(i) for i in range(20)))
    assert got == [i * i for i in range(20)]
    assert len(threads) == 1 and threading.get_ident() not in threads
    assert sum(batches) == 20 and max(batches) <= 8 and len(batches) < 20


@pytest.mark.asyncio
async def test_an_error_reaches_every_caller_of_its_batch_and_the_next_batch_runs() -> None:
    calls = 0

    def flaky(xs: list[str]) -> list[str]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("encoder failed")
        return [x.upper() for x in xs]

    batcher = Batcher(flaky, max_batch=4)
    results = await asyncio.gather(*(batcher(x) for x in "abc"), return_exceptions=True)
    assert all(isinstance(r, RuntimeError) for r in results)
    assert await batcher("d") == "D"
