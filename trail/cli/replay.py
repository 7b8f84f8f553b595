"""`trail bench replay`: the experiment grid on one engine, its table with intervals, the
simulator beside it, JSON + PNGs. Resumable: rerun the same command to continue."""

from __future__ import annotations

import functools
import json
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import typer

from trail.lab.bench.policy_specs import kv_tokens, parse_policy, with_probe
from trail.models.paths import SMOLLM2_ASSETS

ALL_POLICIES = "fcfs,sjf-prompt,trail-prompt,trail,trail-oracle"
DEFAULT_WORKLOAD = SMOLLM2_ASSETS / "heldout.jsonl"
QUICK = {"n": 24, "loads": "2.5", "seeds": "0", "policies": "fcfs,trail,trail-oracle"}


def replay(
    workload: Path = typer.Option(
        DEFAULT_WORKLOAD, exists=True, help="JSONL of {prompt[, out_tokens]}; default: held-out"
    ),
    n: int = typer.Option(200, help="requests per cell"),
    loads: str = typer.Option("0.8,1.5,2.5", help="arrival rates as multiples of saturation"),
    burstiness: float = typer.Option(1.0, help="gamma shape of inter-arrivals (1 = Poisson)"),
    policies: str = typer.Option(
        ALL_POLICIES,
        help="comma-separated, fcfs first; `policy@key=value+key=value` overrides settings, "
        "e.g. trail-oracle@c=0 or trail@starvation_s=30",
    ),
    seeds: str = typer.Option("0,1,2", help="requests and arrivals per seed"),
    max_num_seqs: int = typer.Option(16),
    cap: int = typer.Option(
        512, help="max_tokens: natural-length runs stop here; longer known lengths are cut to it"
    ),
    c: float = typer.Option(0.8, help="limited-preemption window of the preemptive policies"),
    saturation_rps: float = typer.Option(None, help="skip measuring saturation; use this"),
    mean_len: float = typer.Option(
        None, help="mean output length for saturation (default: the workload's, or 355)"
    ),
    sim: bool = typer.Option(True, help="calibrate the simulator from the runs and compare"),
    quick: bool = typer.Option(False, help=f"a ≤ 10 min check: {QUICK}"),
    model: str = typer.Option(None, help="model folder (default: prepared SmolLM2)"),
    http: bool = typer.Option(
        False,
        help="through the Serve app's OpenAI API (a fresh app per cell) instead of one engine",
    ),
    replicas: int = typer.Option(1, help="--http: LLM replicas"),
    router: str = typer.Option(
        "trail", help="--http: the router unless a policy names one (trail@router=pow2)"
    ),
    reference: str = typer.Option(
        "trail-oracle", help="the second ratio column: each policy's mean latency over this one's"
    ),
    probe: Path = typer.Option(
        None,
        exists=True,
        file_okay=False,
        help="probe folder for the probe policies (default: "
        "the packaged one), e.g. one retrained on an application's traffic",
    ),
    prompt_predictor: Path = typer.Option(
        None, exists=True, file_okay=False, help="prompt predictor folder (default: packaged)"
    ),
    goals: bool = typer.Option(
        False, help="also print the project's issue-15 goals (always in experiment.json)"
    ),
    out: Path = typer.Option(Path("runs/experiment")),
) -> None:
    """Every policy on the same requests and arrivals, at several loads and seeds, on one engine
    (or over HTTP); FCFS ratios with 95 % intervals overall and per length bucket; the simulator
    beside."""
    from rich.console import Console
    from transformers import AutoTokenizer

    from trail.engine.engine_config import EngineConfig
    from trail.lab.bench import analysis, sim_check
    from trail.lab.bench import replay_plots as experiment_plots
    from trail.lab.bench.experiment import Cells, Grid, engine_runner, measure_saturation
    from trail.lab.workload.prompts import capped, load_jsonl

    if quick:
        n, loads, seeds, policies = QUICK["n"], QUICK["loads"], QUICK["seeds"], QUICK["policies"]
    console = Console()
    cfg = EngineConfig(max_num_seqs=max_num_seqs, **({"model": model} if model else {}))
    tok = AutoTokenizer.from_pretrained(cfg.model)
    engine = cfg.model_dump(exclude={"trail"})
    grid = Grid(
        n=n,
        loads=tuple(float(x) for x in loads.split(",")),
        seeds=tuple(int(x) for x in seeds.split(",")),
        policies=tuple(with_probe(parse_policy(p, c), probe) for p in policies.split(",")),
        burstiness=burstiness,
        cap=cap,
    )
    if not http and any("router" in extra for _, _, extra in grid.policies):
        raise typer.BadParameter(
            "a policy names a router: that needs --http", param_hint="--policies"
        )
    pool = capped(load_jsonl(workload), cap)
    cells = Cells(out / "cells")
    with ExitStack() as stack:
        if http:
            from trail.lab.bench.app_launcher import AppLauncher
            from trail.lab.bench.http_replay import HttpSetup, http_runner, measure_http_saturation

            launcher = stack.enter_context(AppLauncher())
            setup = HttpSetup(
                launcher, replicas, router, max_num_seqs, model or "smollm2", prompt_predictor
            )
            run_cell = http_runner(setup, cap)
            measure = lambda: measure_http_saturation(setup, pool, out / "saturation")  # noqa: E731
        else:
            initial_of = lambda texts: prompt_predictions(texts, prompt_predictor)  # noqa: E731
            run_cell = engine_runner(engine, tok, initial_of, cap)
            measure = lambda: measure_saturation(engine, pool, tok, out / "saturation")  # noqa: E731
        sat = _saturation(out, measure, pool, saturation_rps, mean_len, console)
        console.print(
            f"saturation {sat['rps']:.3f} req/s ({sat['tok_s']:.1f} tok/s / {sat['mean_len']:.0f}"
            f" tokens); {len(grid.cells())} runs of {n} requests"
        )
        run_cells(grid, run_cell, pool, sat["rps"], cells, console)
    table = analysis.analyse(grid, cells, reference)
    meta = {**_meta(grid, engine, workload), "saturation": sat, "reference": reference}
    meta["predictors"] = {
        "probe": str(probe or "packaged"),
        "prompt": str(prompt_predictor or "packaged"),
    }
    if http:
        meta["http"] = {"replicas": replicas, "router": router}
    report: dict[str, Any] = {"meta": meta, "table": table, "goals": analysis.goals(table)}
    if sim and not http:  # the simulator is calibrated from the engine's step trace
        report["sim_check"] = sim_check.sim_check(grid, cells, engine, kv_tokens(cfg))
    (out / "experiment.json").write_text(json.dumps(report, indent=2))
    plots = experiment_plots.plot_all(table, grid, cells, out)
    from trail.lab.bench.replay_print import print_report

    print_report(console, report, goals=goals)
    console.print(f"wrote {out / 'experiment.json'} and {', '.join(str(p) for p in plots)}")


