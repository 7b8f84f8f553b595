"""Profile shards on disk: `shard_XXXXX.json` (requests) + `shard_XXXXX.npz` (vectors), and a
`manifest.json` holding the run's settings and the finished shards, so a run can resume.

An npz holds the sampled rows (`req`, `steps`, `labels`, `vectors` [rows, layers, H]) and, for
val/test requests, every step (`dense_req`, `dense_steps`, `dense_vectors`); the layer axis
follows the manifest's `settings.layers`.
"""

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
    """All finished shards' sampled rows, one layer (or several) loaded."""

    requests: list[dict]
    row_request: np.ndarray  # index into `requests`
    steps: np.ndarray  # generated tokens so far (0 = last prompt token)
    labels: np.ndarray  # remaining tokens (total at step 0)
    vectors: np.ndarray  # [rows, hidden] for one layer or [rows, layers, hidden]
    layers: list[int]  # layer id of each slice of the layer axis

    def split_rows(self, split: str) -> np.ndarray:
        splits = np.array([r["split"] for r in self.requests])
        return np.flatnonzero(splits[self.row_request] == split)

    def lengths(self, split: str | None = None) -> np.ndarray:
        return np.array([r["length"] for r in self.requests if split in (None, r["split"])])


def _layer_index(manifest: dict, layers: list[int] | None) -> tuple[list[int], list[int] | None]:
    have = list(manifest["settings"]["layers"])
    if layers is None:
        return have, None
    missing = [k for k in layers if k not in have]
    if missing:
        raise ValueError(f"layers {missing} were not captured; the profile holds {have}")
    return list(layers), [have.index(k) for k in layers]


def _finished(root: Path) -> tuple[dict, list[int]]:
    manifest = read_manifest(root)
    if manifest is None:
        raise FileNotFoundError(f"no profile at {root}: run `trail profile` first")
    return manifest, sorted(int(i) for i in manifest["done"])


def load_profile(root: Path, layers: list[int] | None = None) -> ProfileData:
    """The finished shards' sampled rows; `layers` (ids) selects layers (None: all captured)."""
    manifest, done = _finished(root)
    ids, index = _layer_index(manifest, layers)
    requests: list[dict] = []
    parts: dict[str, list[np.ndarray]] = {"req": [], "steps": [], "labels": [], "vectors": []}
    for i in done:
        name = shard_name(i)
        reqs = json.loads((root / f"{name}.json").read_text())
        with np.load(root / f"{name}.npz") as z:
            parts["req"].append(z["req"] + len(requests))
            parts["steps"].append(z["steps"])
            parts["labels"].append(z["labels"])
            vec = z["vectors"]
            parts["vectors"].append(vec if index is None else vec[:, index])
        requests.extend(reqs)
    cat = {k: np.concatenate(v) for k, v in parts.items()}
    vectors = cat["vectors"]
    if layers is not None and len(layers) == 1:
        vectors = vectors[:, 0]
    return ProfileData(requests, cat["req"], cat["steps"], cat["labels"], vectors, ids)


def load_dense(root: Path, layer: int, split: str) -> tuple[list[dict], list[np.ndarray]]:
    """Every step of the `split` requests at one layer: requests and one [L, H] array each."""
    manifest, done = _finished(root)
    _, index = _layer_index(manifest, [layer])
    assert index is not None
    requests: list[dict] = []
    vectors: list[np.ndarray] = []
    for i in done:
        name = shard_name(i)
        reqs = json.loads((root / f"{name}.json").read_text())
        with np.load(root / f"{name}.npz") as z:
            req, steps = z["dense_req"], z["dense_steps"]
            vec = z["dense_vectors"][:, index[0]]
        for j, r in enumerate(reqs):
            if r["split"] != split:
                continue
            rows = np.flatnonzero(req == j)
            rows = rows[np.argsort(steps[rows])]
            if len(rows) != r["length"] or steps[rows[0]] != 0:
                raise ValueError(f"shard {i} request {j}: dense rows do not cover 0..L-1")
            requests.append(r)
            vectors.append(vec[rows])
    return requests, vectors
