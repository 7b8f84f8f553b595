"""`trail generate`: the smallest proof that the engine serves the real model."""

from __future__ import annotations

import time

import typer


def generate(
    prompt: str = typer.Argument(..., help="User message (chat template applied)"),
    max_tokens: int = typer.Option(128, min=1),
    model: str = typer.Option(None, help="Model folder (default: prepared SmolLM2)"),
    dtype: str = typer.Option("float32"),
    eager: bool = typer.Option(True, help="enforce_eager (no torch.compile warm-up)"),
) -> None:
    """Greedy chat generation through vLLM; prints the text and timings."""
    from trail.engine.engine_config import EngineConfig

    cfg = EngineConfig(dtype=dtype, enforce_eager=eager, max_num_seqs=4)
    if model:
        cfg.model = model
    _require_model(cfg.model)
    cfg.apply_env()
    t0 = time.perf_counter()
    from vllm import LLM, SamplingParams

    llm = LLM(**cfg.engine_kwargs())
    t_start = time.perf_counter() - t0
    params = SamplingParams(temperature=0.0, max_tokens=max_tokens)
    t1 = time.perf_counter()
    out = llm.chat([{"role": "user", "content": prompt}], params, use_tqdm=False)[0]
    dt = time.perf_counter() - t1
    n = len(out.outputs[0].token_ids)
    typer.echo(out.outputs[0].text)
    typer.secho(
        f"\n[{n} tokens in {dt:.2f}s = {n / dt:.1f} tok/s; engine start {t_start:.1f}s; "
        f"finish_reason={out.outputs[0].finish_reason}]",
        fg="cyan",
        err=True,
    )


def _require_model(path: str) -> None:
    from pathlib import Path

    if not (Path(path) / "config.json").exists():
        typer.secho(
            f"error: no model at {path}; run `trail model prepare` first", fg="red", err=True
        )
        raise typer.Exit(2)
