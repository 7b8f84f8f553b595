"""`trail doctor`: the command around trail/doctor.py (engine settings as Serve takes them)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from trail.engine.engine_config import EngineConfig


def doctor(
    model: str = typer.Option(None, help="model folder or alias (smollm2, tiny); default SmolLM2"),
    config: Path = typer.Option(
        None, help="a Serve YAML (deployments/*.yaml): its first app's engine settings"
    ),
    engine: str = typer.Option(
        None, help="more EngineConfig fields as JSON, e.g. '{\"enforce_eager\": false}'"
    ),
    probe: str = typer.Option(None, help="trained probe folder (default: the config's)"),
    max_tokens: int = typer.Option(
        None, min=2, help="tokens per request (default: 2 probe periods)"
    ),
    tolerance: float = typer.Option(None, help="max relative error vs transformers"),
    reference: bool = typer.Option(True, help="compare captured rows with transformers"),
    json_out: Path = typer.Option(None, "--json", help="also write the checks as JSON"),
) -> None:
    """Start the engine as a Serve replica would, send a few requests, print PASS/FAIL per
    check (exit code 1 on any FAIL). docs/gpu.md says which checks only a GPU confirms."""
    from rich.console import Console
    from rich.table import Table

    from trail.doctor import doctor as run_doctor

    cfg = engine_config(model, config, engine, probe)
    checks = run_doctor(cfg, max_tokens=max_tokens, tolerance=tolerance, reference=reference)
    table = Table(title=f"trail doctor: {cfg.model}")
    for col in ("check", "result", "detail"):
        table.add_column(col, overflow="fold")
    colors = {"PASS": "green", "FAIL": "red", "SKIP": "yellow", "NOTE": "cyan"}
    for c in checks:
        table.add_row(c.name, f"[{colors[c.status]}]{c.status}[/]", c.detail)
    Console(width=max(Console().width, 120)).print(table)
    if json_out:
        json_out.write_text(json.dumps([c.__dict__ for c in checks], indent=2) + "\n")
    if any(c.status == "FAIL" for c in checks):
        raise typer.Exit(1)


def engine_config(model: str | None, config: Path | None, engine: str | None, probe: str | None):  # noqa: ANN201 - EngineConfig
    """The engine settings exactly as Serve would build them: a Serve YAML's `engine`, then
    JSON overrides, then --model/--probe."""
    import yaml

    from trail.serve.config import ServeConfig, resolve_model

    raw: dict = {}
    if config is not None:
        apps = yaml.safe_load(config.read_text())["applications"]
        raw = apps[0].get("args", {}).get("engine", {})
    raw = {**raw, **(json.loads(engine) if engine else {})}
    if model:
        raw["model"] = model
    if probe:
        raw["trail"] = {**(raw.get("trail") or {}), "probe_path": probe}
    cfg = ServeConfig.model_validate({"engine": raw}).engine if raw else EngineConfig()
    return cfg.model_copy(update={"model": resolve_model(cfg.model)})
