"""The router's ledger and ranking, without Ray: the decisions the LeastWorkRouter makes."""

from __future__ import annotations

import time

import pytest

from trail.serve.ledger import STALE_AFTER_S, WorkLedger, rank_by_work

pytestmark = pytest.mark.serve


def route(ledger: WorkLedger, stats: dict[str, dict], rid: str, work: float) -> str:
    """What LeastWorkRouter.choose_replicas + on_request_routed do for one request."""
    estimates = {r: ledger.estimate(r, s) for r, s in stats.items()}
    best = rank_by_work(estimates, {})[0]
    ledger.reserve(rid, best, work)
    return best


def test_new_requests_go_to_the_lighter_replica():
    ledger = WorkLedger()
    stats = {"a": {"work_tokens": 900.0, "ts": time.time()}, "b": {"work_tokens": 100.0}}
    assert route(ledger, stats, "r1", 50) == "b"
    assert route(ledger, stats, "r2", 50) == "b"  # b: 100 + 50 + 50 < 900


def test_burst_between_stats_refreshes_stays_balanced():
    """Stale stats (both zero) during a burst: only the ledger keeps the burst from piling up."""
    ledger = WorkLedger()
    stats = {"a": {"work_tokens": 0.0}, "b": {"work_tokens": 0.0}}
    works = [100, 20, 300, 50, 50, 200, 10, 80, 120, 70]
    chosen = [route(ledger, stats, f"r{i}", w) for i, w in enumerate(works)]
    per = {r: sum(w for c, w in zip(chosen, works, strict=True) if c == r) for r in "ab"}
    assert abs(per["a"] - per["b"]) <= max(works)
    assert 3 <= chosen.count("a") <= 7


def test_acknowledged_requests_are_not_counted_twice():
    ledger = WorkLedger()
    ledger.reserve("r1", "a", 400)
    ledger.reserve("r2", "a", 100)
    published = {"work_tokens": 400.0, "seen": ["r1"], "ts": time.time()}
    assert ledger.estimate("a", published) == pytest.approx(500.0)  # r1 inside, r2 not yet
    assert "r1" not in ledger.reservations


def test_completed_and_stale_reservations_are_dropped():
    ledger = WorkLedger()
    ledger.reserve("r1", "a", 400)
    ledger.release("r1")
    assert ledger.unacknowledged("a") == 0
    ledger.reserve("r2", "a", 50)
    ledger.reservations["r2"].at -= STALE_AFTER_S + 1
    assert ledger.estimate("a", {"work_tokens": 0.0, "ts": time.time()}) == 0


def test_rerouting_moves_the_reservation():
    ledger = WorkLedger()
    ledger.reserve("r1", "a", 400)  # tentative choice
    ledger.reserve("r1", "b", 400)  # Serve routed it elsewhere (a was full)
    assert ledger.unacknowledged("a") == 0
    assert ledger.unacknowledged("b") == 400


def test_ties_go_to_the_replica_with_fewer_requests_in_flight():
    assert rank_by_work({"a": 10.0, "b": 10.0}, {"a": 3, "b": 1})[0] == "b"
