"""The benchmark's request set: the shipped test set, seeded order, clipping, JSONL traces."""

from __future__ import annotations

import json
from pathlib import Path

from trail.lab.bench.runner import LoadSpec
from trail.lab.workload.requests import DEFAULT_SET, build, load_source, save


def test_shipped_set_loads_and_builds_deterministically():
    assert DEFAULT_SET.exists()
    pairs = load_source()
    # the held-out test split of the shipped profile (26 requests since the 2026-12-02 profile):
    # enough for the 20-request build below without repeats
    assert len(pairs) >= 20 and all(p and n > 0 for p, n in pairs)
    a, b = build(pairs, 20, seed=3, max_out=64), build(pairs, 20, seed=3, max_out=64)
    assert a == b and a != build(pairs, 20, seed=4, max_out=64)
    assert all(1 <= r.out_tokens <= 64 and r.out_tokens == min(r.natural_tokens, 64) for r in a)
    assert len({r.prompt for r in a}) == 20  # no repeats while the set lasts


def test_set_repeats_when_n_exceeds_it():
    reqs = build([("a", 5), ("b", 7)], 5, seed=0)
    assert len(reqs) == 5 and {r.prompt for r in reqs} == {"a", "b"}
    assert [r.id for r in reqs] == ["r0000", "r0001", "r0002", "r0003", "r0004"]


def test_jsonl_trace_and_save(tmp_path: Path):
    trace = tmp_path / "t.jsonl"
    trace.write_text(json.dumps({"prompt": "p1", "out_tokens": 9}) + "\n")
    assert load_source(trace) == [("p1", 9)]
    reqs = build(load_source(trace), 1, 0)
    save(reqs, tmp_path / "out.jsonl")
    assert json.loads((tmp_path / "out.jsonl").read_text())["out_tokens"] == 9


def test_spec_is_reproducible():
    spec = LoadSpec(n=8, seed=5)
    assert spec.requests() == LoadSpec(n=8, seed=5).requests()
    assert spec.unit_times() == LoadSpec(n=8, seed=5).unit_times()
