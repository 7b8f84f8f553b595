"""PNG plots of a comparison (from results.json and the per-run JSONL): the paper's Fig. 6
shape (mean latency and mean TTFT vs rate per policy), a latency CDF, c-sensitivity, routers."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trail.lab.bench.loadgen import load_jsonl

COLORS = {
    "fcfs": "#4c72b0",
    "sjf-prompt": "#dd8452",
    "trail-prompt": "#55a868",
    "trail": "#c44e52",
    "trail-oracle": "#8172b3",
}
LABELS = {"trail-oracle": "trail-oracle (TRAIL+)"}


def _plt():  # noqa: ANN202
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _policy_runs(results: dict) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in results["runs"]:
        if r["group"] == "policy":
            out.setdefault(r["policy"], []).append(r)
    return {p: sorted(rs, key=lambda r: r["rate"]) for p, rs in out.items()}


def vs_rate(results: dict, path: Path) -> None:
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    sat = results["saturation"].get("1", {}).get("saturation_req_s")
    for p, rs in _policy_runs(results).items():
        x = [r["rate"] for r in rs]
        for ax, key in zip(axes, ["mean_latency_s", "mean_ttft_s"], strict=True):
            y = [r["summary"].get(key, np.nan) for r in rs]
            ax.plot(x, y, "o-", color=COLORS.get(p), label=LABELS.get(p, p))
    for ax, title in zip(axes, ["mean latency (s)", "mean TTFT (s)"], strict=True):
        ax.set_xlabel("arrival rate (req/s)" + (f"; saturation {sat:.3f}" if sat else ""))
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def latency_cdf(results: dict, root: Path, path: Path, load: float | None) -> None:
    plt = _plt()
    fig, ax = plt.subplots(figsize=(5.5, 3.8))
    for r in results["runs"]:
        if r["group"] != "policy" or r["load"] != load:
            continue
        lat = np.sort([x["latency_s"] for x in load_jsonl(root / r["jsonl"]) if x["ok"]])
        if lat.size:
            y = np.arange(1, lat.size + 1) / lat.size
            ax.step(
                lat,
                y,
                where="post",
                color=COLORS.get(r["policy"]),
                label=LABELS.get(r["policy"], r["policy"]),
            )
    ax.set_xlabel("end-to-end latency (s)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(f"latency CDF at load {load:g}" if load is not None else "latency CDF")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def c_sensitivity(results: dict, path: Path) -> bool:
    """Mean latency, mean TTFT and P99 of `trail` vs c at the top load; FCFS as a dashed line."""
    runs = results["runs"]
    loads = [r["load"] for r in runs if r["group"] == "c"]
    if not loads:
        return False
    load = loads[0]
    pts = [
        r
        for r in runs
        if r["policy"] == "trail"
        and r["replicas"] == 1
        and r["load"] == load
        and r["group"] in ("c", "policy")
    ]
    pts.sort(key=lambda r: r["c"])
    fcfs = next(
        (r for r in runs if r["group"] == "policy" and r["policy"] == "fcfs" and r["load"] == load),
        None,
    )
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.6))
    for ax, key, title in zip(
        axes,
        ["mean_latency_s", "mean_ttft_s", "p99_latency_s"],
        ["mean latency (s)", "mean TTFT (s)", "P99 latency (s)"],
        strict=True,
    ):
        ax.plot(
            [r["c"] for r in pts],
            [r["summary"].get(key, np.nan) for r in pts],
            "o-",
            color=COLORS["trail"],
            label="trail",
        )
        if fcfs:
            ax.axhline(
                fcfs["summary"].get(key, np.nan), ls="--", color=COLORS["fcfs"], label="fcfs"
            )
        ax.set_xlabel("c (limited preemption)")
        ax.set_title(title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle(f"c sensitivity at load {load:g}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def routers(results: dict, path: Path) -> bool:
    rs = [r for r in results["runs"] if r["group"] == "router"]
    if not rs:
        return False
    plt = _plt()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.4))
    names = [f"{r['router']}\n@{r['load']:g}" for r in rs]
    for ax, key, title in zip(
        axes,
        ["mean_latency_s", "mean_ttft_s", "p99_latency_s"],
        ["mean latency (s)", "mean TTFT (s)", "P99 latency (s)"],
        strict=True,
    ):
        ax.bar(names, [r["summary"].get(key, np.nan) for r in rs], color="#4c72b0")
        ax.set_title(title)
    fig.suptitle(f"{rs[0]['replicas']} replicas, policy trail: routers")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def all_plots(results: dict, root: Path, load: float | None) -> list[Path]:
    """Write every plot that the results support into root/; returns their paths."""
    out = [root / "latency_vs_rate.png", root / "latency_cdf.png"]
    vs_rate(results, out[0])
    latency_cdf(results, root, out[1], load)
    if c_sensitivity(results, root / "c_sensitivity.png"):
        out.append(root / "c_sensitivity.png")
    if routers(results, root / "routers.png"):
        out.append(root / "routers.png")
    return out
