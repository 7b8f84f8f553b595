"""The ranking lane's decisions (trail/policy/lane.py), on plain LengthStates."""

from __future__ import annotations

import pytest

from trail.policy import LengthState, get_policy, sort_key
from trail.policy.lane import has_landed, plan_lane

LANE = get_policy("trail", rank_lane_seqs=2, rank_lane_tokens=300, rank_lane_max_parked=4)


def req(
    rid: str, arrival: float, *, pred: float = 100.0, refined: float | None = None, **kw: object
) -> LengthState:
    s = LengthState(rid, arrival, initial_pred=pred, prompt_tokens=100, **kw)  # type: ignore[arg-type]
    if refined is not None:
        s.refine(refined, at=s.generated)
    return s


def plan(running, waiting, slots=2, now=0.0, cfg=LANE):  # noqa: ANN001, ANN201
    key = lambda s: sort_key(s, now, cfg)  # noqa: E731
    return plan_lane(running, sorted(waiting, key=key), slots, now, cfg, key)


def ids(states) -> list[str]:  # noqa: ANN001
    return [s.request_id for s in states]


def test_full_decode_batch_sends_arrivals_to_the_lane_within_its_seats():
    running = [req("d1", 0, generated=5), req("d2", 0, generated=5)]
    waiting = [req(f"w{i}", i + 1) for i in range(4)]
    p = plan(running, waiting)
    assert p.to_decode == [] and p.park == []
    assert ids(p.to_lane) == ["w0", "w1"]  # two seats, queue order


def test_lane_token_budget_admits_one_prompt_at_least_and_stops_past_the_budget():
    running = [req("d1", 0, generated=5), req("d2", 0, generated=5)]
    big = LengthState("big", 1, initial_pred=10, prompt_tokens=900)
    small = LengthState("small", 2, initial_pred=20, prompt_tokens=100)
    assert ids(plan(running, [big, small]).to_lane) == ["big"]  # over budget, but alone
    p = plan(running, [small, LengthState("b2", 3, initial_pred=30, prompt_tokens=250)])
    assert ids(p.to_lane) == ["small"]  # 100 + 250 > 300


def test_landed_request_without_a_free_slot_parks_and_the_best_ranked_wins_a_freed_slot():
    landed = req("lane", 1, refined=20, in_lane=True, generated=1)
    assert has_landed(landed)
    running = [req("d1", 0, generated=5), landed]
    parked = req("parked", 0.5, refined=5, generated=1, parks=1)
    p = plan(running, [parked], slots=2)  # one decode slot free (d1 holds the other)
    assert ids(p.to_decode) == ["parked"]  # 5 < 20 left: the parked one takes the slot
    assert ids(p.park) == ["lane"] and ids(p.landed) == ["lane"]


def test_landed_request_keeps_its_slot_when_it_ranks_best():
    landed = req("lane", 1, refined=3, in_lane=True, generated=1)
    p = plan([req("d1", 0, generated=5), landed], [req("parked", 0.5, refined=50, generated=1)])
    assert p.park == [] and p.to_decode == []  # the lane request simply goes on decoding


def test_a_lane_request_still_prefilling_holds_its_seat():
    prefilling = req("pf", 1, in_lane=True, in_prefill=True)
    assert not has_landed(prefilling)
    running = [req("d1", 0, generated=5), req("d2", 0, generated=5), prefilling]
    p = plan(running, [req("w0", 2), req("w1", 3)])
    assert ids(p.to_lane) == ["w0"]  # one of two seats is taken


def test_light_load_admits_arrivals_straight_to_decode_without_the_lane():
    p = plan([], [req("w0", 1), req("w1", 2)], slots=4)
    assert ids(p.to_decode) == ["w0", "w1"] and p.to_lane == []


def test_unranked_arrival_waits_while_a_ranked_one_is_waiting_for_the_slot():
    parked = req("parked", 0.5, refined=400, generated=1)
    fresh = req("fresh", 1, pred=1)  # the prompt head says 1 token, but it has no probe rank
    p = plan([req("d1", 0, generated=5)], [parked, fresh], slots=2)
    assert ids(p.to_decode) == ["parked"]
    assert ids(p.to_lane) == ["fresh"]  # it gets ranked instead


def test_parked_bound_stops_the_lane():
    cfg = LANE.with_(rank_lane_max_parked=1)
    running = [req("d1", 0, generated=5), req("d2", 0, generated=5)]
    parked = req("parked", 0.5, refined=9, generated=1)
    p = plan(running, [parked, req("w0", 1)], cfg=cfg)
    assert p.to_lane == []  # one parked already holds the KV the lane may keep


def test_starving_arrival_takes_a_slot_without_the_lane():
    cfg = LANE.with_(starvation_s=10.0)
    starving = req("old", 0.0, pred=500, waiting_since=0.0)
    parked = req("parked", 15.0, refined=1, generated=1)
    p = plan([req("d1", 0, generated=5)], [parked, starving], slots=2, now=20.0, cfg=cfg)
    assert ids(p.to_decode) == ["old"]


def test_the_lane_needs_a_policy_that_ranks_by_the_probe():
    with pytest.raises(ValueError, match="ranking lane"):
        get_policy("fcfs", rank_lane_seqs=1)


def test_aging_starts_after_its_grace():
    from trail.policy import effective_rank

    cfg = get_policy("trail", aging_tokens_per_s=2.0, aging_after_s=10.0)
    s = req("w", 0.0, pred=100.0, waiting_since=0.0)
    assert effective_rank(s, 10.0, cfg) == pytest.approx(100.0)  # within the grace: as predicted
    assert effective_rank(s, 25.0, cfg) == pytest.approx(70.0)  # 15 s overdue x 2 tokens/s
