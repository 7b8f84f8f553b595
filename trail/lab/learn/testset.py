"""Held-out requests for evaluation: from the profile (val and test), or the committed test set.

The committed set (trail/assets/smollm2/testset) holds, per test request, the shipped probe's
output at every step (float32) plus the probe's input vectors on a sparse grid (g = 0 and every
32nd step), prompt texts, true lengths and the training lengths the constant baselines come
from. Every-step vectors would be ~100 MB; the grid lets a test check that the committed outputs
are this probe's (`verify_outputs`), and `trail eval --shipped` reproduces the card from them.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from trail.lab.learn.evaluate import HeldOut
from trail.lab.learn.shards import load_dense
from trail.models.paths import SMOLLM2_ASSETS

DEFAULT_TESTSET_DIR = SMOLLM2_ASSETS / "testset"
KEEP = ("index", "id", "text", "n_prompt", "length", "finish", "repeat_ratio")
GRID = 32


def probe_outputs(bundle, vectors: list[np.ndarray], steps: list[np.ndarray]) -> list[np.ndarray]:  # noqa: ANN001
    """The probe's output for each request's rows at the given steps."""
    with torch.inference_mode():
        return [bundle.probs(v, g).double().numpy() for v, g in zip(vectors, steps, strict=True)]


def heldout_from_profile(root: Path, bundle, split: str) -> tuple[HeldOut, list[dict], list]:  # noqa: ANN001
    """A split's requests at every step, at the probe's layer, through the probe."""
    requests, vectors = load_dense(root, bundle.layer, split)
    held = HeldOut(
        probs=probe_outputs(bundle, vectors, [np.arange(len(v)) for v in vectors]),
        lengths=np.array([r["length"] for r in requests]),
        texts=[r["text"] for r in requests],
    )
    return held, [{k: r[k] for k in KEEP} for r in requests], vectors


def write_testset(
    directory: Path,
    held: HeldOut,
    requests: list[dict],
    vectors: list[np.ndarray],
    layer: int,
    train_lengths: np.ndarray,
) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    grid_req, grid_step, grid_vec = [], [], []
    for i, v in enumerate(vectors):
        steps = np.arange(0, len(v), GRID)
        grid_req.append(np.full(len(steps), i))
        grid_step.append(steps)
        grid_vec.append(v[steps])
    np.savez_compressed(
        directory / "rows.npz",
        probs=np.concatenate(held.probs).astype(np.float32),  # fp16 ties would move tau
        grid_request=np.concatenate(grid_req),
        grid_step=np.concatenate(grid_step),
        grid_vectors=np.concatenate(grid_vec).astype(np.float16),
    )
    meta = {"layer": layer, "requests": requests, "train_lengths": train_lengths.tolist()}
    (directory / "requests.json").write_text(json.dumps(meta) + "\n")


def load_testset(directory: Path = DEFAULT_TESTSET_DIR) -> tuple[HeldOut, dict, dict]:
    """(held-out test requests, metadata, grid arrays)."""
    meta = json.loads((directory / "requests.json").read_text())
    lengths = np.array([r["length"] for r in meta["requests"]])
    with np.load(directory / "rows.npz") as z:
        probs = z["probs"].astype(np.float64)
        grid = {k: z[k] for k in ("grid_request", "grid_step", "grid_vectors")}
    cut = np.cumsum(lengths)[:-1]
    held = HeldOut(list(np.split(probs, cut)), lengths, [r["text"] for r in meta["requests"]])
    return held, meta, grid


def verify_outputs(held: HeldOut, grid: dict, bundle, atol: float = 2e-3) -> float:  # noqa: ANN001
    """Max |probe(grid vector) - committed output| over the grid; raises if above `atol`."""
    fresh = probe_outputs(bundle, [grid["grid_vectors"]], [grid["grid_step"]])[0]
    stored = np.stack(
        [held.probs[r][g] for r, g in zip(grid["grid_request"], grid["grid_step"], strict=True)]
    )
    worst = float(np.abs(fresh - stored).max())
    if worst > atol:
        raise ValueError(f"committed probe outputs are not this probe's (max diff {worst:.2e})")
    return worst
