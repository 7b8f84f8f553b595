"""The ranking lane in the simulator: the engine's policy code (trail/policy/lane.py) under a
step-cost model, with the bounds the engine test (tests/engine/test_rank_lane.py) checks."""

from __future__ import annotations

import numpy as np
import pytest

from trail.lab.sim.calibrate import PRESETS
from trail.lab.sim.cluster import simulate_cluster
from trail.lab.sim.engine import Engine, SimEngineConfig
from trail.lab.sim.workload import SimRequest
from trail.policy import LengthState, get_policy

CHEAP_PREFILL = SimEngineConfig(max_num_seqs=4, kv_tokens=65536, cost=PRESETS["gpu-like"])
LANE = dict(rank_lane_seqs=2, rank_lane_max_parked=64)


def burst(n: int = 80, seed: int = 0, prompt: int = 120) -> list[SimRequest]:
    """Arrivals faster than 4 slots serve; the prompt head's guess is noise, the probe (the
    trace from the end of prefill on) is exact: the case the lane exists for."""
    rng = np.random.default_rng(seed)
    lengths = rng.choice([8, 16, 32, 200], size=n, p=[0.3, 0.3, 0.25, 0.15])
    arrivals = np.cumsum(rng.exponential(0.05, n))
    out = []
    for i, (t, k) in enumerate(zip(arrivals, lengths, strict=True)):
        state = LengthState(f"r{i}", float(t), initial_pred=float(rng.uniform(8, 200)))
        trace = np.arange(k, 0, -1).astype(float)
        out.append(SimRequest(state, prompt_len=prompt, output_len=int(k), trace=trace))
    return out


def mean_latency(reqs: list[SimRequest]) -> float:
    return float(np.mean([r.finish - r.arrival for r in reqs]))


def test_with_cheap_prefill_ranking_by_the_probe_beats_ranking_by_the_prompt():
    plain, lane = burst(), burst()
    simulate_cluster(plain, 1, CHEAP_PREFILL, get_policy("trail"), seed=0)
    res = simulate_cluster(lane, 1, CHEAP_PREFILL, get_policy("trail", **LANE), seed=0)
    assert mean_latency(lane) < 0.85 * mean_latency(plain)
    engine = res.engines[0]
    assert engine.parks > 0
    # a resume recomputes at most the partial last block (the prefix cache keeps the rest)
    assert engine.recomputed_tokens <= engine.parks * CHEAP_PREFILL.block_size


def test_a_parked_request_keeps_its_rank_and_its_first_token():
    reqs = burst(n=40)
    simulate_cluster(reqs, 1, CHEAP_PREFILL, get_policy("trail", **LANE), seed=0)
    parked = [r for r in reqs if r.state.parks]
    assert parked
    for r in parked:
        assert r.first_token < r.second_token <= r.finish
        assert r.max_stall > 0  # it waited between its first and second token


def test_the_lane_never_exceeds_its_seats_or_the_decode_slots(monkeypatch):
    seen: list[tuple[int, int]] = []
    original = Engine._plan_steps

    def checked(self, admitted):  # noqa: ANN001, ANN202
        lane = sum(r.state.in_lane for r in self.running)
        seen.append((len(self.running) - lane, lane))
        return original(self, admitted)

    monkeypatch.setattr(Engine, "_plan_steps", checked)
    simulate_cluster(burst(), 1, CHEAP_PREFILL, get_policy("trail", **LANE), seed=0)
    assert max(d for d, _ in seen) <= CHEAP_PREFILL.max_num_seqs
    assert max(lane for _, lane in seen) == LANE["rank_lane_seqs"]


@pytest.mark.parametrize("guard", [False, True])
def test_aging_guard_bounds_a_long_request_under_a_stream_of_short_ones(guard):
    """Adversarial: one long request, then short ones for ever faster than the engine serves
    them. SRPT serves the long one last; the aging guard (a grace, then aging) brings it in."""
    cfg = SimEngineConfig(max_num_seqs=1, kv_tokens=65536)
    long = SimRequest(LengthState("long", 0.001, initial_pred=300.0), 16, 300)
    shorts = [
        SimRequest(LengthState(f"s{i}", 0.03 * i, initial_pred=5.0), 16, 5) for i in range(1200)
    ]  # s0 holds the only slot when the long one arrives
    aging = dict(aging_tokens_per_s=50.0, aging_after_s=2.0) if guard else {}
    policy = get_policy("trail-prompt", c=0.0, **aging)
    simulate_cluster([shorts[0], long, *shorts[1:]], 1, cfg, policy, seed=0)
    last_short = max(r.finish for r in shorts)
    if guard:
        assert long.finish - long.arrival < 0.5 * last_short  # served mid-stream
    else:
        assert long.finish > last_short  # starved to the very end
