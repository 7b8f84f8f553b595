"""Comparison tables, headline ratios and plots from a synthetic results.json."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from trail.lab.bench.client import Record
from trail.lab.bench.compare import write_outputs
from trail.lab.bench.loadgen import save_jsonl
from trail.lab.bench.report import headline, markdown, rows, top_complete_load


def run(group: str, policy: str, load: float, mean: float, errors: int = 0, **kw) -> dict:
    summary = {
        "completed": 4 - errors,
        "errors": errors,
        "mean_latency_s": mean,
        "p50_latency_s": mean,
        "p90_latency_s": mean,
        "p99_latency_s": 2 * mean,
        "mean_ttft_s": mean / 4,
        "p99_ttft_s": mean / 2,
        "mean_tpot_s": 0.1,
        "throughput_tok_s": 100.0 / mean,
        "goodput_req_s": 0.1,
        "wrong_length": 0,
    }
    row = {
        "group": group,
        "policy": policy,
        "router": kw.get("router", "trail"),
        "replicas": kw.get("replicas", 1),
        "c": kw.get("c", 0.8),
        "load": load,
        "rate": load * 0.5,
        "summary": summary,
    }
    row["jsonl"] = f"runs/{group}_{policy}_{row['router']}_{row['c']}_{load}.jsonl"
    return row


@pytest.fixture
def results() -> dict:
    runs = [
        run("policy", p, ld, m)
        for p, m in [("fcfs", 8.0), ("trail", 4.0), ("trail-oracle", 2.0)]
        for ld in (0.5,)
    ]
    runs += [run("policy", "fcfs", 1.0, 20.0, errors=1), run("policy", "trail", 1.0, 10.0)]
    runs += [run("c", "trail", 1.0, 12.0, c=0.0)]
    runs += [run("router", "trail", 0.9, 5.0, router=r, replicas=2) for r in ("trail",)]
    runs += [run("router", "trail", 0.9, 6.0, router="pow2", replicas=2)]
    sat = {
        "1": {
            "policy": "fcfs",
            "router": "trail",
            "saturation_req_s": 0.5,
            "throughput_tok_s": 50.0,
            "mean_latency_s": 9.0,
        }
    }
    return {"meta": {}, "saturation": sat, "runs": runs}


def test_headline_uses_the_highest_load_fcfs_completes(results: dict):
    assert top_complete_load(results["runs"]) == 0.5
    h = headline(results)
    assert h["fcfs_over_trail_mean_latency"] == pytest.approx(2.0)
    assert h["fcfs_over_trail_mean_ttft"] == pytest.approx(2.0)
    assert h["trail_over_oracle_mean_latency"] == pytest.approx(2.0)
    assert h["p99_trail_over_fcfs"] == pytest.approx(0.5)
    assert h["throughput_load"] == 1.0
    assert h["throughput_trail_over_fcfs"] == pytest.approx(2.0)  # 100/10 over 100/20
    assert h["pow2_over_trail_router_mean_latency"] == pytest.approx(1.2)
    assert math.isnan(h["round_robin_over_trail_router_mean_latency"])


def test_rows_have_ratios_to_fcfs_and_to_pow2(results: dict):
    by = {(r["group"], r["policy"], r["router"], r["load"]): r for r in rows(results)}
    assert by[("policy", "trail", "trail", 0.5)]["fcfs_over_mean_latency_s"] == pytest.approx(2.0)
    assert by[("c", "trail", "trail", 1.0)]["fcfs_over_mean_latency_s"] == pytest.approx(20 / 12)
    assert by[("router", "trail", "trail", 0.9)]["pow2_over_mean_latency_s"] == pytest.approx(1.2)
    md = markdown(results)
    assert "FCFS/TRAIL mean latency | 2.00×" in md and "Ray P2C / ours" in md


def test_outputs_are_written(results: dict, tmp_path: Path):
    for r in results["runs"]:
        m = r["summary"]["mean_latency_s"]
        recs = [Record(f"q{i}", float(i), 5, True, 0.1, m * (i + 1) / 2, 5) for i in range(4)]
        save_jsonl(recs, tmp_path / r["jsonl"])
    paths = write_outputs(results, tmp_path)
    names = {p.name for p in paths}
    assert {
        "report.md",
        "latency_vs_rate.png",
        "latency_cdf.png",
        "c_sensitivity.png",
        "routers.png",
    } <= names
    assert all(p.stat().st_size > 1000 for p in paths if p.suffix == ".png")
