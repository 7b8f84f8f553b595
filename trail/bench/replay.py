"""Engine-level replay: one workload, Poisson arrivals, one fresh engine per policy.

Not a test: it measures. Prints mean/P50/P99 latency and mean TTFT per policy and the ratios
FCFS/policy, and writes JSON + a PNG.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from trail.bench.arrivals import arrival_times
from trail.bench.summary import ratios, summarize
from trail.bench.workload import WorkItem


def build_arrivals(
    items: list[WorkItem], tokenizer: Any, rate: float, seed: int, initial: list | None
) -> list[dict]:
    from trail.models.chat import chat_prompt_ids

    times = arrival_times(len(items), rate, seed)
    arrivals = []
    for i, (w, t) in enumerate(zip(items, times, strict=True)):
        # max_tokens is the true length here: no policy but the oracle may rank by it
        extra: dict[str, Any] = {"use_max_tokens": False}
        if initial is not None:
            extra["initial_dist"] = [float(x) for x in initial[i]]
        arrivals.append(
            {
                "id": f"q{i}",
                "prompt_ids": chat_prompt_ids(tokenizer, w.prompt),
                "params": {
                    "max_tokens": w.out_tokens,
                    "ignore_eos": True,
                    "extra_args": {"trail": extra},
                },
                "at_time": float(t),
            }
        )
    return arrivals


def run_policy(
    engine: dict,
    policy: str,
    arrivals: list[dict],
    workdir: Path,
    trail_extra: dict,
    label: str | None = None,
) -> dict:
    """One fresh engine under one policy; latency summary plus preemptions by reason and the
    tokens they left to recompute (from the scheduler's event log)."""
    from trail.engine.run_scenario import run_in_subprocess

    folder = workdir / (label or policy)
    folder.mkdir(parents=True, exist_ok=True)
    dump = folder / "events.jsonl"
    dump.unlink(missing_ok=True)
    spec_engine = dict(engine, trail={"policy": policy, "dump_path": str(dump), **trail_extra})
    res = run_in_subprocess({"engine": spec_engine, "phases": [arrivals]}, folder)
    lat = [r["latency_s"] for r in res.values()]
    ttft = [r["ttft_s"] for r in res.values()]
    tokens = sum(len(r["token_ids"]) for r in res.values())
    span = max(r["finish_s"] for r in res.values()) - min(r["arrival_s"] for r in res.values())
    summary = summarize(lat, ttft, tokens, span)
    summary.update(preemption_counts(dump))
    return {"summary": summary, "requests": res}


def preemption_counts(dump: Path) -> dict[str, Any]:
    by_reason: dict[str, int] = {}
    recompute = 0
    if dump.exists():
        for line in dump.read_text().splitlines():
            e = json.loads(line)
            if e.get("event") == "preempted":
                by_reason[e["reason"]] = by_reason.get(e["reason"], 0) + 1
                recompute += int(e.get("recompute", 0))
    return {
        "preemptions": sum(by_reason.values()),
        "preemptions_by_reason": by_reason,
        "recomputed_tokens": recompute,
    }


def report(results: dict[str, dict]) -> dict[str, dict]:
    keys = ["mean_latency_s", "p50_latency_s", "p99_latency_s", "mean_ttft_s"]
    base = results.get("fcfs", {}).get("summary")
    return {p: ratios(base, r["summary"], keys) for p, r in results.items()} if base else {}


def save_seeds(out_dir: Path, runs: dict[int, dict], meta: dict) -> dict:
    """replay.json: per seed the summaries and FCFS ratios, and the ratios' mean and range
    over seeds; replay.png: the seed means."""
    out_dir.mkdir(parents=True, exist_ok=True)
    per_seed = {
        seed: {"summary": {p: r["summary"] for p, r in res.items()}, "fcfs_over": report(res)}
        for seed, res in runs.items()
    }
    labels = list(next(iter(runs.values())))
    keys = ("mean_latency_s", "p99_latency_s", "mean_ttft_s", "throughput_tok_s")
    mean = {
        p: {k: float(np.mean([per_seed[s]["summary"][p][k] for s in runs])) for k in keys}
        for p in labels
    }
    spread = {
        p: {
            k: [
                float(f(per_seed[s]["fcfs_over"].get(p, {}).get(k, np.nan) for s in runs))
                for f in (min, max)
            ]
            for k in ("mean_latency_s", "p99_latency_s", "mean_ttft_s")
        }
        for p in labels
    }
    doc = {"meta": meta, "per_seed": per_seed, "mean_over_seeds": mean, "fcfs_over_range": spread}
    (out_dir / "replay.json").write_text(json.dumps(doc, indent=2))
    plot(out_dir / "replay.png", mean, meta)
    return doc


def plot(path: Path, summary: dict, meta: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    policies = list(summary)
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, key, title in zip(
        axes,
        ["mean_latency_s", "p99_latency_s", "mean_ttft_s"],
        ["mean latency (s)", "P99 latency (s)", "mean TTFT (s)"],
        strict=True,
    ):
        ax.bar(policies, [summary[p][key] for p in policies], color="#4c72b0")
        ax.set_title(title)
        ax.tick_params(axis="x", rotation=30)
    fig.suptitle(
        f"engine replay: {meta['n']} requests, {meta['rate']} req/s, max_num_seqs={meta['max_num_seqs']}"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
