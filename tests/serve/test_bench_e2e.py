"""`trail bench`'s load generator against the live test app (tiny model, trail-oracle): every
request completes with exactly the requested tokens, and the summary agrees with the records."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from trail.lab.bench.runner import LoadSpec, run_closed, run_open

pytestmark = pytest.mark.serve

PROMPTS = ["Say hi.", "Count to five.", "Name a colour.", "What is 2+2?"]


def test_open_loop_run_against_the_app(serve_app, tmp_path: Path):  # noqa: ANN001
    trace = tmp_path / "trace.jsonl"
    rows = [{"prompt": PROMPTS[i % 4], "out_tokens": 4 + (i * 7) % 29} for i in range(12)]
    trace.write_text("".join(json.dumps(r) + "\n" for r in rows))
    spec = LoadSpec(n=12, seed=0, max_out=32, mode="exact", source=str(trace), timeout_s=120)
    records, s = run_open(serve_app.url, "tiny", spec, rate=4.0, send_true_len=True, progress=False)

    assert [r.error for r in records if not r.ok] == []
    assert all(r.out_tokens == r.expected_tokens for r in records)
    assert all(0 < r.ttft_s <= r.latency_s for r in records)
    assert sorted(r.expected_tokens for r in records) == sorted(x["out_tokens"] for x in rows)
    assert all(r.replica for r in records)
    assert (s["requests"], s["completed"], s["errors"], s["wrong_length"]) == (12, 12, 0, 0)
    assert s["output_tokens"] == sum(x["out_tokens"] for x in rows)
    assert s["mean_ttft_s"] <= s["mean_latency_s"] <= s["p99_latency_s"]
    assert s["p50_latency_s"] <= s["p90_latency_s"] <= s["p99_latency_s"]
    assert s["throughput_tok_s"] == pytest.approx(s["output_tokens"] / s["span_s"])
    sends = [r.sent_s for r in records]  # span runs from the first send, not from run start
    assert s["span_s"] >= max(sends) - min(sends) + min(r.latency_s for r in records)

    closed, cs = run_closed(serve_app.url, "tiny", spec, concurrency=6, progress=False)
    assert cs["completed"] == 12 and cs["wrong_length"] == 0
