"""Policy unit tests: ranks, victim choice, margin, preemption cap, aging. No engine."""

from __future__ import annotations

import math

import pytest

from trail.policy import (
    Capacity,
    LengthState,
    StepCost,
    get_policy,
    is_preemptible,
    kv_pressure_victim,
    order_waiting,
    plan_preemptions,
    predicted_remaining,
    promote_starving,
)


def st(rid, arrival=0.0, initial=100.0, generated=0, **kw):
    return LengthState(
        request_id=rid, arrival=arrival, initial_pred=initial, generated=generated, **kw
    )


def test_prediction_sources_differ_as_the_paper_defines():
    s = st("a", initial=100, generated=30, true_total=50)
    s.refine(80.0)
    s.generated = 40  # 10 tokens after the refinement
    assert predicted_remaining(s, get_policy("sjf-prompt")) == 100
    assert predicted_remaining(s, get_policy("trail-prompt")) == 60
    assert predicted_remaining(s, get_policy("trail")) == 70
    assert predicted_remaining(s, get_policy("trail-oracle")) == 10


def test_prediction_is_capped_by_max_tokens_and_floored_at_zero():
    s = st("a", initial=500, generated=10, max_tokens=64)
    assert predicted_remaining(s, get_policy("trail-prompt")) == 54
    s2 = st("b", initial=5, generated=10)
    assert predicted_remaining(s2, get_policy("trail-prompt")) == 0


def test_fcfs_orders_by_arrival_and_trail_by_prediction():
    a, b, c = st("a", 0.0, 300), st("b", 1.0, 10), st("c", 2.0, 50)
    assert [x.request_id for x in order_waiting([c, b, a], 5.0, get_policy("fcfs"))] == [
        "a",
        "b",
        "c",
    ]
    assert [x.request_id for x in order_waiting([a, b, c], 5.0, get_policy("trail"))] == [
        "b",
        "c",
        "a",
    ]


def test_rank_buckets_serve_similar_predictions_in_arrival_order():
    """A bucket of 64 tokens: 260 and 310 rank equal (FCFS between them), 20 still goes first;
    exact ranking would put the later 260 ahead of the earlier 310."""
    early_long, late_long, short = st("a", 0.0, 310), st("b", 1.0, 260), st("c", 2.0, 20)
    queue = [late_long, short, early_long]
    exact = order_waiting(queue, 5.0, get_policy("sjf-prompt"))
    bucketed = order_waiting(queue, 5.0, get_policy("sjf-prompt", rank_bucket_tokens=64))
    assert [x.request_id for x in exact] == ["c", "b", "a"]
    assert [x.request_id for x in bucketed] == ["c", "a", "b"]


def test_engine_settings_carry_the_rank_bucket_to_the_policy():
    from trail.engine.trail_config import TrailConfig

    assert (
        TrailConfig(policy="trail", rank_bucket_tokens=64).policy_config().rank_bucket_tokens == 64
    )
    assert TrailConfig(policy="trail").policy_config().rank_bucket_tokens == 0  # exact order


def test_ties_break_by_arrival():
    a, b = st("a", 1.0, 50), st("b", 0.5, 50)
    assert [x.request_id for x in order_waiting([a, b], 2.0, get_policy("trail"))] == ["b", "a"]


def test_limited_preemption_window_is_c_times_initial():
    cfg = get_policy("trail", c=0.8)
    assert is_preemptible(st("a", initial=100, generated=80), cfg)
    assert not is_preemptible(st("a", initial=100, generated=81), cfg)
    assert not is_preemptible(st("a", initial=100, generated=1), get_policy("trail", c=0.0))
    assert not is_preemptible(st("a", initial=100, generated=0), get_policy("trail", c=0.0))
    assert not is_preemptible(st("a", initial=100, generated=0), get_policy("sjf-prompt"))


def test_oracle_window_uses_the_true_length():
    cfg = get_policy("trail-oracle", c=0.5)
    s = st("a", initial=1000, generated=61, true_total=120)
    assert not is_preemptible(s, cfg)  # 61 > 0.5 x 120, whatever the prompt predictor said
    s.generated = 60
    assert is_preemptible(s, cfg)


def test_preemption_cap():
    cfg = get_policy("trail", max_preemptions=2)
    assert is_preemptible(st("a", preemptions=1), cfg)
    assert not is_preemptible(st("a", preemptions=2), cfg)


