"""The real LeastWorkRouter (Ray Serve's RequestRouter subclass) driven without a cluster.

Replicas are stand-ins for RunningReplica holding only what choose_replicas reads (replica_id,
routing_stats, the wire form of a ReplicaStats): a real RunningReplica needs a live actor. The
ledger's own arithmetic is tested at the bottom.
"""

from __future__ import annotations

import logging
import time
from dataclasses import InitVar, dataclass, field
from typing import Any

import pytest
from ray.serve._private.common import (
    DeploymentHandleSource,
    DeploymentID,
    ReplicaID,
    RequestMetadata,
)
from ray.serve.request_router import PendingRequest

from tests.support.replica_stats import stats_of
from trail.policy.cost import DEFAULT_STEP_COST
from trail.policy.replica_stats import ReplicaStats
from trail.policy.route import remaining_hist
from trail.serve.ledger import STALE_AFTER_S, TENTATIVE_S, Reservation, WorkLedger
from trail.serve.protocol import OpenAICall
from trail.serve.routers import LeastWorkRouter, replica_views

pytestmark = pytest.mark.serve
LLM = DeploymentID(name="llm", app_name="trail")


@dataclass
class Replica:
    """What LeastWorkRouter reads from a RunningReplica."""

    name: str
    stats: InitVar[ReplicaStats | None] = None
    routing_stats: dict[str, Any] = field(init=False)  # as Serve hands it over: a dict

    def __post_init__(self, stats: ReplicaStats | None) -> None:
        self.publish(stats)

    def publish(self, stats: ReplicaStats | None) -> None:
        """A new record_routing_stats reaching the router ({} before the first)."""
        self.routing_stats = {} if stats is None else stats.to_dict()

    @property
    def replica_id(self) -> ReplicaID:
        return ReplicaID(unique_id=self.name, deployment_id=LLM)


def make_router() -> LeastWorkRouter:
    router = LeastWorkRouter(LLM, DeploymentHandleSource.UNKNOWN)
    router.initialize_state()
    return router


def pending(rid: str, predicted: float, prompt: int = 0) -> PendingRequest:
    request = OpenAICall("chat", None, rid, prompt_tokens=prompt, predicted_tokens=predicted)
    return PendingRequest([request], {}, RequestMetadata(request_id=rid, internal_request_id=rid))


async def route(
    router: LeastWorkRouter, replicas: list[Replica], rid: str, work: float, prompt: int = 0
) -> str:
    """One request through choose_replicas, then routed to Serve's first choice."""
    req = pending(rid, work, prompt)
    ranked = await router.choose_replicas(replicas, req)
    chosen = ranked[0][0].replica_id
    router.on_request_routed(req, chosen, None)
    return chosen.unique_id


@pytest.mark.asyncio
async def test_new_requests_go_to_the_lighter_replica() -> None:
    router = make_router()
    replicas = [
        Replica("a", stats_of([300, 300, 300], running=3, work_tokens=900.0, max_num_seqs=8)),
        Replica("b", stats_of([100], running=1, work_tokens=100.0, max_num_seqs=8)),
    ]
    assert await route(router, replicas, "r1", 50) == "b"
    assert await route(router, replicas, "r2", 50) == "b"  # overlapped by 2 requests, not 3
    ranked = await router.choose_replicas(replicas, pending("r3", 900))
    assert [r[0].replica_id.unique_id for r in ranked] == ["b", "a"]  # every replica, by rank


@pytest.mark.asyncio
async def test_burst_between_stats_refreshes_stays_balanced() -> None:
    """Stale stats (both zero) during a burst: only the ledger keeps the burst from piling up."""
    router = make_router()
    replicas = [Replica("a", stats_of(max_num_seqs=16)), Replica("b", stats_of(max_num_seqs=16))]
    works = [100, 20, 300, 50, 50, 200, 10, 80, 120, 70]
    chosen = [await route(router, replicas, f"r{i}", w) for i, w in enumerate(works)]
    per = {r: sum(w for c, w in zip(chosen, works, strict=True) if c == r) for r in "ab"}
    assert abs(per["a"] - per["b"]) <= max(works)
    assert 3 <= chosen.count("a") <= 7


@pytest.mark.asyncio
async def test_completed_requests_leave_the_ledger() -> None:
    router = make_router()
    replicas = [Replica("a", stats_of()), Replica("b", stats_of())]
    first = await route(router, replicas, "r1", 500)
    other = "b" if first == "a" else "a"
    assert await route(router, replicas, "r2", 10) == other
    router.on_request_completed(Replica(first).replica_id, "r1")
    assert await route(router, replicas, "r3", 10) == first  # empty again: 0 < 10


@pytest.mark.asyncio
async def test_idle_replicas_share_sequential_requests() -> None:
    """Equal idle replicas: each request finishes before the next, so nothing but the tie-break
    decides; a fixed order would send all to one and never try a replacement replica."""
    router = make_router()
    replicas = [Replica("a", stats_of()), Replica("b", stats_of())]
    chosen = []
    for i in range(40):
        chosen.append(await route(router, replicas, f"r{i}", 16))
        router.on_request_completed(Replica(chosen[-1]).replica_id, f"r{i}")
    assert 8 <= chosen.count("a") <= 32, chosen


