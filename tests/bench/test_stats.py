"""Benchmark arithmetic: latency summaries and ratios."""

from __future__ import annotations

import pytest

from trail.bench.stats import ratios, summarize


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