def victims(running, waiting, slots=0, now=5.0, cfg=None, blocks=math.inf, cost=None):
    kw = {} if cost is None else {"cost": cost}
    plans = plan_preemptions(running, waiting, Capacity(slots, blocks), now, cfg, **kw)
    return [p.victim.request_id for p in plans]


def test_victim_is_largest_preemptible_and_needs_margin():
    cfg = get_policy("trail-prompt", margin_tokens=10)
    running = [st("r1", initial=100), st("r2", initial=400), st("old", initial=1000, generated=900)]
    short = st("w", 5.0, initial=20)
    assert victims(running, [short], cfg=cfg) == ["r2"]  # "old" is past c x initial: protected
    close = st("w2", 5.0, initial=395)
    assert victims(running, [close], cfg=cfg) == []  # within the margin


def test_no_preemption_when_slots_are_free_or_policy_is_non_preemptive():
    running = [st("r", initial=400)]
    short = [st("w", 1.0, initial=5)]
    assert victims(running, short, slots=1, cfg=get_policy("trail")) == []
    assert victims(running, short, cfg=get_policy("sjf-prompt")) == []
    assert victims(running, short, cfg=get_policy("fcfs")) == []


def test_several_victims_pair_best_waiting_with_worst_running():
    cfg = get_policy("trail-prompt", margin_tokens=0)
    running = [st(f"r{i}", initial=100 * (i + 1)) for i in range(3)]  # 100, 200, 300
    waiting = [st("w1", 1.0, initial=10), st("w2", 1.0, initial=150), st("w3", 1.0, initial=250)]
    # w1 < r2 (300): swap; w2 (150) < r1 (200): swap; w3 (250) > r0 (100): stop
    assert victims(running, waiting, now=1.0, cfg=cfg) == ["r2", "r1"]


def test_window_is_capped_by_max_tokens():
    cfg = get_policy("trail", c=0.8)
    # an initial prediction of 400 with max_tokens 100: preemptible only up to 0.8 x 100
    assert is_preemptible(st("a", initial=400, generated=80, max_tokens=100), cfg)
    assert not is_preemptible(st("a", initial=400, generated=81, max_tokens=100), cfg)
    assert is_preemptible(st("a", initial=400, generated=81), cfg)  # uncapped: 0.8 x 400


def test_mid_prefill_and_promoted_requests_are_never_victims():
    cfg = get_policy("trail")
    assert not is_preemptible(st("a", initial=400, in_prefill=True), cfg)
    assert not is_preemptible(st("a", initial=400, generated=3, promoted=True), cfg)


def test_swap_refused_when_recompute_costs_more_than_it_gains():
    cfg = get_policy("trail-prompt", margin_tokens=0)
    cost = StepCost(base_s=0.01, per_prefill_token_s=0.001, per_decode_seq_s=0.0)
    # recompute of 100 tokens = 100 x 1 ms, a 10 ms decode step: 10 steps of the one running
    assert cost.recompute_steps(100, running=1) == pytest.approx(10.0)
    w = st("w", 1.0, initial=20)
    cheap = [st("v", initial=400, recompute_tokens=100)]  # gain 380 > 10
    assert victims(cheap, [w], cfg=cfg, cost=cost) == ["v"]
    dear = [st("v", initial=400, recompute_tokens=5000)]  # 500 steps > 380
    assert victims(dear, [w], cfg=cfg, cost=cost) == []
    starving = st("s", 0.0, initial=20, promoted=True)  # the bound outranks the cost
    assert victims(dear, [starving], cfg=cfg, cost=cost) == ["v"]


def test_kv_memory_not_slots_can_call_for_a_victim():
    cfg = get_policy("trail-prompt", margin_tokens=0)
    w = st("w", 1.0, initial=20, admit_blocks=10)
    big = [st("v", initial=400, kv_blocks=20)]
    # a slot is free but only 2 blocks: the long one gives up its 20
    assert victims(big, [w], slots=1, blocks=2, cfg=cfg) == ["v"]
    assert victims(big, [w], slots=1, blocks=10, cfg=cfg) == []  # it fits: nobody leaves


