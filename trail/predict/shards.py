"""Profile shards on disk: `shard_XXXXX.json` (requests) + `shard_XXXXX.npz` (vectors), and a
`manifest.json` holding the run's settings and the finished shards, so a run can resume."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

MANIFEST = "manifest.json"


def shard_name(i: int) -> str:
    return f"shard_{i:05d}"


def read_manifest(root: Path) -> dict[str, Any] | None:
    path = root / MANIFEST
    return json.loads(path.read_text()) if path.exists() else None


def write_manifest(root: Path, manifest: dict[str, Any]) -> None:
    """Write atomically so a killed run never leaves a half-written manifest."""
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest, indent=2) + "\n")
    tmp.replace(root / MANIFEST)


def write_shard(root: Path, i: int, requests: list[dict], arrays: dict[str, np.ndarray]) -> None:
    name = shard_name(i)
    np.savez(root / f"{name}.tmp.npz", **arrays)
    (root / f"{name}.tmp.npz").replace(root / f"{name}.npz")
    (root / f"{name}.json").write_text(json.dumps(requests) + "\n")


@dataclass
class ProfileData:
    """All finished shards, one layer (or all) loaded: rows are probe samples of requests."""

    requests: list[dict]
    row_request: np.ndarray  # index into `requests`
    steps: np.ndarray  # generated tokens so far (0 = last prompt token)
    labels: np.ndarray  # remaining tokens (total at step 0)
    vectors: np.ndarray  # [rows, hidden] for one layer or [rows, layers, hidden]

    def split_rows(self, split: str) -> np.ndarray:
        splits = np.array([r["split"] for r in self.requests])
        return np.flatnonzero(splits[self.row_request] == split)

    def lengths(self, split: str | None = None) -> np.ndarray:
        return np.array([r["length"] for r in self.requests if split in (None, r["split"])])


def load_profile(root: Path, layers: list[int] | None = None) -> ProfileData:
    """Load the finished shards; `layers` selects layer slices (None keeps all layers)."""
    manifest = read_manifest(root)
    if manifest is None:
        raise FileNotFoundError(f"no profile at {root}: run `trail profile` first")
    requests: list[dict] = []
    parts: dict[str, list[np.ndarray]] = {"req": [], "steps": [], "labels": [], "vectors": []}
    for i in sorted(manifest["done"]):
        name = shard_name(int(i))
        reqs = json.loads((root / f"{name}.json").read_text())
        with np.load(root / f"{name}.npz") as z:
            parts["req"].append(z["req"] + len(requests))
            parts["steps"].append(z["steps"])
            parts["labels"].append(z["labels"])
            vec = z["vectors"]
            parts["vectors"].append(vec if layers is None else vec[:, layers])
        requests.extend(reqs)
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    vectors = cat["vectors"]
    if layers is not None and len(layers) == 1:
        vectors = vectors[:, 0]
    return ProfileData(requests, cat["req"], cat["steps"], cat["labels"], vectors)
