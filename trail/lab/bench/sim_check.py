"""The simulator as a checked instrument: calibrate it from the engine's own step trace, serve
the same requests at the same arrival times, and put simulated beside measured FCFS ratios.

Inputs per (seed, load): every run's `step` rows (prefill tokens, decode sequences, context
tokens, step time, from the scheduler's event log) fit the cost model (`trail sim calibrate`'s
least squares); each request keeps its prompt length, true length, arrival time and the prompt
predictor's expected length, and under `trail` the refined predictions the scheduler held
(from the probe events), which the simulated request follows (trail/lab/sim/traced.py's `trace`).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from trail.lab.bench.analysis import request_arrays
from trail.lab.bench.experiment import Cells, Grid
from trail.lab.stats.intervals import pooled_ratio


def calibrated_cost(cells: list[dict]) -> Any:
    """The step cost fitted to the step rows of these runs."""
    from trail.lab.sim.calibrate import calibrate

    rows = [s for c in cells for s in c.get("steps", [])]
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        f.write("".join(json.dumps(r) + "\n" for r in rows))
    try:
        return calibrate(Path(f.name))
    finally:
        Path(f.name).unlink()


def sim_requests(cell: dict, cap: int) -> list:
    from trail.lab.sim.workload import SimRequest
    from trail.policy import LengthState

    reqs = cell["requests"]
    ids = sorted(reqs, key=lambda r: int(r[1:]))
    out = []
    for i, rid in enumerate(ids):
        r = reqs[rid]
        pred = cell.get("initial_expected")
        length = int(r["length"])
        state = LengthState(
            rid,
            float(r["arrival_s"]),
            initial_pred=float(pred[i]) if pred else cap / 2,
            true_total=length,
            max_tokens=cap,
        )
        trace = refined_trace(r.get("refined"), length, cap)
        out.append(
            SimRequest(state, prompt_len=int(r["prompt_tokens"]), output_len=length, trace=trace)
        )
    return sorted(out, key=lambda q: q.arrival)


def refined_trace(points: list | None, length: int, cap: int) -> np.ndarray | None:
    """The engine's held prediction at every generated count: the last probe output's
    expectation, counting down one per token until the next (None: no probe outputs)."""
    if not points:
        return None
    at = np.array([p[0] for p in points])
    expected = np.array([p[1] for p in points])
    g = np.arange(length)
    last = np.maximum(np.searchsorted(at, g, side="right") - 1, 0)
    return np.clip(expected[last] - (g - at[last]), 0.0, cap - g)


def simulate_cell(cell: dict, policy: str, extra: dict, cfg: Any, cap: int) -> np.ndarray:
    """Per-request latencies (request order) of the simulated run."""
    from trail.engine.trail_config import TrailConfig
    from trail.lab.sim.cluster import simulate_cluster

    reqs = sim_requests(cell, cap)
    pol = TrailConfig(policy=policy, **extra).policy_config()  # the engine's own policy object
    simulate_cluster(reqs, 1, cfg, pol, seed=int(cell["seed"]))
    by_id = {q.state.request_id: q.finish - q.arrival for q in reqs}
    return np.array([by_id[k] for k in sorted(by_id, key=lambda r: int(r[1:]))])


def sim_check(
    grid: Grid, cells: Cells, engine: dict, kv_tokens: int, block_size: int = 16
) -> dict[str, Any]:
    """Per load and policy: FCFS/x mean latency measured and simulated (pooled over seeds), each
    run simulated with the cost model fitted to its own step trace."""
    from trail.lab.sim.engine import SimEngineConfig

    out: dict[str, Any] = {}
    for load in grid.loads:
        measured: dict[str, dict[int, np.ndarray]] = {}
        simulated: dict[str, dict[int, np.ndarray]] = {}
        costs: dict[int, dict[str, dict]] = {}
        for seed in grid.seeds:
            maybe = {lb: cells.get(seed, load, lb) for lb, _, _ in grid.policies}
            got = {lb: c for lb, c in maybe.items() if c is not None}
            if len(got) < len(maybe):
                continue
            costs[seed] = {}
            for label, policy, extra in grid.policies:
                cell = got[label]
                # each run's own steps: `trail`'s carry the probe's cost (~5 % per decode step)
                cost = calibrated_cost([cell])
                costs[seed][label] = cost.__dict__
                cfg = SimEngineConfig(
                    max_num_seqs=int(engine.get("max_num_seqs", 16)),
                    kv_tokens=kv_tokens,
                    block_size=block_size,
                    cost=cost,
                )
                measured.setdefault(label, {})[seed] = request_arrays(cell)["latency_s"]
                simulated.setdefault(label, {})[seed] = simulate_cell(
                    cell, policy, extra, cfg, grid.cap
                )
        if "fcfs" not in measured:
            continue
        rows = {}
        for label in measured:
            m = pooled_ratio(measured["fcfs"], measured[label])
            s = pooled_ratio(simulated["fcfs"], simulated[label])
            rows[label] = {
                "engine_fcfs_over": m,
                "sim_fcfs_over": s,
                "rel_gap": abs(s - m) / m if m else float("nan"),
                "engine_mean_latency_s": float(
                    np.mean(np.concatenate(list(measured[label].values())))
                ),
                "sim_mean_latency_s": float(
                    np.mean(np.concatenate(list(simulated[label].values())))
                ),
            }
        out[f"{load:g}"] = {"policies": rows, "cost_models": costs}
    return out
