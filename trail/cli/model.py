"""`trail model prepare`: build the served model folders from installed packages."""

from __future__ import annotations

import time
from pathlib import Path

import typer

from trail.models.paths import TINY_ARCHS, cache_dir, smollm2_dir, tiny_dir

app = typer.Typer(help="Prepare the packaged models (no model hub needed).", no_args_is_help=True)


@app.command("prepare")
def prepare(
    cache: Path = typer.Option(None, help="Cache root (default: $TRAIL_CACHE or ~/.cache/trail)"),
    tiny: bool = typer.Option(
        True, help="Also build the tiny random models (tiny-llama and other architectures)."
    ),
    force: bool = typer.Option(False, help="Rebuild even when the cache verifies."),
) -> None:
    """Convert SmolLM2-135M-Instruct (packaged GGUF) to an HF folder, verified and idempotent."""
    from trail.models.prepare import ModelPackageMissing, prepare_smollm2, prepare_tiny_arch

    root = cache / "models" if cache else cache_dir()
    t0 = time.perf_counter()
    try:
        path, done = prepare_smollm2(smollm2_dir(root), force=force)
    except ModelPackageMissing as e:
        typer.secho(f"error: {e}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"{'prepared' if done else 'verified (no-op)'} {path} in {time.perf_counter() - t0:.1f}s"
    )
    if tiny:
        for arch in TINY_ARCHS:
            t0 = time.perf_counter()
            tpath, tdone = prepare_tiny_arch(
                arch, tiny_dir(root, arch), tokenizer_dir=path, force=force
            )
            typer.echo(
                f"{'prepared' if tdone else 'verified (no-op)'} {tpath} in {time.perf_counter() - t0:.1f}s"
            )
