"""Summary math of an HTTP run: percentiles, TPOT, span, throughput, goodput."""

from __future__ import annotations

import pytest

from trail.lab.bench.client import Record
from trail.lab.bench.run_summary import SLO, span_s, steady_tok_s, summarize_records


def rec(i: int, sent: float, ttft: float, lat: float, out: int, ok: bool = True) -> dict:
    r = Record(
        f"r{i}", sent, expected_tokens=out, ok=ok, ttft_s=ttft, latency_s=lat, out_tokens=out
    )
    if not ok:
        r.error, r.out_tokens = "HTTP 500", 0
    return r.to_dict()


def test_tpot_excludes_the_first_token():
    r = Record("a", 0.0, 11, ok=True, ttft_s=1.0, latency_s=3.0, out_tokens=11)
    assert r.tpot_s == pytest.approx(0.2)
    assert Record("b", 0.0, 1, ok=True, ttft_s=1.0, latency_s=1.0, out_tokens=1).tpot_s is None


def test_summary_fields():
    rs = [rec(0, 0.0, 0.5, 2.0, 10), rec(1, 1.0, 1.0, 4.0, 30), rec(2, 2.0, 0.1, 1.0, 20)]
    rs.append(rec(3, 3.0, 0.0, 0.0, 0, ok=False))
    s = summarize_records(rs, SLO(ttft_s=0.8, latency_s=3.0))
    assert (s["requests"], s["completed"], s["errors"]) == (4, 3, 1)
    assert s["mean_latency_s"] == pytest.approx(7 / 3)
    assert s["p50_latency_s"] == pytest.approx(2.0)
    assert s["mean_ttft_s"] == pytest.approx(1.6 / 3)
    assert s["span_s"] == pytest.approx(5.0)  # first send 0 -> last completion 1 + 4
    assert s["output_tokens"] == 60
    assert s["throughput_tok_s"] == pytest.approx(12.0)
    assert s["throughput_req_s"] == pytest.approx(0.6)
    assert s["goodput_req_s"] == pytest.approx(2 / 5.0)  # r0 and r2 meet both bounds
    assert s["slo_attainment"] == pytest.approx(0.5)
    assert s["mean_tpot_s"] == pytest.approx(((1.5 / 9) + (3.0 / 29) + (0.9 / 19)) / 3)
    assert s["wrong_length"] == 0


def test_wrong_length_and_empty():
    r = rec(0, 0.0, 0.1, 1.0, 5)
    r["expected_tokens"] = 6
    assert summarize_records([r])["wrong_length"] == 1
    assert span_s([]) == 0.0
    s = summarize_records([rec(0, 0.0, 0.0, 0.0, 0, ok=False)], SLO(latency_s=1))
    assert s["completed"] == 0 and s["goodput_req_s"] == 0.0


def test_slo_without_bounds_counts_every_completed_request():
    assert SLO().met(rec(0, 0, 100.0, 100.0, 3))
    assert not SLO().met(rec(0, 0, 0, 0, 0, ok=False))
    assert SLO(tpot_s=0.01).label() == "TPOT<=0.01s"


def test_steady_throughput_leaves_out_start_and_drain():
    # 2 slots, 10 tok/s per request, 20 tokens each (2 s): pairs run at 0-2, 2-4, 4-6, one at 6-8
    rs = []
    for i, start in enumerate([0, 0, 2, 2, 4, 4, 6]):
        rs.append(rec(i, 0.0, start + 0.0, start + 2.0, 20))
    assert steady_tok_s(rs, k=2) == pytest.approx(20.0)
    assert summarize_records(rs)["throughput_tok_s"] == pytest.approx(140 / 8)
    assert steady_tok_s(rs[:2], k=2) == pytest.approx(40 / 2)  # too few: the plain rate
