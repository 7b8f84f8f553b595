"""The ranking lane under vLLM's async scheduling (the GPU default), on the CPU with vLLM's own
AsyncScheduler and a fabricated model (tests/support/async_core.py): two steps in flight, so a
landed request has its next step on the device when it is parked. vLLM's invariants are checked
after every call."""

from __future__ import annotations

from pathlib import Path

from tests.support.async_core import (
    PINNED_STEP_COST,
    AsyncEngineCore,
    build_scheduler,
    engine_config,
    oracle_request,
)
from trail.engine.trail_config import TrailConfig

LONG, SHORT = 60, 5


def test_arrivals_are_parked_with_a_step_in_flight_and_resume_with_nothing_lost(
    tiny_path: Path,
) -> None:
    trail = TrailConfig(policy="trail", c=0, rank_lane_seqs=1, step_cost=PINNED_STEP_COST)
    # vLLM's max_num_seqs counts the lane's seat: one decode slot + one lane seat
    engine = AsyncEngineCore(build_scheduler(engine_config(tiny_path, trail, max_num_seqs=2)))
    s = engine.scheduler
    assert s.decode_slots == 1
    long = oracle_request("long", LONG)
    s.add_request(long)
    engine.run_until(lambda: long.num_output_tokens >= 3)
    shorts = [oracle_request(f"s{i}", SHORT) for i in range(3)]
    for r in shorts:
        s.add_request(r)
    decoding_seen = []

    def done() -> bool:
        decoding_seen.append(sum(not s._state(r).in_lane for r in s.running))
        return long.is_finished()

    engine.run_until(done)
    assert max(decoding_seen) <= 1, "the lane must not grow the decode batch"
    assert s.parks == len(shorts), "each arrival was prefilled in the lane, then parked"
    assert not s.preemptions, "parking is not a preemption, nor mistaken for a KV one"
    engine.run_until_idle()
    assert long.num_output_tokens == LONG
    assert all(r.num_output_tokens == SHORT for r in shorts)  # nothing lost, nothing extra
    assert s.free_kv_blocks() == s.total_kv_blocks() and not s.tracked
