"""`trail profile`: natural output lengths + every layer's hidden states, in resumable shards."""

from __future__ import annotations

from pathlib import Path

import typer

from trail.models.paths import smollm2_dir

app = typer.Typer(help="Profile the served model on first-turn ShareGPT prompts.")


def default_profile_dir() -> Path:
    return smollm2_dir().parents[1] / "profile" / "smollm2"


@app.callback(invoke_without_command=True)
def profile(
    out: Path = typer.Option(None, help="Shard folder (default ~/.cache/trail/profile/smollm2)"),
    model: Path = typer.Option(None, help="HF Llama-family folder (default: SmolLM2)"),
    limit: int = typer.Option(None, help="Profile only the first N prompts of the seeded order"),
    cap: int = typer.Option(512, help="max_tokens: answers still running here are cut"),
    seed: int = typer.Option(0, help="Prompt order, split and sampled positions"),
    max_prompt_tokens: int = typer.Option(512, help="Drop longer chat-templated prompts"),
    positions: int = typer.Option(32, help="Sampled decode steps per train/val request"),
    train_stride: int = typer.Option(1, help="Train requests: draw positions from every Nth step"),
    repetition_penalty: float = typer.Option(1.0, help="vLLM repetition_penalty (1 = off)"),
    shard_size: int = typer.Option(256, help="Requests per shard"),
    budget_min: float = typer.Option(1e9, help="Stop starting new shards after N minutes"),
    max_num_seqs: int = typer.Option(128, help="vLLM batch size"),
    dtype: str = typer.Option("float32", help="vLLM dtype (bf16 is ~8x slower on AVX2 CPUs)"),
) -> None:
    from trail.predict.profile import ProfileSettings, run_profile

    settings = ProfileSettings(
        model=str(model or smollm2_dir()),
        cap=cap,
        seed=seed,
        max_prompt_tokens=max_prompt_tokens,
        positions=positions,
        train_stride=train_stride,
        repetition_penalty=repetition_penalty,
        shard_size=shard_size,
        dtype=dtype,
    )
    root = out or default_profile_dir()
    manifest = run_profile(root, settings, limit, budget_min, max_num_seqs)
    typer.echo(f"{len(manifest['done'])} shards done in {root}")


if __name__ == "__main__":
    app()
