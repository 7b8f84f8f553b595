"""The experiment's report as rich tables, each narrow enough for an 80-column terminal:
per load the absolute figures, the FCFS ratios with intervals and per length bucket; then the
simulator check and, when asked, the project's goals."""

from __future__ import annotations

from typing import Any

from trail.lab.stats.intervals import BUCKETS


def ci_text(r: dict | None) -> str:
    if not r:
        return "-"
    return f"{r['value']:.2f} [{r['low']:.2f},{r['high']:.2f}]"


def rich_table(title: str, cols: list[str]) -> Any:
    from rich.table import Table

    t = Table(title=title)
    for i, col in enumerate(cols):
        t.add_column(col, justify="left" if i == 0 else "right")
    return t


def print_report(console: Any, report: dict[str, Any], goals: bool = False) -> None:
    """Every load's tables and the simulator check; the project's goals only when asked (a
    user's run has no such targets: they stay in experiment.json)."""
    for load, rows in report["table"].items():
        print_load(console, load, rows)
    for load, check in report.get("sim_check", {}).items():
        t = rich_table(
            f"simulator vs engine, load {load} (cost model fitted to the runs' steps)",
            ["policy", "engine FCFS/x", "sim FCFS/x", "gap", "engine mean s", "sim mean s"],
        )
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
    for g in report.get("goals", []) if goals else []:
        mark = "met" if g["met"] else "MISSED"
        console.print(f"goal {g['goal']} (target {g['target']}): {g['value']:.2f} - {mark}")


def latency_cells(r: dict[str, Any]) -> list[str]:
    """n, mean, P99 and TTFT of one policy's row: the first columns of every replay table."""
    return [
        str(r["requests"]),
        f"{r['mean_latency_s']:.1f}",
        f"{r['p99_latency_s']:.1f}",
        f"{r['mean_ttft_s']:.1f}",
    ]


def print_load(console: Any, load: str, rows: dict[str, Any]) -> None:
    cols = ["policy", "n", "mean s", "P99 s", "TTFT s", "tok/s ×", "preempt p/kv/s", "recomp"]
    cols.append("wait τ")
    t = rich_table(f"load {load} × saturation", cols)
    for label, r in rows.items():
        reasons = r["preemptions_by_reason"]
        t.add_row(
            label,
            *latency_cells(r),
            f"{r['throughput_vs_fcfs']:.2f}",
            "/".join(str(reasons.get(k, 0)) for k in ("policy", "kv_pressure", "starvation"))
            + (f" +{r['parks']} parked" if r.get("parks") else ""),
            str(r["recomputed_tokens"]),
            "–" if r.get("waiting_tau") is None else f"{r['waiting_tau']:.2f}",
        )
    console.print(t)
    ref = next((r["reference"] for r in rows.values() if "reference" in r), None)
    cols = ["policy", "mean", "TTFT", "2nd token", "P99", "P99 stall", "longest stall s"]
    cols += [f"mean: x / {ref}"] if ref else []
    t = rich_table(f"load {load}: FCFS / policy, 95 % CI", cols)
    for label, r in rows.items():
        if label == "fcfs":
            continue  # 1 by definition
        q = r["fcfs_over"]
        keys = ("mean_latency", "mean_ttft", "mean_ttst", "p99_latency", "p99_stall")
        cells = [ci_text(q[k]) for k in keys] + [f"{r['longest_stall_s']:.0f}"]
        if ref:
            over = r.get("over_reference_mean_latency")
            cells.append(ci_text(over) if over else "1")
        t.add_row(label, *cells)
    console.print(t)
    t = rich_table(f"load {load}: FCFS / policy mean latency by true length", ["policy", *BUCKETS])
    for label, r in rows.items():
        if label == "fcfs":
            continue
        b = r["fcfs_over_by_bucket"]
        t.add_row(label, *(ci_text(b.get(k, {}).get("mean_latency")) for k in BUCKETS))
    console.print(t)
