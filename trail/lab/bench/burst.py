"""The burst comparison that ends `make run`: FCFS, `trail` and TRAIL+ on one burst of short
answers with a few loopers, read out as a small table and one plain-words verdict per policy."""

from __future__ import annotations

import math
from typing import Any

from trail.lab.bench.replay_print import ci_text, latency_cells, rich_table

WHAT = {  # what each policy ranks by, for a newcomer
    "fcfs": "first come, first served",
    "trail": "predicted remaining length: the prompt predictor at arrival, then the probe + "
    "Bayes while it decodes",
    "trail-oracle": "TRAIL+, the true remaining length: what perfect predictions would give",
}

NEXT_STEPS = (
    "the full benchmark, all five policies at 2.5 x saturation, 3 seeds x 200 requests (about "
    "an hour on 2 cores; docs/benchmarks.md): trail bench replay --workload "
    "trail/assets/smollm2/heldout_brief.jsonl --n 200 --loads 2.5 --seeds 0,1,2",
    "check this machine or a GPU node before serving: trail doctor",
    "serve TRAIL behind the OpenAI API (Ray Serve, routers, Redis): docs/serving.md",
)


def verdict(label: str, ratio: dict[str, float]) -> str:
    """One sentence from FCFS / policy mean latency and its 95 % interval: how many times lower
    (or higher) the policy's mean latency is, and "within noise" when the interval holds 1."""
    v, lo, hi = ratio["value"], ratio["low"], ratio["high"]
    if not all(map(math.isfinite, (v, lo, hi))) or min(v, lo, hi) <= 0:
        return f"{label}: no comparison (the ratio is undefined)"
    if v >= 1:
        said = f"{label}: mean latency {v:.2f}× lower than FCFS [{lo:.2f}, {hi:.2f}]"
    else:  # the same ratio the other way up, its interval too
        said = f"{label}: mean latency {1 / v:.2f}× higher than FCFS [{1 / hi:.2f}, {1 / lo:.2f}]"
    if lo <= 1 <= hi:
        return f"{said} - within noise on this burst"
    return said


SPEED_SPREAD = 1.25  # on an idle machine the same burst keeps the engine busy within ~12 %


def busy_seconds(cell: dict) -> float:
    """Seconds the engine spent in steps: the same work under every policy, so on a steady
    machine nearly the same figure (preemptions add a little recompute)."""
    return float(sum(s["step_s"] for s in cell.get("steps", [])))


def speed_warning(busy: dict[str, float]) -> str | None:
    """A warning when the same work took the engine much longer under one policy than under
    another: the machine ran slower during that run (other work on its cores), and the
    latency ratios mix that in."""
    known = {k: v for k, v in busy.items() if v > 0}
    if len(known) < 2:
        return None
    slow, fast = max(known, key=known.get), min(known, key=known.get)  # type: ignore[arg-type]
    if known[slow] <= SPEED_SPREAD * known[fast]:
        return None
    return (
        f"warning: the same work kept the engine busy {known[slow]:.0f} s under {slow} but "
        f"{known[fast]:.0f} s under {fast}: the machine was slower during some runs (other "
        "work on its cores), so these ratios mix its speed into the effect of the order; "
        "rerun on an idle machine"
    )


def print_burst(console: Any, rows: dict[str, Any], busy: dict[str, float]) -> None:
    """Absolute figures and FCFS / policy mean latency per policy, then the verdicts (after a
    warning when the machine's speed changed between the runs)."""
    t = rich_table(
        "one burst, every policy on the same requests",
        ["policy", "n", "mean s", "P99 s", "TTFT s", "busy s", "FCFS/x mean, 95 % CI"],
    )
    for label, r in rows.items():
        ratio = "1" if label == "fcfs" else ci_text(r["fcfs_over"]["mean_latency"])
        t.add_row(label, *latency_cells(r), f"{busy.get(label, 0.0):.0f}", ratio)
    console.print(t)
    for label in rows:
        if label in WHAT:
            console.print(f"  {label}: {WHAT[label]}", style="dim")
    console.print("  busy s: engine time in steps (the same work each; its spread = noise)")
    warning = speed_warning(busy)
    if warning:
        console.print(warning, style="yellow")
    n = next(iter(rows.values()))["requests"]
    console.print(f"verdicts (95 % paired bootstrap intervals over the {n} requests):")
    for label, r in rows.items():
        if label != "fcfs":
            console.print("  " + verdict(label, r["fcfs_over"]["mean_latency"]))


def print_next(console: Any) -> None:
    console.print("where to go next:")
    for line in NEXT_STEPS:
        console.print(f"  - {line}")
