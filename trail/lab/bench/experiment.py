"""The paper's experiment on one engine: loads (multiples of measured saturation) × policies ×
seeds, every policy on the same requests and arrival times, resumable cell by cell.

Natural lengths: a request whose workload row has no length gets it from the FCFS run of its
seed at the first load, which runs with EOS on (greedy, `max_tokens` = cap). Every other run —
other policies, other loads, FCFS at other loads — sends `ignore_eos` + `max_tokens` = that
length with `use_max_tokens: false`: identical work for every policy, and no policy but the
oracle can rank by it. Greedy text does not depend on the schedule (tests/engine/test_policies.py).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from trail.lab.bench.replay import build_arrivals, run_policy
from trail.lab.workload.arrivals import arrival_times
from trail.lab.workload.prompts import WorkItem

PolicySpec = tuple[str, str, dict]  # label, policy, TRAIL overrides


@dataclass(frozen=True)
class Grid:
    n: int
    loads: tuple[float, ...]  # multiples of the saturation rate
    seeds: tuple[int, ...]
    policies: tuple[PolicySpec, ...]  # fcfs first: its first run measures natural lengths
    burstiness: float = 1.0  # gamma shape of inter-arrivals; 1 = Poisson
    cap: int = 512

    def __post_init__(self) -> None:
        if not self.policies or self.policies[0][1] != "fcfs":
            raise ValueError("the experiment needs fcfs as its first policy (the baseline)")

    def cells(self) -> list[tuple[int, float, PolicySpec]]:
        return [(s, ld, p) for s in self.seeds for ld in self.loads for p in self.policies]


@dataclass
class Cells:
    """One JSON per finished run under `root`; a rerun skips what is there."""

    root: Path
    lengths: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.lengths_path.exists():
            self.lengths = json.loads(self.lengths_path.read_text())

    @property
    def lengths_path(self) -> Path:
        return self.root / "natural_lengths.json"

    def path(self, seed: int, load: float, label: str) -> Path:
        return self.root / f"seed{seed}" / f"load{load:g}" / f"{safe_label(label)}.json"

    def get(self, seed: int, load: float, label: str) -> dict | None:
        p = self.path(seed, load, label)
        return json.loads(p.read_text()) if p.exists() else None

    def put(self, seed: int, load: float, label: str, cell: dict) -> None:
        p = self.path(seed, load, label)
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps(cell))

    def learn_lengths(self, prompts: list[str], results: dict[str, dict]) -> None:
        for i, text in enumerate(prompts):
            self.lengths[prompt_key(text)] = int(results[f"q{i}"]["length"])
        self.lengths_path.write_text(json.dumps(self.lengths))


def safe_label(label: str) -> str:
    """A policy spec (`trail@c=0.5+margin_tokens=8`) as a file name."""
    return label.replace("@", "_").replace("=", "").replace("+", "_")


def cycled(items: list[WorkItem], n: int) -> list[WorkItem]:
    """n items, repeating the list when it is shorter."""
    return (items * (n // max(len(items), 1) + 1))[:n]


def decode_steps_at(steps: list[dict], batch: int) -> list[float]:
    """Step times of the decode-only steps that ran `batch` sequences."""
    return [s["step_s"] for s in steps if s["decode_seqs"] == batch and s["prefill_tokens"] == 0]


def prompt_key(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


# (items, arrival times, lengths or None for the natural run, policy, overrides, label, folder)
RunCell = Callable[[list[WorkItem], np.ndarray, list[int] | None, str, dict, str, Path], dict]


def engine_runner(
    engine: dict,
    tokenizer: Any,
    initial_of: Callable[[list[str]], tuple[list | None, list | None]],
    cap: int,
) -> RunCell:
    """Cells on one fresh engine each, the prompt predictor's distributions sent as the ingress
    would send them."""

    def run(items, times, lengths, policy, extra, label, folder) -> dict:  # noqa: ANN001
        dists, expected = initial_of([w.prompt for w in items])
        arrivals = build_arrivals(items, tokenizer, times, dists, lengths=lengths, cap=cap)
        return {
            "initial_expected": expected,
            **run_policy(engine, policy, arrivals, folder, extra, label),
        }

    return run


def run_grid(
    grid: Grid,
    run_cell: RunCell,
    items_of: Callable[[int], list[WorkItem]],
    saturation_rps: float,
    cells: Cells,
    tick: Callable[[str], None] = lambda _: None,
) -> None:
    """Run every missing cell of the grid (progress via `tick`)."""
    for seed, load, (label, policy, extra) in grid.cells():
        if cells.get(seed, load, label) is not None:
            tick(label)
            continue
        items = items_of(seed)
        prompts = [w.prompt for w in items]
        known = [w.out_tokens or cells.lengths.get(prompt_key(w.prompt)) for w in items]
        natural = any(k is None for k in known)
        if natural and policy != "fcfs":
            raise RuntimeError("natural lengths are measured by the fcfs run, which comes first")
        unit = arrival_times(len(items), 1.0, seed, grid.burstiness)
        rate = load * saturation_rps
        lengths = None if natural else [int(k) for k in known]  # type: ignore[arg-type]
        folder = cells.path(seed, load, label).parent / "runs"
        res = run_cell(items, unit / rate, lengths, policy, extra, label, folder)
        if natural:
            cells.learn_lengths(prompts, res["requests"])
        cells.put(seed, load, label, {"seed": seed, "load": load, "rate": rate, **res})
        tick(label)


SATURATION_TOKENS = 128  # per request of the saturation burst


def measure_saturation(engine: dict, items: list[WorkItem], tokenizer: Any, workdir: Path) -> dict:
    """Full-batch token rate: 2 × max_num_seqs requests of 128 tokens sent at once, then the
    batch over the median time of its full decode-only steps (`full_batch_rate`)."""
    slots = int(engine.get("max_num_seqs", 16))
    sample = cycled(items, 2 * slots)
    lengths = [SATURATION_TOKENS] * len(sample)
    arrivals = build_arrivals(sample, tokenizer, [0.0] * len(sample), None, lengths=lengths)
    res = run_policy(engine, "fcfs", arrivals, workdir, {}, "saturation")
    return full_batch_rate(res["steps"], slots, engines=1) | {"requests": len(sample)}


def full_batch_rate(steps: list[dict], slots: int, engines: int) -> dict:
    """engines × slots tokens per median full-batch decode step. Tokens over the burst's span
    count its ramp, prefills and tail too: that read 69 tok/s for two replicas whose full
    batches ran at 191 (docs/pitfalls.md)."""
    full = decode_steps_at(steps, slots)
    if len(full) < 10:
        raise RuntimeError(f"only {len(full)} full-batch decode steps in the saturation run")
    tok_s = engines * slots / float(np.median(full))
    return {"tok_s": tok_s, "tokens": SATURATION_TOKENS, "full_batch_steps": len(full)}
