"""Print an experiment.json (`trail bench replay`) as the markdown tables docs/benchmarks.md
carries: absolute figures per policy, then FCFS / policy and the reference column with their
95 % intervals.  Usage: python -m trail.lab.analyses.experiment_table runs/http_routers/experiment.json"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def ci(r: dict | None) -> str:
    return "-" if not r else f"{r['value']:.2f} [{r['low']:.2f}, {r['high']:.2f}]"


def step(ms: float | None) -> str:
    return "-" if ms is None else f"{ms:.1f}"


def tables(report: dict) -> str:
    out = []
    ref = report["meta"].get("reference")
    for load, rows in report["table"].items():
        out.append(f"load {load} × saturation\n")
        out.append(
            "| policy | n | mean latency (s) | P99 (s) | mean TTFT (s) | tok/s vs FCFS"
            " | full-batch step (ms) | preemptions |"
        )
        out.append("|---|---|---|---|---|---|---|---|")
        for label, r in rows.items():
            out.append(
                f"| {label} | {r['requests']} | {r['mean_latency_s']:.1f} | {r['p99_latency_s']:.1f}"
                f" | {r['mean_ttft_s']:.1f} | {r['throughput_vs_fcfs']:.2f}"
                f" | {step(r.get('full_batch_step_ms'))} | {r['preemptions']} |"
            )
        out.append("")
        out.append(
            f"| FCFS / policy | mean | TTFT | P99 | short | medium | long | mean: x / {ref} |"
        )
        out.append("|---|---|---|---|---|---|---|---|")
        for label, r in rows.items():
            if label == "fcfs":
                continue
            q, b = r["fcfs_over"], r["fcfs_over_by_bucket"]
            buckets = [
                ci((b.get(k) or {}).get("mean_latency")) for k in ("short", "medium", "long")
            ]
            over = ci(r.get("over_reference_mean_latency")) if label != ref else "1"
            out.append(
                f"| {label} | {ci(q['mean_latency'])} | {ci(q['mean_ttft'])} | {ci(q['p99_latency'])}"
                f" | {' | '.join(buckets)} | {over} |"
            )
        out.append("")
    return "\n".join(out)


if __name__ == "__main__":
    print(tables(json.loads(Path(sys.argv[1]).read_text())))
