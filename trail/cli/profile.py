"""`trail profile`: natural output lengths + candidate layers' hidden states, in resumable
shards; `trail profile merge` unites profiles of disjoint shard ranges."""

from __future__ import annotations

from pathlib import Path

import typer

from trail.models.paths import smollm2_dir

app = typer.Typer(help="Profile the served model on first-turn ShareGPT prompts.")


def default_profile_dir(model: Path | None = None) -> Path:
    """~/.cache/trail/profile/<model folder name>; SmolLM2's keeps its historical name."""
    root = smollm2_dir().parents[1] / "profile"
    if model is None or Path(model).resolve() == smollm2_dir().resolve():
        return root / "smollm2"
    return root / Path(model).name


@app.callback(invoke_without_command=True)
def profile(
    ctx: typer.Context,
    out: Path = typer.Option(None, help="Shard folder (default ~/.cache/trail/profile/<model>)"),
    model: Path = typer.Option(None, help="HF model folder or id (default: SmolLM2)"),
    limit: int = typer.Option(None, help="Profile only the first N prompts of the seeded order"),
    shard_range: str = typer.Option(
        None,
        help="A:B = only global shards A..B-1 (A: = A onwards), so several GPUs/nodes profile "
        "disjoint slices of one prompt order into their own folders; then `trail profile merge`",
    ),
    layers: str = typer.Option(
        None,
        help="Candidate layers: ids (6,9,12) or fractions of depth (0.25,0.5); default "
        "0.2..0.9 of the model's depth (SmolLM2: 6,9,12,15,17,19,21,24,27)",
    ),
    cap: int = typer.Option(512, help="max_tokens: answers still running here are cut"),
    seed: int = typer.Option(0, help="Prompt order, split and sampled positions"),
    max_prompt_tokens: int = typer.Option(512, help="Drop longer chat-templated prompts"),
    positions: int = typer.Option(32, help="Sampled decode steps per train/val request"),
    train_stride: int = typer.Option(1, help="Train requests: draw positions from every Nth step"),
    repetition_penalty: float = typer.Option(1.0, help="vLLM repetition_penalty (1 = off)"),
    shard_size: int = typer.Option(256, help="Requests per shard"),
    budget_min: float = typer.Option(1e9, help="Stop starting new shards after N minutes"),
    max_num_seqs: int = typer.Option(128, help="vLLM batch size"),
    dtype: str = typer.Option(
        None, help="vLLM dtype (default: float32 on CPU, where bf16 is ~8x slower; bf16 on GPUs)"
    ),
    eager: bool | None = typer.Option(
        None, "--eager/--no-eager", help="enforce_eager (default: on CPU; graphs on GPUs)"
    ),
    tensor_parallel_size: int = typer.Option(1, help="vLLM tensor parallel size"),
) -> None:
    if ctx.invoked_subcommand is not None:
        return
    from trail.lab.learn.profile import (
        EngineOptions,
        ProfileSettings,
        model_depth,
        parse_shard_range,
        platform_dtype,
        platform_eager,
        resolve_layers,
        run_profile,
    )

    name = str(model or smollm2_dir())
    try:
        chosen = resolve_layers(layers, model_depth(name))
        shards = parse_shard_range(shard_range)
    except ValueError as e:
        raise typer.BadParameter(str(e)) from e
    settings = ProfileSettings(
        model=name,
        cap=cap,
        seed=seed,
        max_prompt_tokens=max_prompt_tokens,
        positions=positions,
        train_stride=train_stride,
        repetition_penalty=repetition_penalty,
        shard_size=shard_size,
        dtype=dtype or platform_dtype(),
        layers=chosen,
    )
    engine = EngineOptions(
        max_num_seqs=max_num_seqs,
        tensor_parallel_size=tensor_parallel_size,
        enforce_eager=platform_eager() if eager is None else eager,
    )
    root = out or default_profile_dir(model)
    manifest = run_profile(
        root, settings, engine, limit=limit, shards=shards, budget_min=budget_min
    )
    typer.echo(f"{len(manifest['done'])} shards done in {root}")


@app.command("merge")
def merge(
    out: Path = typer.Argument(..., help="New profile folder"),
    inputs: list[Path] = typer.Argument(..., help="Profiles of disjoint shard ranges"),
) -> None:
    """Unite profiles of disjoint shard ranges (equal settings) into OUT."""
    from trail.lab.learn.merge import MergeRefused, merge_profiles

    try:
        manifest = merge_profiles(out, inputs)
    except MergeRefused as e:
        typer.echo(f"refused: {e}", err=True)
        raise typer.Exit(2) from e
    typer.echo(f"{len(manifest['done'])} shards in {out}: {manifest['done']}")


if __name__ == "__main__":
    app()
