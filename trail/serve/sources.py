"""What a replica loads from its node's disk, checked before anything starts.

On a cluster the weights, the probe and the prompt predictor live wherever the operator put
them (a volume mounted at /mnt/models, a bucket synced there by cluster.yaml's setup commands,
or a hub id where the nodes have internet). A missing one should fail the replica's start with
its path, node and fix — not as a stack trace from deep inside vLLM or torch.
"""

from __future__ import annotations

import socket
from pathlib import Path

from trail.serve.config import ServeConfig


def looks_like_path(source: str) -> bool:
    """A hub id is `org/name`; anything absolute, relative or home-based is a local path."""
    return source.startswith(("/", "./", "../", "~")) or Path(source).exists()


def missing_sources(cfg: ServeConfig) -> list[str]:
    """Every local source the replica needs and this node lacks, as `what: path`."""
    wanted = [("engine.model", cfg.engine.model, "config.json")]
    trail = cfg.engine.trail
    if trail is not None and trail.probe_path:
        wanted.append(("engine.trail.probe_path", trail.probe_path, "probe.json"))
    if cfg.prompt_predictor_path:
        wanted.append(("prompt_predictor_path", cfg.prompt_predictor_path, "prompt.json"))
    return [
        f"{what}: {path} (no {marker})"
        for what, path, marker in wanted
        if looks_like_path(path) and not (Path(path).expanduser() / marker).exists()
    ]


def check_sources(cfg: ServeConfig) -> None:
    missing = missing_sources(cfg)
    if missing:
        raise FileNotFoundError(
            f"node {socket.gethostname()} lacks what this replica loads: {'; '.join(missing)}. "
            "Provision them on every GPU node (cluster.yaml: file_mounts or setup_commands "
            "syncing your bucket to /mnt/models), or name a hub id where nodes have internet"
        )