def run_cells(grid: Any, run_cell: Any, pool: list, rps: float, cells: Any, console: Any) -> None:
    """Every missing cell of the grid, one fresh engine (or app) each, under a progress bar."""
    from rich.progress import Progress

    from trail.lab.bench.experiment import run_grid
    from trail.lab.workload.prompts import sample

    with Progress(console=console) as progress:
        task = progress.add_task("runs", total=len(grid.cells()))
        run_grid(
            grid,
            run_cell,
            lambda seed: sample(pool, grid.n, seed),
            rps,
            cells,
            tick=lambda label: progress.advance(task),
        )


def _saturation(out, measure, pool, rps, mean_len, console) -> dict:  # noqa: ANN001
    """Measured once per output folder (saturation.json), unless given."""
    known = [w.out_tokens for w in pool if w.out_tokens]
    mean = mean_len or (sum(known) / len(known) if known else 355.0)
    path = out / "saturation.json"
    if rps is not None:
        return {"rps": rps, "tok_s": rps * mean, "mean_len": mean, "measured": False}
    if path.exists():
        return json.loads(path.read_text())
    console.print("measuring saturation (full batches of 128-token requests)...")
    got = measure()
    sat = {**got, "mean_len": mean, "rps": got["tok_s"] / mean, "measured": True}
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(sat))
    return sat


def prompt_predictions(
    texts: list[str], folder: Path | None = None
) -> tuple[list | None, list | None]:
    """The prompt predictor's distributions and expected lengths (the packaged one unless a
    folder is given), or (None, None) when none is packaged."""
    pred = _prompt_predictor(folder)
    if pred is None:
        return None, None
    return pred.predict_dist(texts).tolist(), [float(x) for x in pred.expected(texts)]


@functools.cache
def _prompt_predictor(folder: Path | None) -> Any:
    """Loaded once per run, not once per cell (MiniLM + adapter + head)."""
    from trail.predict.prompt import DEFAULT_PROMPT_DIR, PromptPredictor

    try:
        return PromptPredictor.load(folder or DEFAULT_PROMPT_DIR)
    except FileNotFoundError:
        return None


def _meta(grid: Any, engine: dict, workload: Path) -> dict:
    return {
        "n": grid.n,
        "loads": list(grid.loads),
        "seeds": list(grid.seeds),
        "policies": [p[0] for p in grid.policies],
        "burstiness": grid.burstiness,
        "max_num_seqs": engine.get("max_num_seqs"),
        "workload": str(workload),
        "intervals": "95 % percentile bootstrap, paired: seeds resampled, then requests within",
    }