def test_acknowledged_requests_are_not_counted_twice() -> None:
    ledger = WorkLedger()
    ledger.reserve("r1", "a", 400)
    ledger.reserve("r2", "a", 100)
    published = stats_of(work_tokens=400.0, seen=("r1",))
    assert ledger.estimate("a", published) == pytest.approx(500.0)  # r1 inside, r2 not yet
    assert "r1" not in ledger.replica_of


def test_completed_and_stale_reservations_are_dropped() -> None:
    ledger = WorkLedger()
    ledger.reserve("r1", "a", 400)
    ledger.release("r1")
    assert ledger.unacknowledged("a") == 0
    ledger.reserve("r2", "a", 50)
    ledger.by_replica["a"]["r2"].at -= STALE_AFTER_S + 1
    assert ledger.estimate("a", stats_of()) == 0


def test_rerouting_moves_the_reservation() -> None:
    ledger = WorkLedger()
    ledger.reserve("r1", "a", 400)  # tentative choice
    ledger.reserve("r1", "b", 400)  # Serve routed it elsewhere (a was full)
    assert ledger.unacknowledged("a") == 0
    assert ledger.unacknowledged("b") == 400


def test_an_unconfirmed_choice_expires_quickly_and_only_its_replica_is_scanned() -> None:
    ledger = WorkLedger()
    ledger.reserve("r1", "a", 400, confirmed=False)  # chosen, never routed
    ledger.reserve("r2", "b", 100)
    ledger.by_replica["a"]["r1"].at -= TENTATIVE_S + 0.1
    ledger.acknowledge("b", stats_of())  # b's stats do not touch a's entries
    assert ledger.unacknowledged("a") == 400
    ledger.acknowledge("a", stats_of())
    assert ledger.unacknowledged("a") == 0 and ledger.unacknowledged("b") == 100
    assert len(ledger) == 1


def slot_stats(running: int, work: float, remaining: list[float], **extra: Any) -> ReplicaStats:
    return stats_of(remaining, running=running, work_tokens=work, **extra)


@pytest.mark.asyncio
async def test_a_free_slot_beats_less_work_on_a_full_replica() -> None:
    router = make_router()
    replicas = [
        Replica("a", slot_stats(4, 100.0, [25, 25, 25, 25], waiting_work=0.0, soonest_free=25)),
        Replica("b", slot_stats(1, 800.0, [800])),
    ]
    assert await route(router, replicas, "r1", 50) == "b"


@pytest.mark.asyncio
async def test_the_new_requests_length_decides_which_batch_it_joins() -> None:
    """Four short requests vs one long one: a short newcomer overlaps the long one for only
    its own few tokens (10 vs 4 x 10), a long newcomer overlaps the short ones less (96 vs 384)."""
    shorts = Replica("shorts", slot_stats(4, 96.0, [24, 24, 24, 24], max_num_seqs=8))
    long_ = Replica("long", slot_stats(1, 384.0, [384], max_num_seqs=8))
    ranked = await make_router().choose_replicas([shorts, long_], pending("s", 10))
    assert ranked[0][0].replica_id.unique_id == "long"
    ranked = await make_router().choose_replicas([shorts, long_], pending("l", 500))
    assert ranked[0][0].replica_id.unique_id == "shorts"


@pytest.mark.asyncio
async def test_among_full_replicas_the_least_waiting_work_wins() -> None:
    router = make_router()
    replicas = [
        Replica("a", slot_stats(4, 1000.0, [250] * 4, waiting_work=600.0, soonest_free=10)),
        Replica("b", slot_stats(4, 1000.0, [500] * 4, waiting_work=0.0, soonest_free=200)),
    ]
    assert await route(router, replicas, "r1", 50) == "b"  # 0 + 200 < 600 + 10


def test_replica_views_count_this_routers_dispatches() -> None:
    stats = [slot_stats(1, 100.0, [100], waiting_work=0.0, prefill_weight=0.2)]
    views, weight = replica_views(stats, [[Reservation(50.0, 30.0, time.time())]])
    assert views.free_slots[0] == 4 - 1 - 1
    assert views.total_work[0] == 100 + 80 and views.waiting_work[0] == 50
    assert views.waiting_prefill[0] == 30 and weight == 0.2
    assert views.hist is not None and views.hist[0].sum() == 2


@pytest.mark.asyncio
async def test_a_finished_request_that_stale_stats_still_list_does_not_count() -> None:
    """Stats taken while a short request ran reach the router after it finished (a ghost): the
    idle replica must not look busier than one with a long request running."""
    router = make_router()
    busy = Replica("a", slot_stats(1, 400.0, [400], seen=("long",)))
    idle = Replica("b", slot_stats(0, 0.0, []))
    assert await route(router, [busy, idle], "s1", 4, prompt=31) == "b"
    router.on_request_completed(idle.replica_id, "s1")
    # b's stats, taken while s1 ran: one unseen request with its prompt still to prefill
    now_stats = slot_stats(
        0, 35.0, [4], waiting=1, waiting_work=4.0, prefill_pending=31.0, seen=("s1",)
    )
    idle.publish(now_stats)
    assert await route(router, [busy, idle], "s2", 4, prompt=31) == "b"
    assert len(router.ledger.ghosts(idle.replica_id, now_stats)) == 1  # s1, not s2


