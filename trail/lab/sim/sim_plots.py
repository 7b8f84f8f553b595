"""PNG plots of the simulation results (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

Rows = Sequence[dict[str, Any]]


def _c_axis(c: float, finite_max: float) -> float:
    """Plot c = inf one notch right of the largest finite c."""
    return finite_max * 1.5 if math.isinf(c) else c


def plot_validation(rows: Rows, path: Path) -> None:
    """Theory (lines) and simulation (points with 95 % CIs) per distribution, plus the errors."""
    dists = list(dict.fromkeys(r["dist"] for r in rows))
    fig, axes = plt.subplots(2, len(dists), figsize=(6 * len(dists), 8), squeeze=False)
    for col, dist in enumerate(dists):
        by_case: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in rows:
            if r["dist"] == dist:
                by_case[r["case"]].append(r)
        ax, err_ax = axes[0][col], axes[1][col]
        for case, pts in by_case.items():
            pts = sorted(pts, key=lambda r: r["load"])
            loads = [p["load"] for p in pts]
            (line,) = ax.plot(loads, [p["theory"] for p in pts], label=f"{case} theory")
            ax.errorbar(
                loads,
                [p["sim"] for p in pts],
                yerr=[p["ci_half"] for p in pts],
                fmt="o",
                color=line.get_color(),
                capsize=3,
            )
            dodge = 0.006 * (len(err_ax.lines) // 2)  # keep overlapping error bars apart
            err_ax.errorbar(
                [ld + dodge for ld in loads],
                [100 * (p["sim"] - p["theory"]) / p["theory"] for p in pts],
                yerr=[100 * p["ci_half"] / p["theory"] for p in pts],
                fmt="o-",
                color=line.get_color(),
                capsize=3,
                label=case,
            )
        ax.set(title=dist, xlabel="load", ylabel="mean response time (tokens)", yscale="log")
        ax.legend(fontsize=7)
        err_ax.axhspan(-2, 2, color="0.9")
        err_ax.axhline(0, color="k", lw=0.5)
        err_ax.set(xlabel="load", ylabel="(sim - theory) / theory (%), 95% CI")
    fig.suptitle("M/G/1: SOAP theory (lines) vs simulation (points, 95% CI)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_sweep_c(rows: Rows, theory_rows: Rows, path: Path) -> None:
    """Engine latency vs c for each KV budget, beside the memory-free M/G/1 theory."""
    finite = [r["c"] for r in rows if not math.isinf(r["c"])] or [1.0]
    cmax = max(finite)
    fig, (ax, ax99, axt) = plt.subplots(1, 3, figsize=(16, 4.5))
    for kv in sorted({r["kv_tokens"] for r in rows}):
        pts = sorted((r for r in rows if r["kv_tokens"] == kv), key=lambda r: r["c"])
        xs = [_c_axis(p["c"], cmax) for p in pts]
        ax.plot(xs, [p["mean_latency_s"] for p in pts], "o-", label=f"KV {kv} tokens")
        ax99.plot(xs, [p["p99_latency_s"] for p in pts], "o-", label=f"KV {kv} tokens")
    for a, what in ((ax, "mean"), (ax99, "P99")):
        a.set(
            xlabel="c  (rightmost point: c = inf)",
            ylabel=f"{what} latency (s)",
            yscale="log",
            title=f"engine sim: {what} latency vs c",
        )
        a.legend(fontsize=8)
    tp = sorted(theory_rows, key=lambda r: r["c"])
    axt.plot([_c_axis(p["c"], cmax) for p in tp], [p["mean_response"] for p in tp], "s-k")
    axt.set(
        xlabel="c", ylabel="mean response time (tokens)", title="M/G/1 theory (no memory limit)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_routers(rows: Rows, path: Path) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    metrics = (
        ("mean_latency_s", "mean latency (s)"),
        ("p99_latency_s", "P99 latency (s)"),
        ("mean_ttft_s", "mean TTFT (s)"),
    )
    for router in dict.fromkeys(r["router"] for r in rows):
        pts = sorted((r for r in rows if r["router"] == router), key=lambda r: r["replicas"])
        for ax, (key, label) in zip(axes, metrics, strict=True):
            ax.plot([p["replicas"] for p in pts], [p[key] for p in pts], "o-", label=router)
            ax.set(xscale="log", xlabel="replicas", ylabel=label)
    axes[0].legend()
    fig.suptitle("Routers at equal per-replica load (TRAIL scheduling in every engine)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