def test_nobody_is_preempted_for_a_request_that_still_would_not_fit():
    cfg = get_policy("trail-prompt", margin_tokens=0)
    w = st("w", 1.0, initial=20, admit_blocks=50)
    small = [st("v", initial=400, kv_blocks=5), st("old", initial=100, generated=99, kv_blocks=40)]
    assert victims(small, [w], slots=0, blocks=2, cfg=cfg) == []


def test_starvation_promotion_is_once_and_keeps_credit_across_preemption():
    cfg = get_policy("trail-prompt", starvation_s=10.0)
    s = st("a", 0.0, initial=500, waiting_since=0.0)
    s.leave_waiting(6.0)  # admitted after 6 s, preempted at 20 s
    s.enter_waiting(20.0)
    assert promote_starving([s], 23.0, cfg) == []  # 6 + 3 s waited
    assert promote_starving([s], 25.0, cfg) == [s]  # 6 + 5 = 11 s > 10
    assert s.promoted and promote_starving([s], 26.0, cfg) == []


def test_aging_lowers_rank_with_wait():
    cfg = get_policy("trail-prompt", aging_tokens_per_s=10.0)
    long_ = st("long", 0.0, initial=500, waiting_since=0.0)
    short = st("short", 50.0, initial=50, waiting_since=50.0)
    # at t=51: long 500 - 510 = -10 beats short 50 - 10 = 40; without aging short goes first
    assert order_waiting([short, long_], 51.0, cfg)[0].request_id == "long"
    assert order_waiting([long_, short], 51.0, get_policy("trail-prompt"))[0].request_id == "short"
    # a short one that arrived earlier (40 s) is not overtaken: 500 - 405 > 50 - 5
    earlier = st("earlier", 40.0, initial=50, waiting_since=40.0)
    assert order_waiting([long_, earlier], 40.5, cfg)[0].request_id == "earlier"


def test_aging_orders_the_queue_but_does_not_buy_a_preemption():
    """An aged request would preempt a victim that then ages and preempts back (the traced
    simulator: 300 -> 25 preemptions per run with aging on); only starvation may."""
    cfg = get_policy("trail-prompt", aging_tokens_per_s=10.0, margin_tokens=0)
    aged = st("aged", 0.0, initial=300, waiting_since=0.0)  # rank 300 - 10 x 100 s < 0
    running = [st("r", 90.0, initial=200)]
    assert victims(running, [aged], now=100.0, cfg=cfg) == []  # 300 > 200: no gain
    assert victims(running, [st("short", 99.0, initial=50)], now=100.0, cfg=cfg) == ["r"]


def test_predicted_policies_need_a_large_gain_the_oracle_a_small_one():
    running = [st("r", 0.0, initial=300, true_total=300)]
    newcomer = st("w", 1.0, initial=150, true_total=150)  # 150 tokens better
    assert victims(running, [newcomer], now=2.0, cfg=get_policy("trail-prompt")) == []
    assert victims(running, [newcomer], now=2.0, cfg=get_policy("trail-oracle")) == ["r"]


def test_starvation_bound_puts_the_oldest_first_and_lets_it_preempt():
    cfg = get_policy("trail-prompt", starvation_s=30.0, margin_tokens=0)
    long_ = st("long", 0.0, initial=900, waiting_since=0.0)
    short = st("short", 29.0, initial=5, waiting_since=29.0)
    assert order_waiting([short, long_], 31.0, cfg)[0].request_id == "long"
    running = [st("r", 20.0, initial=50)]
    assert victims(running, [long_], now=31.0, cfg=cfg) == ["r"]
    assert victims(running, [long_], now=29.0, cfg=cfg) == []


def test_kv_pressure_victim_prefers_preemptible_then_longest():
    cfg = get_policy("trail-prompt")
    old = st("old", 0.0, initial=100, generated=95)  # protected, 5 left
    young_long = st("yl", 1.0, initial=400, generated=10)
    young_short = st("ys", 2.0, initial=40, generated=1)
    assert kv_pressure_victim([old, young_long, young_short], cfg).request_id == "yl"
    assert kv_pressure_victim([old], cfg).request_id == "old"
    assert kv_pressure_victim([old, young_long, young_short], get_policy("fcfs")).request_id == "ys"
    assert kv_pressure_victim([], cfg) is None


def test_unknown_policy_is_a_clear_error():
    with pytest.raises(ValueError, match="unknown policy 'srtf'"):
        get_policy("srtf")
    assert math.isinf(get_policy("trail").starvation_s)
