"""Engine-level replay: one workload, Poisson arrivals, one fresh engine per policy.

Not a test: it measures. Prints mean/P50/P99 latency and mean TTFT per policy and the ratios
FCFS/policy, and writes JSON + a PNG.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from trail.bench.arrivals import arrival_times
from trail.bench.stats import ratios, summarize
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
    engine: dict, policy: str, arrivals: list[dict], workdir: Path, trail_extra: dict
) -> dict:
    from trail.engine.run_scenario import run_in_subprocess

    spec_engine = dict(engine, trail={"policy": policy, **trail_extra})
    res = run_in_subprocess({"engine": spec_engine, "phases": [arrivals]}, workdir / policy)
    lat = [r["latency_s"] for r in res.values()]
    ttft = [r["ttft_s"] for r in res.values()]
    tokens = sum(len(r["token_ids"]) for r in res.values())
    span = max(r["finish_s"] for r in res.values()) - min(r["arrival_s"] for r in res.values())
    return {"summary": summarize(lat, ttft, tokens, span), "requests": res}


def report(results: dict[str, dict]) -> dict[str, dict]:
    keys = ["mean_latency_s", "p50_latency_s", "p99_latency_s", "mean_ttft_s"]
    base = results.get("fcfs", {}).get("summary")
    return {p: ratios(base, r["summary"], keys) for p, r in results.items()} if base else {}


def save(out_dir: Path, results: dict, rel: dict, meta: dict) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    slim = {p: r["summary"] for p, r in results.items()}
    (out_dir / "replay.json").write_text(
        json.dumps({"meta": meta, "summary": slim, "fcfs_over": rel}, indent=2)
    )
    plot(out_dir / "replay.png", slim, meta)


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
