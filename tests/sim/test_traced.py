"""The simulator replays real predictions: a traced request's rank follows its trace, traces are
rebuilt from the engine's probe events, and the traced experiment runs on the shipped files."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from trail.lab.bench.replay import refined_points
from trail.lab.bench.sim_check import refined_trace
from trail.lab.sim.cluster import simulate_cluster
from trail.lab.sim.engine import SimEngineConfig
from trail.lab.sim.workload import SimRequest
from trail.policy import LengthState, get_policy
from trail.policy.cost import StepCost

ONE_SLOT = SimEngineConfig(max_num_seqs=1, kv_tokens=4096, cost=StepCost(0.01, 0, 0, 0))


def _pair(trace_says: float) -> list[SimRequest]:
    """A 200-token request running alone, then a 10-token newcomer predicted at 10."""
    first = SimRequest(
        LengthState("a", 0.0, initial_pred=200.0, max_tokens=512),
        prompt_len=8,
        output_len=200,
        trace=np.full(200, trace_says),
    )
    newcomer = SimRequest(
        LengthState("b", 0.5, initial_pred=10.0, max_tokens=512), prompt_len=8, output_len=10
    )
    return [first, newcomer]


@pytest.mark.parametrize(("trace_says", "preempted"), [(400.0, True), (5.0, False)])
def test_the_running_request_is_ranked_by_its_trace(trace_says, preempted):
    """Same requests, same initial predictions: only the trace decides whether the newcomer
    (predicted 10) is worth preempting the running one for (margin 50 tokens)."""
    reqs = _pair(trace_says)
    policy = get_policy("trail", margin_tokens=50.0)
    res = simulate_cluster(reqs, 1, ONE_SLOT, policy)
    assert (res.summary()["preemptions"] > 0) is preempted
    newcomer_wait = reqs[1].first_token - reqs[1].arrival
    assert (newcomer_wait < 1.0) is preempted  # else it waits for the first one's ~1.5 s left


def test_trace_is_the_last_probe_output_counting_down():
    got = refined_trace([[0, 100.0], [4, 50.0]], length=8, cap=512)
    np.testing.assert_allclose(got, [100, 99, 98, 97, 50, 49, 48, 47])
    assert refined_trace(None, 8, 512) is None
    np.testing.assert_allclose(refined_trace([[0, 600.0]], 3, 512), [512, 511, 510])  # capped


def test_probe_events_keep_the_first_output_of_each_step():
    events = [
        {"event": "probe", "id": "q0-ab12cd34", "at": 0, "expected": 300.0},
        {"event": "probe", "id": "q0-ab12cd34", "at": 4, "expected": 250.0},
        {"event": "preempted", "id": "q0-ab12cd34"},
        {"event": "probe", "id": "q0-ab12cd34", "at": 4, "expected": 999.0},  # recompute
        {"event": "probe", "id": "q1-ab12cd34", "at": 0, "expected": None},  # no probe ran
        {"event": "probe", "id": "q0-ab12cd34", "at": 8, "expected": 240.0},
    ]
    assert refined_points(events) == {"q0": [[0, 300.0], [4, 250.0], [8, 240.0]]}


@pytest.mark.slow
def test_traced_experiment_on_the_shipped_predictors(tmp_path):
    """The committed test set through the shipped predictors: TRAIL+ beats FCFS at 2x load."""
    from trail.cli import app

    args = ["sim", "traced", "--n", "60", "--loads", "2", "--seeds", "0,1"]
    args += ["--policies", "fcfs,trail,trail-oracle", "--out", str(tmp_path)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    rows = json.loads((tmp_path / "traced.json").read_text())["loads"]["2"]
    assert rows["trail-oracle"]["fcfs_over_mean"]["value"] > 1.0
    assert rows["trail"]["mean_latency_s"] > 0
