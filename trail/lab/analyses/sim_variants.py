"""Try scheduling variants in the simulator on a replay's recorded cells, before spending engine
time on them: each seed's requests, arrivals and the predictions the engine's `trail` scheduler
held (the `trail` cell's traces), the cost model fitted to that seed's FCFS steps.

Usage: python -m trail.lab.analyses.sim_variants runs/brief_high 2.5 "trail,trail@margin_tokens=64"
Prints FCFS / variant mean latency per seed and pooled (the engine's own ratios beside, where the
variant was run on the engine).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

from trail.engine.engine_config import EngineConfig
from trail.lab.bench.analysis import request_arrays
from trail.lab.bench.experiment import Cells
from trail.lab.bench.policy_specs import kv_tokens, parse_policy
from trail.lab.bench.sim_check import calibrated_cost, simulate_cell
from trail.lab.sim.engine import SimEngineConfig
from trail.lab.stats.intervals import pooled_ratio


def simulate_variants(
    folder: Path, load: float, variants: str, traces_from: str = "trail"
) -> dict[str, dict]:
    """Per variant: FCFS / variant simulated mean latency, pooled and per seed, and the engine's
    pooled ratio where that variant ran on the engine for the same seeds."""
    cells = Cells(folder / "cells")
    specs = [parse_policy("fcfs", 0.8), *(parse_policy(v, 0.8) for v in variants.split(","))]
    seeds = sorted(int(p.name[4:]) for p in (folder / "cells").glob("seed*"))
    report = folder / "experiment.json"  # the replay's batch size, once its report exists
    meta = json.loads(report.read_text())["meta"] if report.exists() else {}
    max_seqs = int(meta.get("max_num_seqs") or 16)
    kv = kv_tokens(EngineConfig())
    sim: dict[str, dict[int, np.ndarray]] = {}
    eng: dict[str, dict[int, np.ndarray]] = {}
    for seed in seeds:
        base, traced = cells.get(seed, load, "fcfs"), cells.get(seed, load, traces_from)
        if base is None or traced is None:
            continue
        cfg = SimEngineConfig(max_num_seqs=max_seqs, kv_tokens=kv, cost=calibrated_cost([base]))
        for label, policy, extra in specs:
            sim.setdefault(label, {})[seed] = simulate_cell(traced, policy, extra, cfg, 512)
            measured = cells.get(seed, load, label)
            if measured is not None:
                eng.setdefault(label, {})[seed] = request_arrays(measured)["latency_s"]
    if not sim:
        raise SystemExit(f"{folder}: no seed has both an fcfs and a {traces_from} cell at {load}")
    out = {}
    for label, runs in sim.items():
        same_seeds = label in eng and set(eng[label]) == set(runs)
        out[label] = {
            "sim": pooled_ratio(sim["fcfs"], runs),
            "per_seed": [float(sim["fcfs"][s].mean() / runs[s].mean()) for s in sorted(runs)],
            "engine": pooled_ratio(eng["fcfs"], eng[label]) if same_seeds else None,
        }
    return out


def main(folder: str, load: str, variants: str, *traces_from: str) -> None:
    for label, r in simulate_variants(Path(folder), float(load), variants, *traces_from).items():
        seeds = " ".join(f"{x:.2f}" for x in r["per_seed"])
        engine = "" if r["engine"] is None else f"  engine {r['engine']:.2f}"
        print(f"{label:<40} sim FCFS/x {r['sim']:.2f} (seeds {seeds}){engine}")


if __name__ == "__main__":
    main(*sys.argv[1:])
