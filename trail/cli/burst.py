"""`trail bench burst`: FCFS, `trail` and TRAIL+ on one burst where the order matters (short
answers and a few loopers, all sent at once), on one fresh engine each: the last step of
`make run`. The experiment harness of `trail bench replay` with one load, one seed and a
plain-words verdict."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import typer

from trail.cli.replay import DEFAULT_WORKLOAD, prompt_predictions, run_cells
from trail.lab.bench.policy_specs import parse_policy

BRIEF = DEFAULT_WORKLOAD.with_name("heldout_brief.jsonl")


def burst(
    workload: Path = typer.Option(
        BRIEF,
        exists=True,
        help="JSONL of {prompt, out_tokens}; default: held-out prompts in "
        "one application's template ('Reply in one short sentence.'), lengths measured",
    ),
    n: int = typer.Option(40, help="requests in the burst, all sent at once"),
    cap: int = typer.Option(160, help="max_tokens: the loopers stop here"),
    max_num_seqs: int = typer.Option(3, help="batch slots: few, so requests queue"),
    seed: int = typer.Option(0, help="which prompts (and their order)"),
    policies: str = typer.Option("fcfs,trail,trail-oracle", help="comma-separated, fcfs first"),
    out: Path = typer.Option(Path("runs/burst"), help="folder; its cells/ are rerun each time"),
) -> None:
    """FCFS, `trail` and TRAIL+ on one burst: a small table, FCFS / policy mean latency with
    its 95 % interval, a verdict per policy, the latency CDF (PNG). A few minutes on 2 cores."""
    from rich.console import Console
    from transformers import AutoTokenizer

    from trail.engine.engine_config import EngineConfig
    from trail.lab.bench import analysis
    from trail.lab.bench import burst as words
    from trail.lab.bench.experiment import Cells, Grid, engine_runner
    from trail.lab.bench.replay_plots import plot_cdf
    from trail.lab.workload.prompts import capped, load_jsonl

    console = Console()
    # the engine core in this process: on CPU it starts in ~20 s instead of ~40 (one vLLM
    # import, not two), and every policy runs the same way
    cfg = EngineConfig(max_num_seqs=max_num_seqs, in_process=True)
    grid = Grid(
        n=n,
        loads=(math.inf,),
        seeds=(seed,),
        policies=tuple(parse_policy(p, 0.8) for p in policies.split(",")),
        cap=cap,
    )
    pool = capped(load_jsonl(workload), cap)
    shutil.rmtree(out / "cells", ignore_errors=True)
    cells = Cells(out / "cells")
    console.print(
        f"one burst: {n} requests at once, {max_num_seqs} batch slots, max_tokens {cap}; "
        f"{', '.join(p[0] for p in grid.policies)} on one fresh engine each (about a minute each)"
    )
    run_cell = engine_runner(
        cfg.model_dump(exclude={"trail"}),
        AutoTokenizer.from_pretrained(cfg.model),
        prompt_predictions,
        cap,
    )
    run_cells(grid, run_cell, pool, 1.0, cells, console)  # at load inf the rate is moot
    table = analysis.analyse(grid, cells)
    busy = {p[0]: words.busy_seconds(cells.get(seed, math.inf, p[0]) or {}) for p in grid.policies}
    meta = {"n": n, "cap": cap, "max_num_seqs": max_num_seqs, "seed": seed}
    meta["workload"] = str(workload)
    report = {"meta": meta, "table": table, "busy_s": busy}
    (out / "burst.json").write_text(json.dumps(report, indent=2))
    words.print_burst(console, table["inf"], busy)
    title = f"one burst: {n} requests at once, {max_num_seqs} slots, max_tokens {cap}"
    png = plot_cdf(grid, cells, math.inf, out / "latency_cdf.png", title)
    console.print(f"latency CDF per policy: {png}")
    words.print_next(console)
