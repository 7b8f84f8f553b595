"""Arrival processes of the HTTP load generator: rate, seed, burstiness."""

from __future__ import annotations

import numpy as np
import pytest

from trail.lab.workload.arrivals import arrival_times, scaled


@pytest.mark.parametrize("burstiness", [1.0, 0.25, 4.0])
def test_mean_rate_matches(burstiness: float):
    t = arrival_times(20_000, rate=3.0, seed=7, burstiness=burstiness)
    assert np.all(np.diff(t) >= 0)
    assert len(t) / t[-1] == pytest.approx(3.0, rel=0.05)


def test_seeded_and_reproducible():
    a = arrival_times(500, 2.0, seed=1)
    assert np.array_equal(a, arrival_times(500, 2.0, seed=1))
    assert not np.array_equal(a, arrival_times(500, 2.0, seed=2))


def test_burstiness_sets_the_coefficient_of_variation():
    for k in (1.0, 0.25, 4.0):
        gaps = np.diff(arrival_times(40_000, 1.0, seed=3, burstiness=k))
        assert np.std(gaps) / np.mean(gaps) == pytest.approx(1 / np.sqrt(k), rel=0.06)


def test_scaling_keeps_the_pattern_and_changes_the_rate():
    unit = arrival_times(1000, 1.0, seed=0)
    fast = scaled(unit, 4.0)
    assert np.allclose(fast * 4.0, unit)
    assert len(fast) / fast[-1] == pytest.approx(4.0, rel=0.1)


def test_edge_cases():
    assert np.array_equal(arrival_times(3, float("inf"), 0), np.zeros(3))
    assert arrival_times(0, 1.0, 0).size == 0
    with pytest.raises(ValueError):
        arrival_times(3, 0.0, 0)
    with pytest.raises(ValueError):
        arrival_times(3, 1.0, 0, burstiness=0)
