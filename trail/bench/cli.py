"""`trail bench ...`: benchmarks that print their numbers and save JSON + PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import typer

from trail.bench.client import Endpoint, Mode

app = typer.Typer(
    help="Benchmarks (engine replay; HTTP load and comparison).", no_args_is_help=True
)

ALL_POLICIES = "fcfs,sjf-prompt,trail-prompt,trail,trail-oracle"


@app.command("replay")
def replay(
    workload: Path = typer.Option(..., exists=True, help="JSONL of {prompt, out_tokens}"),
    n: int = typer.Option(60, help="requests"),
    rate: float = typer.Option(2.0, help="Poisson arrival rate (req/s)"),
    policies: str = typer.Option(
        ALL_POLICIES,
        help="comma-separated; `policy@key=value+key=value` overrides settings, "
        "e.g. trail-oracle@c=0 or trail@starvation_s=30",
    ),
    max_num_seqs: int = typer.Option(4, help="small, so requests queue"),
    max_out: int = typer.Option(256, help="skip workload rows with longer outputs"),
    model: str = typer.Option(None, help="model folder (default: prepared SmolLM2)"),
    c: float = typer.Option(0.8),
    seeds: str = typer.Option("0", help="comma-separated seeds: requests and arrivals per seed"),
    out: Path = typer.Option(Path("runs/replay")),
) -> None:
    """Replay one Poisson workload into one engine per policy; print the table and FCFS ratios
    per seed and their mean; preemptions by reason and recomputed tokens per run."""
    from rich.console import Console
    from rich.progress import track
    from transformers import AutoTokenizer

    from trail.bench import replay as rp
    from trail.bench.workload import load_jsonl, sample
    from trail.engine.engine_config import EngineConfig

    console = Console()
    cfg = EngineConfig(max_num_seqs=max_num_seqs, **({"model": model} if model else {}))
    tok = AutoTokenizer.from_pretrained(cfg.model)
    engine = cfg.model_dump(exclude={"trail"})
    configs = [parse_policy(p, c) for p in policies.split(",")]
    runs: dict[int, dict] = {}
    for seed in [int(x) for x in seeds.split(",")]:
        items = sample(load_jsonl(workload), n, seed, max_out)
        initial = _prompt_predictions([w.prompt for w in items])
        arrivals = rp.build_arrivals(items, tok, rate, seed, initial)
        results = {}
        for label, policy, extra in track(configs, description=f"seed {seed}", console=console):
            results[label] = rp.run_policy(
                engine, policy, arrivals, out / f"seed{seed}", extra, label
            )
        runs[seed] = results
        _print(console, results, rp.report(results), f"engine replay, seed {seed}")
    meta = {"n": n, "rate": rate, "max_num_seqs": max_num_seqs, "c": c, "seeds": sorted(runs)}
    rp.save_seeds(out, runs, meta)
    console.print(f"wrote {out / 'replay.json'} and {out / 'replay.png'}")


def parse_policy(spec: str, c: float) -> tuple[str, str, dict]:
    """`policy@key=value+key=value` -> (label, policy, TRAIL overrides); c applies by default
    to the preemptive policies."""
    policy, _, rest = spec.strip().partition("@")
    from trail.policy import POLICIES

    if policy not in POLICIES:
        raise typer.BadParameter(
            f"{policy!r} is not one of {', '.join(POLICIES)}", param_hint="--policies"
        )
    extra: dict = {} if policy in ("fcfs", "sjf-prompt") else {"c": c}
    for item in filter(None, rest.split("+")):
        key, _, value = item.partition("=")
        extra[key] = float(value)
    return spec.strip(), policy, extra


@app.command("workload")
def workload(
    profile: Path = typer.Option(..., exists=True, help="a `trail profile` output folder"),
    out: Path = typer.Option(Path("runs/workload.jsonl")),
    splits: str = typer.Option("test,val,train", help="which profile splits to take"),
) -> None:
    """Write a replay workload (prompt, natural length) from a profile run."""
    from trail.bench.workload import from_profile, save_jsonl

    items = from_profile(profile, tuple(splits.split(",")))
    save_jsonl(items, out)
    typer.echo(f"{len(items)} requests -> {out}")


@app.command("overhead")
def overhead(
    batches: str = typer.Option("1,8,32"),
    tokens: int = typer.Option(48, help="decode tokens per request"),
    predict_every: int = typer.Option(1),
    probe: Path = typer.Option(None, help="probe dir (default: the shipped one)"),
    out: Path = typer.Option(Path("runs/overhead")),
) -> None:
    """Decode step time of `trail` (capture + probe each step) vs `fcfs` at several batch sizes."""
    import json

    from rich.console import Console
    from rich.table import Table
    from transformers import AutoTokenizer

    from trail.bench.overhead import measure
    from trail.engine.engine_config import EngineConfig
    from trail.models.chat import chat_prompt_ids

    console = Console()
    cfg = EngineConfig()
    tok = AutoTokenizer.from_pretrained(cfg.model)
    ids = chat_prompt_ids(tok, "Describe a busy harbour at dawn.")
    sizes = [int(b) for b in batches.split(",")]
    engine = cfg.model_dump(exclude={"trail"})
    trail = {"policy": "trail", "predict_every": predict_every}
    if probe:
        trail["probe_path"] = str(probe)
    with console.status("fcfs engine"):
        base = measure(engine, ids, sizes, tokens, {"policy": "fcfs"}, out / "fcfs")
    with console.status("trail engine"):
        with_probe = measure(engine, ids, sizes, tokens, trail, out / "trail")
    t = Table(title=f"decode step time (predict_every={predict_every})")
    for col in ["batch", "fcfs ms", "trail ms", "overhead"]:
        t.add_column(col, justify="right")
    rows = []
    for b in sizes:
        rows.append(
            {
                "batch": b,
                "fcfs_s": base[b],
                "trail_s": with_probe[b],
                "overhead": with_probe[b] / base[b] - 1,
            }
        )
        t.add_row(
            str(b),
            f"{base[b] * 1e3:.1f}",
            f"{with_probe[b] * 1e3:.1f}",
            f"{(with_probe[b] / base[b] - 1) * 100:+.1f}%",
        )
    console.print(t)
    out.mkdir(parents=True, exist_ok=True)
    (out / "overhead.json").write_text(json.dumps(rows, indent=2))


@app.command("load")
def load(
    url: str = typer.Option("http://127.0.0.1:8000", help="OpenAI server (ours or vLLM)"),
    model: str = typer.Option("smollm2", help="the served model name"),
    requests: Path = typer.Option(
        None, help="test-set JSON, profile dir or JSONL {prompt, out_tokens} (default: shipped)"
    ),
    n: int = typer.Option(32, help="requests"),
    rate: float = typer.Option(1.0, help="open-loop arrival rate, req/s (inf: all at once)"),
    burstiness: float = typer.Option(1.0, help="gamma shape: 1 Poisson, <1 burstier"),
    concurrency: int = typer.Option(0, help="> 0: closed loop with this many in flight"),
    mode: str = typer.Option("exact", help="exact: ignore_eos+max_tokens; natural: greedy"),
    max_out: int = typer.Option(128, help="clip output lengths (natural: the common cap)"),
    endpoint: str = typer.Option("chat", help="chat | completions"),
    true_len: bool = typer.Option(False, help="send trail.true_len (oracle policy)"),
    slo_ttft: float = typer.Option(None, help="goodput SLO: TTFT bound (s)"),
    slo_latency: float = typer.Option(None, help="goodput SLO: latency bound (s)"),
    slo_tpot: float = typer.Option(None, help="goodput SLO: TPOT bound (s)"),
    timeout: float = typer.Option(600.0, help="per-request timeout (s)"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("runs/bench/load.jsonl")),
) -> None:
    """Open-loop (or closed-loop) load against an OpenAI endpoint; per-request JSONL + summary."""
    import json

    from rich.console import Console

    from trail.bench.load import save_jsonl
    from trail.bench.metrics import SLO
    from trail.bench.report import print_summary
    from trail.bench.runner import LoadSpec, run_closed, run_open

    spec = LoadSpec(
        n=n,
        seed=seed,
        max_out=max_out,
        mode=_choice(mode, Mode, "--mode"),
        endpoint=_choice(endpoint, Endpoint, "--endpoint"),
        burstiness=burstiness,
        timeout_s=timeout,
        source=str(requests) if requests else None,
    )
    slo = SLO(slo_ttft, slo_latency, slo_tpot)
    if concurrency > 0:
        records, summary = run_closed(url, model, spec, concurrency, true_len, slo)
    else:
        records, summary = run_open(url, model, spec, rate, true_len, slo)
    save_jsonl(records, out, {"rate": rate, "concurrency": concurrency})
    out.with_suffix(".summary.json").write_text(
        json.dumps({"spec": spec.to_dict(), "summary": summary}, indent=2)
    )
    print_summary(Console(), summary, f"{url}: {len(records)} requests")
    typer.echo(f"wrote {out} and {out.with_suffix('.summary.json')}")


@app.command("compare")
def compare(
    quick: bool = typer.Option(False, help="3 policies, 1 load, 1 replica (~5 min)"),
    policies: str = typer.Option(None, help="override the plan's policies (comma list)"),
    loads: str = typer.Option(None, help="override loads, fractions of saturation (0.5,1)"),
    n: int = typer.Option(None, help="requests per run (default: 12 quick, 18 full)"),
    mode: str = typer.Option(
        "natural",
        help="natural: greedy under one max_tokens cap (lengths checked per run); exact: "
        "ignore_eos + max_tokens = length (sent with trail.use_max_tokens=false)",
    ),
    max_out: int = typer.Option(128, help="clip output lengths (the common max_tokens)"),
    max_num_seqs: int = typer.Option(4, help="small, so requests queue"),
    burstiness: float = typer.Option(1.0),
    saturation: float = typer.Option(None, help="1-replica req/s from an earlier run: skip it"),
    seed: int = typer.Option(0),
    out: Path = typer.Option(Path("runs/compare")),
) -> None:
    """Policies x rates (1 replica), c sweep, routers (2 replicas) on a fresh app each; writes
    results.json, per-run JSONL, report.md and PNGs."""
    from rich.console import Console

    from trail.bench import compare as cmp
    from trail.bench.runner import LoadSpec

    console = Console()
    spec = LoadSpec(
        n or (12 if quick else 18), seed, max_out, _choice(mode, Mode, "--mode"), "chat", burstiness
    )
    plan = cmp.quick_plan(spec) if quick else cmp.full_plan(spec)
    plan.max_num_seqs = max_num_seqs
    plan.saturation_req_s = saturation
    if policies:
        plan.policies = policies.split(",")
    if loads:
        plan.loads = [float(x) for x in loads.split(",")]
    results = cmp.Compare(plan, out, console.print).run()
    paths = cmp.write_outputs(results, out)
    console.print((out / "report.md").read_text())
    console.print(
        f"wall {results['meta']['wall_s'] / 60:.1f} min; wrote " + ", ".join(map(str, paths))
    )


@app.command("report")
def report(
    out: Path = typer.Option(Path("runs/compare"), help="a `compare` output folder"),
) -> None:
    """Re-render report.md and the PNGs from a compare run's results.json."""
    import json

    from trail.bench.compare import write_outputs

    paths = write_outputs(json.loads((out / "results.json").read_text()), out)
    typer.echo((out / "report.md").read_text())
    typer.echo("wrote " + ", ".join(map(str, paths)))


