"""The SOAP closed form against the classical formulas and the known orderings."""

import math

import numpy as np
import pytest

from trail.lab.sim import theory
from trail.lab.sim.distributions import PredictionModel, bounded_pareto, exponential, lognormal

EXACT = PredictionModel(0.0)


@pytest.mark.parametrize(
    "size", [exponential(1.0), bounded_pareto(1.5, 1.0, 1000.0)], ids=["exp", "bpareto"]
)
@pytest.mark.parametrize("load", [0.3, 0.9])
def test_soap_with_exact_predictions_and_no_limit_is_srpt(size, load):
    lam = load / size.mean
    soap = theory.sprpt_lp_mean_response(theory.Cloud.build(size, EXACT), lam, math.inf)
    assert soap == pytest.approx(theory.srpt_mean_response(size, lam), rel=1e-3)


@pytest.mark.parametrize("load", [0.5, 0.9])
def test_c_zero_is_nonpreemptive_sjf(load):
    size = lognormal(1.0, 1.0)
    lam = load / size.mean
    soap = theory.sprpt_lp_mean_response(theory.Cloud.build(size, EXACT), lam, 0.0)
    assert soap == pytest.approx(theory.sjf_mean_response(size, lam), rel=1e-3)


def test_fcfs_is_mm1_formula():
    lam, mu = 0.7, 1.0
    assert theory.fcfs_mean_response(exponential(1.0), lam) == pytest.approx(1 / (mu - lam))


@pytest.mark.parametrize("load", [0.3, 0.7, 0.9])
def test_srpt_le_sprpt_lp_le_fcfs_with_exact_predictions(load):
    size = exponential(1.0)
    lam = load / size.mean
    cloud = theory.Cloud.build(size, EXACT)
    srpt = theory.srpt_mean_response(size, lam)
    fcfs = theory.fcfs_mean_response(size, lam)
    for c in (0.0, 0.3, 0.8):
        lp = theory.sprpt_lp_mean_response(cloud, lam, c)
        assert srpt <= lp * (1 + 1e-4) <= fcfs


def test_more_preemption_helps_with_exact_predictions():
    size = lognormal(1.0, 1.0)
    cloud = theory.Cloud.build(size, EXACT)
    values = [theory.sprpt_lp_mean_response(cloud, 0.8, c) for c in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert all(b <= a + 1e-9 for a, b in zip(values, values[1:], strict=False))


def test_large_c_converges_to_sprpt():
    size = exponential(1.0)
    cloud = theory.Cloud.build(size, PredictionModel(0.5), nx=300, nz=41)
    sprpt = theory.sprpt_lp_mean_response(cloud, 0.8, math.inf)
    assert theory.sprpt_lp_mean_response(cloud, 0.8, 1e6) == pytest.approx(sprpt, rel=1e-12)
    assert theory.sprpt_lp_mean_response(cloud, 0.8, 0.0) > sprpt


def test_prediction_error_costs_time():
    size = exponential(1.0)
    exact = theory.sprpt_lp_mean_response(theory.Cloud.build(size, EXACT), 0.8, math.inf)
    noisy = theory.sprpt_lp_mean_response(
        theory.Cloud.build(size, PredictionModel(1.0), nx=300, nz=41), 0.8, math.inf
    )
    assert exact < noisy < theory.fcfs_mean_response(size, 0.8)


def test_overload_is_infinite():
    size = exponential(1.0)
    assert math.isinf(
        theory.sprpt_lp_mean_response(theory.Cloud.build(size, EXACT, nx=200), 1.1, 0.5)
    )
    assert math.isinf(theory.fcfs_mean_response(size, 1.0))


@pytest.mark.parametrize("c", [0.0, 0.4, 1.0, math.inf])
def test_sorted_old_tail_sum_equals_the_direct_sum(c):
    from trail.lab.sim.theory import _old_tail_work, _old_tail_work_direct

    cloud = theory.Cloud.build(lognormal(1.0, 1.0), PredictionModel(0.7), nx=60, nz=15)
    thresholds = np.concatenate([cloud.r[::7], np.geomspace(1e-3, 50, 40)])
    fast = _old_tail_work(cloud, 0.5, c, thresholds)
    direct = _old_tail_work_direct(cloud, 0.5, c, thresholds)
    # the quadratic expansion cancels where the sum is ~0: compare on the scale of the sum
    np.testing.assert_allclose(fast, direct, rtol=1e-7, atol=1e-6 * direct.max())


def test_empirical_lengths_from_a_file(tmp_path):
    from trail.lab.sim.distributions import by_name

    lengths = np.random.default_rng(0).lognormal(4.0, 1.0, 5000).round() + 1
    path = tmp_path / "lengths.txt"
    np.savetxt(path, lengths)
    size = by_name(f"file:{path}")
    assert size.mean == pytest.approx(lengths.mean(), rel=0.02)
    lam = 0.8 / size.mean
    soap = theory.sprpt_lp_mean_response(theory.Cloud.build(size, EXACT), lam, math.inf)
    assert soap == pytest.approx(theory.srpt_mean_response(size, lam), rel=5e-3)
