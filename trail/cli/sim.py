"""`trail sim ...`: theory vs simulation, the c sweep under KV budgets, routers, scale, calibration.

Heavy imports stay inside the commands so `trail --help` stays fast.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    help="Queueing theory and discrete-event simulation of TRAIL scheduling.", no_args_is_help=True
)

OUT = Path("runs/sim")
PLOTS = Path("docs/plots")
QuickOpt = Annotated[
    bool, typer.Option("--quick", help="Fewer jobs/requests: minutes, not tens of minutes.")
]
OutOpt = Annotated[Path, typer.Option(help="Folder for the JSON results.")]
PlotOpt = Annotated[Path, typer.Option(help="Folder for the PNG plots.")]
CostOpt = Annotated[
    str | None,
    typer.Option(
        help="Cost model: a JSON file from `trail sim calibrate`, or a preset: cpu (default), cheap-prefill (GPU-like)."
    ),
]


def _floats(text: str) -> list[float]:
    return [
        math.inf if x.strip() in ("inf", "infinity") else float(x)
        for x in text.split(",")
        if x.strip()
    ]


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, default=str))


def _progress(total: int, what: str):  # type: ignore[no-untyped-def]
    from rich.progress import Progress

    bar = Progress(transient=False)
    task = bar.add_task(what, total=total)
    return bar, lambda n=1: bar.advance(task, n)


def _engine_setup(cost: str | None, max_seqs: int, kv_tokens: int, output: str, load: float):  # type: ignore[no-untyped-def]
    from trail.lab.sim.calibrate import load_cost
    from trail.lab.sim.distributions import by_name
    from trail.lab.sim.engine import SimEngineConfig
    from trail.lab.sim.experiments import engine_capacity_rps
    from trail.lab.sim.workload import WorkloadSpec

    model = load_cost(cost)
    cfg = SimEngineConfig(max_num_seqs=max_seqs, kv_tokens=kv_tokens, cost=model)
    spec = WorkloadSpec(rate=1.0, output=by_name(output))
    rate = load * engine_capacity_rps(cfg, spec)
    return cfg, WorkloadSpec(**{**spec.__dict__, "rate": rate})


@app.command()
def validate(
    quick: QuickOpt = False,
    dist: Annotated[
        list[str] | None,
        typer.Option(
            help="Size distributions, e.g. exp:100, lognormal:100:1, bpareto:1.5:10:10000, file:PATH."
        ),
    ] = None,
    loads: Annotated[str, typer.Option(help="Comma-separated loads.")] = "0.3,0.5,0.7,0.9",
    jobs: Annotated[
        int, typer.Option(help="Jobs per point (x2.5 at load >= 0.85); 0 = default.")
    ] = 0,
    tolerance: Annotated[float, typer.Option(help="Max relative error of the mean.")] = 0.02,
    seed: int = 0,
    out: OutOpt = OUT,
    plots: PlotOpt = PLOTS,
) -> None:
    """M/G/1 theory (SOAP) vs simulation for FCFS, SRPT and SPRPT-LP; exits 1 if any point misses."""
    from rich.console import Console
    from rich.table import Table

    from trail.lab.sim.distributions import by_name
    from trail.lab.sim.sim_plots import plot_validation
    from trail.lab.sim.validate import DEFAULT_CASES, run_validation

    sizes = [by_name(d) for d in (dist or ["exp:100", "lognormal:100:1"])]
    base = jobs or (300_000 if quick else 2_000_000)
    load_list = _floats(loads)
    bar, tick = _progress(len(sizes) * len(DEFAULT_CASES) * len(load_list), "validate")
    with bar:
        rows = run_validation(sizes, load_list, DEFAULT_CASES, base, seed, on_done=lambda _: tick())
    table = Table(
        "distribution",
        "policy",
        "load",
        "theory",
        "sim ± 95% CI",
        "rel. err",
        "CI covers",
        title="M/G/1 mean response time (tokens)",
    )
    for r in rows:
        table.add_row(
            r["dist"],
            r["case"],
            f"{r['load']:g}",
            f"{r['theory']:.2f}",
            f"{r['sim']:.2f} ± {r['ci_half']:.2f}",
            f"{100 * r['rel_err']:.2f}%",
            "yes" if r["ci_covers"] else "no",
        )
    Console(width=160).print(table)
    _write_json(out / "validate.json", rows)
    (out / "validate.md").write_text(_validation_markdown(rows))
    plots.mkdir(parents=True, exist_ok=True)
    plot_validation(rows, plots / "sim_validate.png")
    worst = max(r["rel_err"] for r in rows)
    typer.echo(
        f"worst relative error {100 * worst:.2f}% (tolerance {100 * tolerance:g}%); JSON {out / 'validate.json'}"
    )
    if worst > tolerance:
        raise typer.Exit(1)


def _validation_markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| distribution | policy | load | theory | sim ± 95% CI | rel. err | CI covers |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dist']} | {r['case']} | {r['load']:g} | {r['theory']:.2f} | "
            f"{r['sim']:.2f} ± {r['ci_half']:.2f} | {100 * r['rel_err']:.2f}% | {'yes' if r['ci_covers'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


@app.command("sweep-c")
def sweep_c_cmd(
    quick: QuickOpt = False,
    kv: Annotated[
        str, typer.Option(help="KV budgets in tokens, comma-separated.")
    ] = "2048,4096,8192,32768",
    cs: Annotated[
        str, typer.Option("--c", help="Values of c (inf allowed).")
    ] = "0,0.25,0.5,0.8,1,1.5,2,inf",
    load: Annotated[
        float, typer.Option(help="Arrival rate as a fraction of the engine's batch capacity.")
    ] = 0.9,
    output: Annotated[str, typer.Option(help="Output-length distribution.")] = "lognormal:150:1",
    max_seqs: int = 16,
    requests: Annotated[int, typer.Option(help="Requests per point; 0 = default.")] = 0,
    policy: str = "trail",
    cost: CostOpt = None,
    tag: Annotated[str, typer.Option(help="Suffix for the JSON and PNG names.")] = "",
    seed: int = 0,
    out: OutOpt = OUT,
    plots: PlotOpt = PLOTS,
) -> None:
    """Which c is best for a KV budget and length distribution (TRAIL's Appendix D question)."""
    from trail.lab.sim.experiments import c_label, sweep_c, theory_vs_c
    from trail.lab.sim.sim_plots import plot_sweep_c

    cfg, spec = _engine_setup(cost, max_seqs, int(max(_floats(kv))), output, load)
    c_values, budgets = _floats(cs), [int(k) for k in _floats(kv)]
    bar, tick = _progress(len(c_values) * len(budgets), "sweep c")
    with bar:
        rows = sweep_c(
            spec, cfg, budgets, c_values, requests or (800 if quick else 4000), policy, seed, tick
        )
    theory_rows = theory_vs_c(spec.output, spec.prompt_sigma, load, c_values)
    for kv_tokens in budgets:
        best = min(
            (r for r in rows if r["kv_tokens"] == kv_tokens), key=lambda r: r["mean_latency_s"]
        )
        typer.echo(
            f"KV {kv_tokens:>6} tokens: best c = {c_label(best['c'])} (mean {best['mean_latency_s']:.2f} s, P99 {best['p99_latency_s']:.2f} s)"
        )
    name = f"sweep_c{'_' + tag if tag else ''}"
    payload = {"rate": spec.rate, "engine": repr(cfg), "rows": rows, "theory": theory_rows}
    _write_json(out / f"{name}.json", payload)
    plots.mkdir(parents=True, exist_ok=True)
    plot_sweep_c(rows, theory_rows, plots / f"sim_{name}.png")


@app.command()
def routers(
    quick: QuickOpt = False,
    replicas: Annotated[str, typer.Option(help="Cluster sizes.")] = "1,4,16,64,256",
    names: Annotated[
        str, typer.Option("--routers", help="Routers to compare.")
    ] = "round-robin,power-of-two,least-work,slots",
    load: float = 0.85,
    ingress: Annotated[int, typer.Option(help="Routers taking requests in turn (slots).")] = 1,
    stats_period: Annotated[
        float, typer.Option(help="Seconds between a router's snapshots of the engines (slots).")
    ] = 0.0,
    output: str = "lognormal:150:1",
    max_seqs: int = 16,
    kv_tokens: int = 8192,
    per_engine: Annotated[int, typer.Option(help="Requests per replica; 0 = default.")] = 0,
    policy: str = "trail",
    cost: CostOpt = None,
    tag: Annotated[str, typer.Option(help="Suffix for the JSON and PNG names.")] = "",
    seed: int = 0,
    out: OutOpt = OUT,
    plots: PlotOpt = PLOTS,
) -> None:
    """Round robin vs power-of-two vs least predicted work, at equal per-replica load."""
    from trail.lab.sim.experiments import compare_routers
    from trail.lab.sim.sim_plots import plot_routers

    cfg, spec = _engine_setup(cost, max_seqs, kv_tokens, output, load)
    sizes, router_names = [int(r) for r in _floats(replicas)], names.split(",")
    bar, tick = _progress(len(sizes) * len(router_names), "routers")
    with bar:
        rows = compare_routers(
            spec,
            cfg,
            sizes,
            router_names,
            per_engine or (150 if quick else 600),
            policy,
            seed,
            tick=tick,
            ingress=ingress,
            stats_period_s=stats_period,
        )
    for r in rows:
        typer.echo(
            f"{r['replicas']:>4} x {r['router']:<13} mean {r['mean_latency_s']:.2f} s  P99 {r['p99_latency_s']:.2f} s  TTFT {r['mean_ttft_s']:.3f} s  ({r['wall_s']:.1f} s wall)"
        )
    name = f"routers{'_' + tag if tag else ''}"
    _write_json(out / f"{name}.json", rows)
    plots.mkdir(parents=True, exist_ok=True)
    plot_routers(rows, plots / f"sim_{name}.png")


@app.command()
def traced(
    policies: Annotated[
        str, typer.Option(help="fcfs first; `policy@key=value+key=value` for overrides.")
    ] = "fcfs,trail,trail@c=0,trail-oracle",
    loads: Annotated[str, typer.Option(help="Multiples of the engine's capacity.")] = "1.5,2.5",
    seeds: Annotated[str, typer.Option(help="Seeds (requests and arrivals).")] = "0,1,2,3,4",
    n: Annotated[int, typer.Option(help="Requests per run, from the 512 test requests.")] = 300,
    burstiness: Annotated[float, typer.Option(help="Gamma shape of inter-arrivals.")] = 1.0,
    max_seqs: int = 16,
    kv_tokens: Annotated[int, typer.Option(help="KV tokens (1 GiB of SmolLM2 fp32).")] = 23296,
    cost: CostOpt = "cpu-measured",
    probe_overhead: Annotated[
        float,
        typer.Option(
            help="Extra step time of policies that run the probe (measured +0.3 %, i.e. "
            "none, by `trail bench overhead --batches 16 --tokens 128 --reps 3`)."
        ),
    ] = 0.0,
    tag: Annotated[str, typer.Option(help="Suffix for the JSON name.")] = "",
    out: OutOpt = OUT,
) -> None:
    """Policies on the real predictors' outputs (the committed test set replayed through the
    served refinement), one engine, FCFS/x with paired intervals: a fast stand-in for
    `trail bench replay` that a scheduling rule can be tuned on."""
    from dataclasses import replace

    from trail.lab.bench.policy_specs import parse_policy
    from trail.lab.sim.traced import load_traces, run_traced

    cfg, _ = _engine_setup(cost, max_seqs, kv_tokens, "lognormal:150:1", 1.0)
    specs = [parse_policy(p, 0.8) for p in policies.split(",")]
    if specs[0][1] != "fcfs":
        raise typer.BadParameter("fcfs must come first (the baseline)", param_hint="--policies")
    traces = load_traces()
    cfg = replace(cfg, refine_every=traces.predict_every)  # decide at the probe's cadence
    load_list, seed_list = _floats(loads), [int(s) for s in _floats(seeds)]
    bar, tick = _progress(len(load_list) * len(seed_list) * len(specs), "traced runs")
    with bar:
        res = run_traced(
            traces, cfg, specs, load_list, seed_list, n, burstiness, tick, probe_overhead
        )
    typer.echo(f"capacity {res['capacity_rps']:.3f} req/s at mean length {res['mean_length']:.0f}")
    for load, rows in res["loads"].items():
        for label, r in rows.items():
            m, p, t = r["fcfs_over_mean"], r["fcfs_over_p99"], r["fcfs_over_ttft"]
            typer.echo(
                f"load {load:>4}  {label:<28} mean {r['mean_latency_s']:7.1f} s  FCFS/x "
                f"{m['value']:.2f} [{m['low']:.2f}, {m['high']:.2f}]  P99 {p['value']:.2f}  "
                f"TTFT {t['value']:.2f}  2nd tok {r['fcfs_over_ttst']['value']:.2f}  "
                f"P99 {r['p99_latency_s']:.0f} s  stall {r['longest_stall_s']:.0f} s  "
                f"preempt/run {r['preemptions_per_run']:.0f}"
            )
    _write_json(out / f"traced{'_' + tag if tag else ''}.json", res)


@app.command()
def scale(
    engines: int = 64,
    requests: int = 100_000,
    router: str = "least-work",
    load: float = 0.85,
    max_seqs: int = 16,
    policy: str = "trail",
    out: OutOpt = OUT,
) -> None:
    """Time a large cluster simulation (request generation excluded)."""
    from trail.lab.sim.experiments import scale_run

    cfg, spec = _engine_setup(None, max_seqs, 8192, "lognormal:150:1", load)
    spec = type(spec)(**{**spec.__dict__, "rate": spec.rate * engines})
    row = scale_run(spec, cfg, engines, requests, router, policy)
    typer.echo(
        f"{requests} requests on {engines} engines ({router}): {row['wall_s']:.1f} s wall, {row['cpu_s']:.1f} s CPU; mean latency {row['mean_latency_s']:.2f} s"
    )
    _write_json(out / f"scale_{engines}x{requests}_{router}.json", row)


@app.command()
def theory(
    dist: str = "exp:100",
    load: float = 0.7,
    sigma: Annotated[float, typer.Option(help="Lognormal prediction error (0 = exact).")] = 0.0,
    cs: Annotated[str, typer.Option("--c")] = "0,0.5,0.8,1,inf",
) -> None:
    """Print the closed forms: FCFS, SRPT and SPRPT-LP for each c."""
    from trail.lab.sim import theory as th
    from trail.lab.sim.distributions import PredictionModel, by_name

    size = by_name(dist)
    lam = load / size.mean
    typer.echo(
        f"{size.name}, load {load}: FCFS {th.fcfs_mean_response(size, lam):.3f}  SRPT {th.srpt_mean_response(size, lam):.3f}  SJF(exact) {th.sjf_mean_response(size, lam):.3f}"
    )
    cloud = th.Cloud.build(size, PredictionModel(sigma))
    for c in _floats(cs):
        typer.echo(
            f"  SPRPT-LP c={c:g} sigma={sigma:g}: {th.sprpt_lp_mean_response(cloud, lam, c):.3f}"
        )


@app.command()
def calibrate(
    trace: Annotated[
        Path,
        typer.Argument(
            help="JSONL of measured steps: prefill_tokens, decode_seqs, context_tokens, step_s."
        ),
    ],
    save: Annotated[
        Path | None, typer.Option(help="Write the fitted model here (JSON) for --cost.")
    ] = None,
) -> None:
    """Fit the engine step-time model to a measured engine trace."""
    from trail.lab.sim.calibrate import calibrate as fit
    from trail.lab.sim.calibrate import cost_json

    model = fit(trace)
    typer.echo(cost_json(model))
    if save:
        _write_json(save, json.loads(cost_json(model)))


if __name__ == "__main__":
    app()
