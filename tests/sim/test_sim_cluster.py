"""Routers and the cluster loop."""

import numpy as np
import pytest

from trail.lab.sim.cluster import ROUTERS, SimRouter, simulate_cluster
from trail.lab.sim.engine import Board, SimEngineConfig
from trail.lab.sim.workload import WorkloadSpec, make_requests
from trail.policy import get_policy

CFG = SimEngineConfig(max_num_seqs=8, kv_tokens=4096)


def _cluster(router, engines=4, n=800, rate_per_engine=2.0, seed=0):
    reqs = make_requests(WorkloadSpec(rate=rate_per_engine * engines), n, seed)
    return simulate_cluster(reqs, engines, CFG, get_policy("trail"), router=router, seed=seed)


@pytest.mark.parametrize("router", ROUTERS)
def test_every_router_serves_everything(router):
    res = _cluster(router)
    s = res.summary()
    assert s["requests"] == 800
    assert s["little_L"] == pytest.approx(s["little_lambda_W"], rel=1e-9)
    counts = np.bincount([r.engine for r in res.requests], minlength=4)
    assert counts.min() > 100  # every engine got work


def test_round_robin_is_exactly_balanced():
    counts = np.bincount([r.engine for r in _cluster("round-robin").requests], minlength=4)
    assert counts.max() - counts.min() <= 1


def test_load_aware_routers_beat_round_robin_at_high_load():
    rr = _cluster("round-robin", n=2000, rate_per_engine=1.7).summary()["mean_latency_s"]
    p2 = _cluster("power-of-two", n=2000, rate_per_engine=1.7).summary()["mean_latency_s"]
    assert p2 < rr


def test_one_engine_ignores_the_router():
    means = {r: _cluster(r, engines=1, n=300).summary()["mean_latency_s"] for r in ROUTERS}
    assert len(set(means.values())) == 1


def test_board_counts_down_predicted_work_during_a_run():
    board = Board(2)
    board.work0[:] = [100.0, 50.0]
    board.decoding[:] = [4, 0]
    board.t0[:] = 1.0
    board.dt0[:] = 0.1
    board.k[:] = [10, 0]
    np.testing.assert_allclose(board.work_at(1.35), [100 - 4 * 3, 50])
    np.testing.assert_allclose(board.work_at(100.0), [100 - 4 * 10, 50])  # run ends after k steps
    assert board.work_at_one(0, 1.35) == pytest.approx(88)


def test_least_work_picks_the_lightest_engine():
    board = Board(3)
    board.work0[:] = [30.0, 5.0, 20.0]
    assert SimRouter("least-work", 3).choose(0.0, board, []) == 1


def test_unknown_router_is_an_error():
    with pytest.raises(ValueError, match="unknown router"):
        SimRouter("random", 2)
