"""`trail bench ...`: benchmarks that print their numbers and save JSON + PNG."""

from __future__ import annotations

from pathlib import Path
from typing import Any, get_args

import typer

from trail.cli.burst import burst
from trail.cli.replay import replay
from trail.lab.bench.client import Endpoint, Mode
from trail.lab.bench.online import online, valid_template

app = typer.Typer(
    help="Benchmarks (engine replay; HTTP load and comparison).", no_args_is_help=True
)
app.command("replay")(replay)
app.command("burst")(burst)
app.command("online")(online)


@app.command("workload")
def workload(
    profile: Path = typer.Option(None, exists=True, help="a `trail profile` output folder"),
    held_out: int = typer.Option(
        0, help="instead: N test-split prompts from the tail of the profile order, no lengths"
    ),
    source: Path = typer.Option(
        None, "--from", exists=True, help="instead: a workload JSONL (e.g. the packaged held-out)"
    ),
    template: str = typer.Option(
        "{prompt}",
        help="one application's wrapper around every prompt, e.g. 'Reply in one short "
        "sentence.\\n\\n{prompt}' (short, heavy-tailed answers)",
        callback=valid_template,
    ),
    measure: bool = typer.Option(
        False, help="measure each prompt's natural greedy length on one FCFS engine (minutes)"
    ),
    cap: int = typer.Option(512, help="--measure: max_tokens"),
    model: str = typer.Option(None, help="--measure: model folder (default: prepared SmolLM2)"),
    out: Path = typer.Option(Path("runs/workload.jsonl")),
    splits: str = typer.Option("test,val,train", help="which profile splits to take"),
) -> None:
    """Write a replay workload: (prompt, natural length) from a profile run, or held-out
    prompts whose lengths the experiment's FCFS run (or `--measure`) measures."""
    from trail.lab.workload import prompts as wl

    if held_out:
        from transformers import AutoTokenizer

        from trail.models.paths import smollm2_dir

        items = wl.held_out(AutoTokenizer.from_pretrained(str(smollm2_dir())), held_out)
    elif profile is not None:
        items = wl.from_profile(profile, tuple(splits.split(",")))
    elif source is not None:
        items = wl.load_jsonl(source)
    else:
        raise typer.BadParameter("give --profile DIR, --held-out N or --from JSONL")
    items = wl.templated(items, template)
    if measure:
        from rich.console import Console

        from trail.lab.bench.replay import measure_lengths

        with Console().status(f"measuring {len(items)} natural lengths on one FCFS engine"):
            items = measure_lengths(items, cap, out.with_suffix(".measure"), model)
        lengths = [w.out_tokens or 0 for w in items]
        typer.echo(
            f"lengths: mean {sum(lengths) / len(lengths):.0f}, "
            f"{sum(n >= cap for n in lengths) / len(lengths):.0%} at the cap"
        )
    wl.save_jsonl(items, out)
    typer.echo(f"{len(items)} requests -> {out}")


@app.command("overhead")
def overhead(
    batches: str = typer.Option("1,8,32"),
    tokens: int = typer.Option(48, help="decode tokens per request"),
    predict_every: int = typer.Option(None, help="probe cadence (default: the probe card's)"),
    reps: int = typer.Option(1, help="fcfs/trail pairs, interleaved (machine speed drifts)"),
    probe: Path = typer.Option(None, help="probe dir (default: the shipped one)"),
    out: Path = typer.Option(Path("runs/overhead")),
) -> None:
    """Decode step time of `trail` (capture + probe + refinement) vs `fcfs` at several batch
    sizes; each repetition runs both engines back to back and the table shows the means."""
    import json

    import numpy as np
    from rich.console import Console
    from rich.table import Table
    from transformers import AutoTokenizer

    from trail.engine.engine_config import EngineConfig
    from trail.lab.bench.overhead import measure
    from trail.models.chat import chat_prompt_ids

    console = Console()
    cfg = EngineConfig()
    tok = AutoTokenizer.from_pretrained(cfg.model)
    ids = chat_prompt_ids(tok, "Describe a busy harbour at dawn.")
    sizes = [int(b) for b in batches.split(",")]
    engine = cfg.model_dump(exclude={"trail"})
    trail: dict = {"policy": "trail"}
    if predict_every:
        trail["predict_every"] = predict_every
    if probe:
        trail["probe_path"] = str(probe)
    runs: dict[str, list[dict[int, float]]] = {"fcfs": [], "trail": []}
    for rep in range(reps):
        for name, settings in (("fcfs", {"policy": "fcfs"}), ("trail", trail)):
            with console.status(f"{name} engine, repetition {rep + 1}/{reps}"):
                runs[name].append(
                    measure(engine, ids, sizes, tokens, settings, out / f"{name}{rep}")
                )
    t = Table(title=f"decode step time, mean of {reps} interleaved repetition(s)")
    for col in ["batch", "fcfs ms", "trail ms", "overhead"]:
        t.add_column(col, justify="right")
    rows = []
    for b in sizes:
        base = float(np.mean([r[b] for r in runs["fcfs"]]))
        with_probe = float(np.mean([r[b] for r in runs["trail"]]))
        rows.append(
            {
                "batch": b,
                "fcfs_s": base,
                "trail_s": with_probe,
                "overhead": with_probe / base - 1,
                "reps": {k: [r[b] for r in v] for k, v in runs.items()},
            }
        )
        t.add_row(
            str(b),
            f"{base * 1e3:.1f}",
            f"{with_probe * 1e3:.1f}",
            f"{(with_probe / base - 1) * 100:+.1f}%",
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
    true_len: bool = typer.Option(False, help="send vllm_xargs.trail_true_len (oracle policy)"),
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

    from trail.lab.bench.loadgen import save_jsonl
    from trail.lab.bench.run_summary import SLO, print_summary
    from trail.lab.bench.runner import LoadSpec, run_closed, run_open

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


def _choice(value: str, options: Any, flag: str) -> Any:
    """`value` if it is one of the Literal type's options, else a clear CLI error."""
    if value not in get_args(options):
        raise typer.BadParameter(
            f"{value!r} is not one of {', '.join(get_args(options))}", param_hint=flag
        )
    return value
