"""Table + plot of trail/lab/analyses/routers_grid.sh: P2C / slot-aware mean latency per cell, and what 4
ingress routers on 0.2 s-old snapshots keep of it.

    python -m trail.lab.analyses.routers_table [runs/sim/routers-grid] [docs/plots/sim_routers_grid.png]
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def load(root: Path) -> dict[tuple[str, str, str], dict[tuple[int, str], dict]]:
    cells: dict[tuple[str, str, str], dict[tuple[int, str], dict]] = {}
    for path in sorted(root.glob("*_i*/routers.json")):
        dist, cost, load_, ingress = path.parent.name.rsplit("_", 3)
        for row in json.loads(path.read_text()):
            name = row["router"] + ("" if ingress == "i1" else f"@{ingress}")
            cells.setdefault((dist, cost, load_), {})[(row["replicas"], name)] = row
    return cells


def table(cells: dict) -> list[str]:
    out = [
        "| lengths | cost | load | replicas | P2C mean / P99 (s) | slots mean / P99 (s) "
        "| P2C / slots mean | P99 slots / P2C | 4 ingress, 0.2 s: mean | P2C / that |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for (dist, cost, load_), rows in sorted(cells.items()):
        for n in sorted({k[0] for k in rows}):
            p2c, ours, many = (rows.get((n, r)) for r in ("power-of-two", "slots", "slots@i4"))
            if not (p2c and ours):
                continue
            m = f"{many['mean_latency_s']:.2f}" if many else "–"
            r4 = f"{p2c['mean_latency_s'] / many['mean_latency_s']:.3f}" if many else "–"
            out.append(
                f"| {dist} | {cost} | {load_} | {n} "
                f"| {p2c['mean_latency_s']:.2f} / {p2c['p99_latency_s']:.1f} "
                f"| {ours['mean_latency_s']:.2f} / {ours['p99_latency_s']:.1f} "
                f"| {p2c['mean_latency_s'] / ours['mean_latency_s']:.3f} "
                f"| {ours['p99_latency_s'] / p2c['p99_latency_s']:.3f} | {m} | {r4} |"
            )
    return out


def plot(cells: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for (dist, cost, load_), rows in sorted(cells.items()):
        ns = sorted(n for n, r in rows if r == "slots" and (n, "power-of-two") in rows)
        ratio = [
            rows[(n, "power-of-two")]["mean_latency_s"] / rows[(n, "slots")]["mean_latency_s"]
            for n in ns
        ]
        ax.plot(ns, ratio, marker="o", label=f"{dist}, {cost}, load {load_}")
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.axhline(1.3, color="red", lw=0.8, ls="--", label="goal 1.3")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("replicas")
    ax.set_ylabel("mean latency P2C / slot-aware")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/sim/routers-grid")
    cells = load(root)
    print("\n".join(table(cells)))
    plot(cells, Path(sys.argv[2] if len(sys.argv) > 2 else "docs/plots/sim_routers_grid.png"))


if __name__ == "__main__":
    main()
