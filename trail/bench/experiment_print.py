"""The experiment's report as rich tables: per load, per policy; the simulator check; goals."""

from __future__ import annotations

from typing import Any

from trail.bench.intervals import BUCKETS


def _ci(r: dict | None) -> str:
    if not r:
        return "-"
    return f"{r['value']:.2f} [{r['low']:.2f},{r['high']:.2f}]"


def print_report(console: Any, report: dict[str, Any]) -> None:
    from rich.table import Table

    for load, rows in report["table"].items():
        t = Table(title=f"load {load} × saturation (FCFS / policy, 95 % CI)")
        cols = ["policy", "n", "mean lat", "P99", "TTFT", "mean lat ×", "TTFT ×", "P99 ×"]
        cols += ["stall P99 ×", *BUCKETS, "tok/s ×", "preempt p/kv/s", "recomp"]
        for col in cols:
            t.add_column(col, justify="right")
        for label, r in rows.items():
            q, b = r["fcfs_over"], r["fcfs_over_by_bucket"]
            reasons = r["preemptions_by_reason"]
            t.add_row(
                label,
                str(r["requests"]),
                f"{r['mean_latency_s']:.1f}",
                f"{r['p99_latency_s']:.1f}",
                f"{r['mean_ttft_s']:.1f}",
                _ci(q["mean_latency"]),
                _ci(q["mean_ttft"]),
                _ci(q["p99_latency"]),
                _ci(q["p99_stall"]),
                *[_ci(b.get(k, {}).get("mean_latency")) for k in BUCKETS],
                f"{r['throughput_vs_fcfs']:.2f}",
                "/".join(str(reasons.get(k, 0)) for k in ("policy", "kv_pressure", "starvation")),
                str(r["recomputed_tokens"]),
            )
        console.print(t)
    for load, check in report.get("sim_check", {}).items():
        t = Table(title=f"simulator vs engine, load {load} (calibrated from the runs' steps)")
        for col in ["policy", "engine FCFS/x", "sim FCFS/x", "gap", "engine mean", "sim mean"]:
            t.add_column(col, justify="right")
        for label, r in check["policies"].items():
            t.add_row(
                label,
                f"{r['engine_fcfs_over']:.2f}",
                f"{r['sim_fcfs_over']:.2f}",
                f"{100 * r['rel_gap']:.0f} %",
                f"{r['engine_mean_latency_s']:.1f}",
                f"{r['sim_mean_latency_s']:.1f}",
            )
        console.print(t)
    for g in report.get("goals", []):
        mark = "met" if g["met"] else "MISSED"
        console.print(f"goal {g['goal']} (target {g['target']}): {g['value']:.2f} — {mark}")
