"""The experiment's PNGs: ratios to FCFS vs load (with intervals), the latency CDF at the
highest load, and ratios per length bucket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from trail.lab.bench.analysis import request_arrays
from trail.lab.bench.experiment import Cells, Grid
from trail.lab.stats.intervals import BUCKETS


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_all(table: dict[str, Any], grid: Grid, cells: Cells, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    finite = {ld: rows for ld, rows in table.items() if np.isfinite(float(ld))}
    paths = [plot_vs_load(finite, out / "ratios_vs_load.png")] if finite else []
    top = max(table, key=float) if table else None
    if top is not None:
        paths.append(plot_cdf(grid, cells, float(top), out / "latency_cdf.png"))
        paths.append(plot_buckets(table[top], top, out / "ratio_by_bucket.png"))
    return paths


def _err(r: dict) -> tuple[float, list[float]]:
    return r["value"], [r["value"] - r["low"], r["high"] - r["value"]]


def plot_vs_load(table: dict[str, Any], path: Path) -> Path:
    plt = _plt()
    loads = sorted(table, key=float)
    labels = [lb for lb in table[loads[0]] if lb != "fcfs"]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for ax, key, title in zip(
        axes,
        ("mean_latency", "mean_ttft", "p99_latency"),
        ("FCFS / policy: mean latency", "FCFS / policy: mean TTFT", "FCFS / policy: P99 latency"),
        strict=True,
    ):
        for k, label in enumerate(labels):
            xs, ys, errs = [], [], []
            for ld in loads:
                if label in table[ld]:
                    v, e = _err(table[ld][label]["fcfs_over"][key])
                    xs.append(float(ld) * (1 + 0.02 * k))
                    ys.append(v)
                    errs.append(e)
            if xs:
                ax.errorbar(xs, ys, yerr=np.array(errs).T, marker="o", capsize=3, label=label)
        ax.axhline(1.0, color="grey", lw=0.8, ls="--")
        ax.set_xlabel("load (× saturation)")
        ax.set_title(title, fontsize=10)
    axes[0].legend(fontsize=8)
    fig.suptitle("engine replay, 95 % paired bootstrap intervals (seeds, then requests)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_cdf(grid: Grid, cells: Cells, load: float, path: Path, title: str | None = None) -> Path:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(6, 4))
    for label, _, _ in grid.policies:
        lat = [
            request_arrays(c)["latency_s"]
            for s in grid.seeds
            if (c := cells.get(s, load, label)) is not None
        ]
        if lat:
            x = np.sort(np.concatenate(lat))
            ax.plot(x, np.arange(1, x.size + 1) / x.size, label=label)
    ax.set_xlabel("latency (s)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(title or f"latency CDF at {load:g} × saturation")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_buckets(rows: dict[str, Any], load: str, path: Path) -> Path:
    plt = _plt()
    labels = [lb for lb in rows if lb != "fcfs"]
    fig, ax = plt.subplots(figsize=(7, 4))
    width = 0.8 / max(len(labels), 1)
    for k, label in enumerate(labels):
        per = rows[label]["fcfs_over_by_bucket"]
        xs = [i + k * width for i, b in enumerate(BUCKETS) if b in per]
        vals = [_err(per[b]["mean_latency"]) for b in BUCKETS if b in per]
        if xs:
            ax.bar(
                xs,
                [v for v, _ in vals],
                width,
                yerr=np.array([e for _, e in vals]).T,
                capsize=3,
                label=label,
            )
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(BUCKETS))], BUCKETS)
    ax.axhline(1.0, color="grey", lw=0.8, ls="--")
    ax.set_ylabel("FCFS / policy, mean latency")
    ax.set_title(f"by true output length (short < 128 ≤ medium < 384 ≤ long), load {load}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
