"""The M/G/1 simulator: policy-driven and fast paths agree, Little's law, theory agreement."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from trail.lab.sim import theory
from trail.lab.sim.confidence import batch_means, littles_law_gap
from trail.lab.sim.distributions import PredictionModel, exponential, lognormal
from trail.lab.sim.mg1 import Jobs, policy_config, simulate_fast, simulate_with_policy
from trail.policy import get_policy


def _jobs(seed, n=400, load=0.9, sigma=0.6, size=None):
    return Jobs.poisson(
        np.random.default_rng(seed), size or exponential(10.0), PredictionModel(sigma), load, n
    )


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    policy=st.sampled_from(["fcfs", "srpt", "sprpt-lp"]),
    c=st.sampled_from([0.0, 0.3, 0.8, 1.0, 2.0, math.inf]),
    load=st.floats(0.3, 0.97),
)
def test_fast_path_replays_the_policy_module(seed, policy, c, load):
    jobs = _jobs(seed, n=300, load=load)
    slow = simulate_with_policy(jobs, policy_config(policy, c))
    fast = simulate_fast(jobs, policy, c)
    np.testing.assert_allclose(fast.departure, slow.departure, rtol=1e-12, atol=1e-9)
    np.testing.assert_array_equal(fast.preemptions, slow.preemptions)


def test_c_zero_is_the_sjf_prompt_policy_and_never_preempts():
    jobs = _jobs(3)
    sjf = simulate_with_policy(jobs, get_policy("sjf-prompt"))
    lp0 = simulate_fast(jobs, "sprpt-lp", 0.0)
    np.testing.assert_allclose(lp0.departure, sjf.departure, rtol=1e-12)
    assert lp0.preemptions.sum() == 0


def test_limited_preemption_preempts_only_young_jobs():
    jobs = _jobs(5, n=2000, load=0.95)
    few = simulate_fast(jobs, "sprpt-lp", 0.1).preemptions.sum()
    many = simulate_fast(jobs, "sprpt-lp", math.inf).preemptions.sum()
    assert 0 < few < many


@pytest.mark.parametrize("policy", ["fcfs", "srpt", "sprpt-lp"])
def test_littles_law(policy):
    jobs = _jobs(7, n=3000, load=0.8)
    res = simulate_with_policy(jobs, policy_config(policy, 0.8))
    assert littles_law_gap(res.area, jobs.arrival, res.departure) < 1e-9
    fast = simulate_fast(jobs, policy, 0.8)
    assert littles_law_gap(fast.area, jobs.arrival, fast.departure) < 1e-9


def test_srpt_le_sprpt_lp_le_fcfs_on_one_sample_with_exact_predictions():
    jobs = _jobs(11, n=50_000, load=0.8, sigma=0.0)
    mean = {
        p: simulate_fast(jobs, p, 0.5).response(jobs).mean() for p in ("srpt", "sprpt-lp", "fcfs")
    }
    assert mean["srpt"] <= mean["sprpt-lp"] <= mean["fcfs"]


@pytest.mark.parametrize(
    ("policy", "c", "sigma"), [("fcfs", 0, 0), ("srpt", math.inf, 0), ("sprpt-lp", 0.8, 0.5)]
)
def test_simulation_matches_theory_at_moderate_load(policy, c, sigma):
    size = lognormal(50.0, 1.0)
    jobs = Jobs.poisson(np.random.default_rng(21), size, PredictionModel(sigma), 0.6, 300_000)
    est = batch_means(simulate_fast(jobs, policy, c).response(jobs))
    expected = theory.mean_response(policy, size, PredictionModel(sigma), 0.6 / size.mean, c)
    assert abs(est.mean - expected) / expected < 0.03
    assert est.half_width / est.mean < 0.05


def test_batch_means_interval_covers_a_known_mean():
    rng = np.random.default_rng(0)
    est = batch_means(5.0 + rng.standard_normal(30_000))
    assert est.covers(5.0) and est.half_width < 0.05


def test_c_to_infinity_is_sprpt_and_c_from_one_on_changes_nothing():
    jobs = _jobs(13, n=3000, load=0.9, sigma=0.8)
    sprpt = simulate_fast(jobs, "sprpt-lp", math.inf).departure
    for c in (1.0, 2.0, 1e9):  # past its prediction a job has rank 0: nobody can preempt it
        np.testing.assert_array_equal(simulate_fast(jobs, "sprpt-lp", c).departure, sprpt)
    assert not np.array_equal(simulate_fast(jobs, "sprpt-lp", 0.5).departure, sprpt)