def _choice(value: str, options: Any, flag: str) -> Any:
    """`value` if it is one of the Literal type's options, else a clear CLI error."""
    if value not in get_args(options):
        raise typer.BadParameter(
            f"{value!r} is not one of {', '.join(get_args(options))}", param_hint=flag
        )
    return value


def _prompt_predictions(texts: list[str]) -> list | None:
    """The shipped prompt predictor's distributions, or None (engines then use a default)."""
    try:
        from trail.predict.prompt import PromptPredictor

        return PromptPredictor.load().predict_dist(texts).tolist()
    except FileNotFoundError:
        return None


def _print(console, results: dict, rel: dict, title: str = "engine replay") -> None:  # noqa: ANN001
    from rich.table import Table

    t = Table(title=title)
    for col in [
        "policy",
        "mean lat",
        "P50",
        "P99",
        "mean TTFT",
        "tok/s",
        "FCFS/x mean",
        "FCFS/x TTFT",
        "preempt (policy/kv/starv)",
        "recomputed",
    ]:
        t.add_column(col, justify="right")
    for p, r in results.items():
        s = r["summary"]
        q = rel.get(p, {})
        t.add_row(
            p,
            f"{s['mean_latency_s']:.2f}",
            f"{s['p50_latency_s']:.2f}",
            f"{s['p99_latency_s']:.2f}",
            f"{s['mean_ttft_s']:.2f}",
            f"{s['throughput_tok_s']:.0f}",
            f"{q.get('mean_latency_s', float('nan')):.2f}x",
            f"{q.get('mean_ttft_s', float('nan')):.2f}x",
            "/".join(
                str(s.get("preemptions_by_reason", {}).get(k, 0))
                for k in ("policy", "kv_pressure", "starvation")
            ),
            str(s.get("recomputed_tokens", 0)),
        )
    console.print(t)
