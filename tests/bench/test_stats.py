"""Benchmark arithmetic: Poisson arrivals and latency summaries."""

from __future__ import annotations

import numpy as np
import pytest

from trail.bench.stats import poisson_arrivals, ratios, summarize


def test_poisson_arrivals_have_the_requested_rate_and_are_seeded():
    t = poisson_arrivals(20_000, rate=4.0, seed=1)
    assert np.all(np.diff(t) > 0)
    assert len(t) / t[-1] == pytest.approx(4.0, rel=0.03)
    assert np.array_equal(t, poisson_arrivals(20_000, 4.0, seed=1))
    assert not np.array_equal(t, poisson_arrivals(20_000, 4.0, seed=2))
    gaps = np.diff(t)
    assert np.std(gaps) / np.mean(gaps) == pytest.approx(1.0, abs=0.05)  # exponential: CV = 1


def test_summary_and_ratios():
    s = summarize([1.0, 2.0, 3.0, 10.0], [0.1, 0.2, 0.3, 0.4], tokens=100, span_s=10.0)
    assert s["n"] == 4
    assert s["mean_latency_s"] == pytest.approx(4.0)
    assert s["p50_latency_s"] == pytest.approx(2.5)
    assert s["mean_ttft_s"] == pytest.approx(0.25)
    assert s["throughput_tok_s"] == pytest.approx(10.0)
    r = ratios({"mean_latency_s": 8.0}, {"mean_latency_s": 2.0}, ["mean_latency_s"])
    assert r["mean_latency_s"] == pytest.approx(4.0)
    assert summarize([], [], 0, 1.0) == {"n": 0}
