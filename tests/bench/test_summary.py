"""Benchmark arithmetic: latency summaries and ratios."""

from __future__ import annotations

import pytest

from trail.lab.stats.summary import ratios, summarize


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


def test_replay_requests_do_not_hand_the_length_to_non_oracle_policies():
    """ignore_eos + max_tokens = the true length: the ranking must not use it as a cap."""
    from trail.lab.bench.replay import build_arrivals
    from trail.lab.workload.prompts import WorkItem

    class Tok:  # the two calls chat_prompt_ids makes
        def apply_chat_template(self, *args, **kwargs) -> str:  # noqa: ANN002, ANN003
            return "<user>hi"

        def __call__(self, text: str, **kwargs) -> dict:  # noqa: ANN003
            return {"input_ids": [1, 2, 3]}

    tok = Tok()
    items = [WorkItem(prompt="hi", out_tokens=7)]
    (arrival,) = build_arrivals(items, tok, [0.5], initial=None, lengths=[7])
    assert arrival["params"]["max_tokens"] == 7 and arrival["params"]["ignore_eos"]
    assert arrival["params"]["extra_args"]["trail"]["use_max_tokens"] is False
    assert arrival["at_time"] == 0.5
    # without lengths: the natural-length run (EOS on, up to the cap)
    (natural,) = build_arrivals(items, tok, [0.0], initial=None, cap=64)
    assert natural["params"]["max_tokens"] == 64 and "ignore_eos" not in natural["params"]
