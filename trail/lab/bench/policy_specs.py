"""Policy specs of a comparison (`policy@key=value+...`) and the engine facts a cell needs;
shared by `trail bench replay`, `trail sim` and the analyses."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


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
        extra[key] = _router(value) if key == "router" else float(value)
    return spec.strip(), policy, extra


def with_probe(spec: tuple[str, str, dict], probe: Path | None) -> tuple[str, str, dict]:
    """The policies that read the probe get `probe_path`; the others stay as they are."""
    from trail.policy import POLICIES, PredictionSource

    label, policy, extra = spec
    if probe is None or POLICIES[policy].source is not PredictionSource.REFINED:
        return spec
    return label, policy, {"probe_path": str(probe), **extra}


def _router(name: str) -> str:
    from typing import get_args

    from trail.serve.config import RouterName

    if name not in get_args(RouterName):
        raise typer.BadParameter(f"router {name!r} is not one of {get_args(RouterName)}")
    return name


def kv_tokens(cfg: Any) -> int:
    """KV capacity in tokens of the engine's CPU cache (kv_cache_gib), from the model config."""
    hf = json.loads((Path(cfg.model) / "config.json").read_text())
    heads = hf.get("num_key_value_heads", hf["num_attention_heads"])
    head_dim = hf.get("head_dim", hf["hidden_size"] // hf["num_attention_heads"])
    per_token = 2 * hf["num_hidden_layers"] * heads * head_dim * 4  # K and V, fp32
    return int(cfg.kv_cache_gib * 2**30 // per_token)
