"""Arrays for training from a loaded profile: one layer's rows per split, prompts per split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trail.predict.binning import quantile_edges
from trail.predict.bins import LengthBins
from trail.predict.shards import ProfileData, read_manifest


def profile_cap(root: Path) -> int:
    manifest = read_manifest(root)
    if manifest is None:
        raise FileNotFoundError(f"no profile at {root}: run `trail profile` first")
    return int(manifest["settings"]["cap"])


def choose_bins(data: ProfileData, k: int, cap: int) -> LengthBins:
    """Deterministic from the training labels, so `train probe` and `train prompt` agree."""
    return quantile_edges(data.labels[data.split_rows("train")], k, cap)


def rows_xy(data: ProfileData, split: str, layer_axis: int | None = None):  # noqa: ANN201
    """(vectors, remaining labels) of one split; `layer_axis` picks a layer from all-layer data."""
    rows = data.split_rows(split)
    x = data.vectors[rows] if layer_axis is None else data.vectors[rows, layer_axis]
    return np.asarray(x, dtype=np.float32), data.labels[rows]


def requests_of(data: ProfileData, split: str) -> list[dict]:
    return [r for r in data.requests if r["split"] == split]
