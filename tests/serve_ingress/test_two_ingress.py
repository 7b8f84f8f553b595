"""Two ingress replicas, each with its own router on its own stale stats, in front of two
tiny-model engines scheduled by `sjf-prompt` — so the work the routers weigh is the ingress's
*prompt prediction* (the shipped MiniLM predictor), not a length the client gave away.
`sjf-prompt` keeps that prediction fixed; under `trail-prompt` it counts down, and the tiny model
runs the essay's ~500 predicted tokens in about as long as the test waits, after which both held
answers look finished (0 left) and the routers tie — the test then measured the machine's speed.

Requests send `ignore_eos` with `vllm_xargs.trail_use_max_tokens: false`: every answer really runs
`max_tokens` tokens, yet neither the ingress nor the engine may use that number (issue 16).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.support.serve import ServeStack, chat, replica_stats, running_app, wait_for, wait_idle
from trail.serve.ledger import TENTATIVE_S

pytestmark = pytest.mark.serve
CHAT = "/v1/chat/completions"
ESSAY = "Write a long story about a dragon, with many chapters."  # predicted ~500 tokens
HI = "hi"  # predicted ~15 tokens
# a newcomer's predicted length L weighs a running answer as min(its remaining, L): for L ~ 15
# "hi" and the essay weigh the same (both outlast the newcomer), so newcomers look ~300 long
MEDIUM = "Explain in great detail, with examples, how neural networks are trained."
HELD = 1500  # tokens: the held answers must outlast the test's waits


def running_there(load_dir: Path, replica: str) -> bool:
    s = replica_stats(load_dir).get(replica)
    return s is not None and s.inflight == 1 and s.engine_unfinished == 1 and s.ts > time.time() - 1


@pytest.fixture(scope="module")
def two_ingress(tiny_path) -> Iterator[ServeStack]:  # noqa: ARG001 - the model must exist
    def prompt_policy(args: dict, root: Path) -> None:  # noqa: ARG001
        args["engine"]["trail"] = {"policy": "sjf-prompt"}

    # room for answers long enough to outlast the waits below (the tiny model is fast)
    over = {"ingress": {"num_replicas": 2, "max_inflight": 32}, "engine": {"max_model_len": 2048}}
    with running_app(prompt_policy, **over) as stack:
        yield stack


def hidden_length(text: str, n: int, stream: bool = False) -> dict:
    """Runs n tokens, but only the prompt predictor may say how long it will be."""
    return chat(
        text,
        max_tokens=n,
        ignore_eos=True,
        stream=stream,
        vllm_xargs={"trail_use_max_tokens": False},
    )


def test_both_ingress_replicas_route_and_a_burst_stays_balanced(two_ingress):
    url, load_dir = two_ingress.url, two_ingress.load_dir
    wait_idle(load_dir)
    lengths = [96, 8, 48, 24, 96, 8, 48, 24, 64, 16] * 2

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(timeout=120) as client:
            body = lambda n: chat(max_tokens=n, ignore_eos=True)  # noqa: E731 - exact lengths
            return await asyncio.gather(*[client.post(url + CHAT, json=body(n)) for n in lengths])

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * len(lengths)
    assert len({r.headers["x-trail-ingress"] for r in responses}) == 2  # both routers routed
    replicas = [r.headers["x-trail-replica"] for r in responses]
    work = {r: sum(n for rr, n in zip(replicas, lengths, strict=True) if rr == r) for r in replicas}
    assert len(work) == 2, replicas
    # two routers that each saw only their own dispatches must not herd onto one replica
    assert abs(work[replicas[0]] - sum(lengths) / 2) <= 2 * max(lengths), work


@pytest.mark.parametrize("order", [(ESSAY, HI), (HI, ESSAY)])
def test_short_requests_join_the_replica_whose_work_is_predicted_shorter(two_ingress, order):
    """Two 1,500-token answers hold one replica each; only the prompt predictor tells them apart
    (the essay looks ~500 tokens long, "hi" ~15). New requests predicted ~300 long (they run 4)
    must go where "hi" runs, whichever of the two came first."""
    url, load_dir = two_ingress.url, two_ingress.load_dir
    wait_idle(load_dir)
    client = httpx.Client(timeout=60)
    with (
        client,
        client.stream("POST", url + CHAT, json=hidden_length(order[0], HELD, True)) as first,
    ):
        first_replica = first.headers["x-trail-replica"]
        assert wait_for(lambda: running_there(load_dir, first_replica), 10)
        time.sleep(1.0)  # every router has seen the first replica's new stats
        with client.stream("POST", url + CHAT, json=hidden_length(order[1], HELD, True)) as second:
            second_replica = second.headers["x-trail-replica"]
            assert second_replica != first_replica  # a busy replica vs an idle one
            held = {order[0]: first_replica, order[1]: second_replica}
            assert wait_for(lambda: running_there(load_dir, second_replica), 10)
            time.sleep(1.0)  # ... and the second's (a stale view still counts its prompt)
            served = []
            for _ in range(2):
                r = client.post(url + CHAT, json=hidden_length(MEDIUM, 4))
                assert r.status_code == 200
                served.append(r.headers["x-trail-replica"])
                # the next one alone: the routers have let go of this one's reservation, and
                # the replica's stats no longer count it
                time.sleep(TENTATIVE_S + 0.1)
                assert wait_for(lambda: running_there(load_dir, served[-1]), 10)
            stats = replica_stats(load_dir)
            assert all(stats[x].inflight >= 1 for x in held.values()), stats
    assert served == [held[HI]] * 2, (served, held, stats)