def test_ghosts_leave_every_figure_and_their_histogram_bucket() -> None:
    ledger = WorkLedger()
    ledger.reserve("g", "a", 40.0, prefill=30.0)
    ledger.reserve("r", "a", 300.0)
    ledger.complete("g")
    stats = slot_stats(2, 370.0, [20, 300], seen=("g", "r"), prefill_pending=30.0)
    ghosts = ledger.ghosts("a", stats)
    assert [(g.decode, g.prefill) for g in ghosts] == [(40.0, 30.0)]
    views, _ = replica_views([stats], [ledger.pending("a")], [ghosts])
    assert views.free_slots[0] == 4 - 2 - 1 + 1  # r still reserved (unacknowledged here)
    assert views.total_work[0] == 300 + 300 and views.waiting_prefill[0] == 0
    # 40 falls in [32, 64), empty: the ghost had shrunk to 20 ([16, 32)); 300 stays
    assert views.hist is not None
    assert views.hist[0].tolist() == (remaining_hist([300]) * 2).tolist()
    ledger.finished["a"]["g"].at -= STALE_AFTER_S + 1
    ledger.reserve("x", "a", 1.0)
    ledger.complete("x")  # pruning happens as new requests finish
    assert "g" not in ledger.finished["a"] and ledger.ghosts("a", stats) == []


@pytest.mark.asyncio
async def test_round_robin_cycles_and_takes_its_name_from_serve_kwargs() -> None:
    from trail.serve.routers import RoundRobinRouter

    router = RoundRobinRouter(LLM, DeploymentHandleSource.UNKNOWN)
    router.initialize_state(router_name="rr")  # as Serve passes request_router_kwargs
    replicas = [Replica("b"), Replica("a"), Replica("c")]
    firsts = [(await router.choose_replicas(replicas))[0][0].replica_id.unique_id for _ in range(6)]
    assert router.router_name == "rr" and firsts == ["a", "b", "c"] * 2


@pytest.mark.asyncio
async def test_stats_this_version_cannot_read_route_as_none_published_and_log_once(caplog):
    """A replica of another version (a renamed key) must not route on figures half read as
    zero: it is routed as a replica with no stats yet, and the refusal is logged once."""
    full = Replica("a", slot_stats(4, 800.0, [200] * 4, waiting_work=400.0, soonest_free=200))
    stale = Replica("b")
    stale.routing_stats = stats_of([400] * 4, running=4, work_tokens=1600.0).to_dict()
    stale.routing_stats["work"] = stale.routing_stats.pop("work_tokens")
    router = make_router()
    serve_log = logging.getLogger("ray.serve")  # Ray's own logger does not propagate to caplog
    serve_log.addHandler(caplog.handler)
    try:
        chosen = [await route(router, [full, stale], f"r{i}", 50) for i in range(2)]
    finally:
        serve_log.removeHandler(caplog.handler)
    assert router._stats([stale, Replica("c")]) == [None, None]  # as one that never published
    assert chosen == ["b", "b"]  # its free slots (unknown) beat a's full batch
    refused = [r.getMessage() for r in caplog.records if "stats refused" in r.getMessage()]
    assert len(refused) == 1 and "missing ['work_tokens'], unknown ['work']" in refused[0]


def test_a_replica_without_stats_has_free_slots_and_only_this_routers_work() -> None:
    mine = [Reservation(50.0, 10.0, time.time())]
    views, weight = replica_views([None, slot_stats(1, 100.0, [100])], [mine, []])
    assert views.free_slots[0] == float("inf") and views.total_work.tolist() == [60.0, 100.0]
    assert views.waiting_prefill[0] == 10 and views.hist is None  # ranked by total work
    assert weight == DEFAULT_STEP_COST.prefill_weight


@pytest.mark.asyncio
async def test_a_replica_that_is_gone_leaves_nothing_in_the_ledger() -> None:
    """Found by the soak (ops/soak): after a replica was killed, its reservations and ghosts
    stayed in each ingress's ledger for good (trail_router_ledger_entries kept growing)."""
    router = make_router()
    replicas = [Replica("a", stats_of()), Replica("b", stats_of())]
    chosen = [await route(router, replicas, f"r{i}", 100) for i in range(6)]
    done = next(i for i, c in enumerate(chosen) if c == "a")
    router.on_request_completed(Replica("a").replica_id, f"r{done}")  # a ghost of "a"
    assert router.ledger.sizes()["routed"] == 5 and router.ledger.sizes()["finished"] == 1
    router.update_replicas([replicas[1]])  # "a" died: Serve's new replica set
    sizes = router.ledger.sizes()
    assert sizes == {"pending": chosen.count("b"), "routed": chosen.count("b"), "finished": 0}
    assert set(router._rid_by_internal.values()) == set(router.ledger.routed)
    assert all(r.unique_id == "b" for r in router.ledger.by_replica)
