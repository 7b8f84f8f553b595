"""Arrays for training from a loaded profile: one layer's rows per split, prompts per split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from trail.lab.learn.shards import ProfileData, read_manifest
from trail.predict.bins import LengthBins, quantile_edges


def profile_cap(root: Path) -> int:
    manifest = read_manifest(root)
    if manifest is None:
        raise FileNotFoundError(f"no profile at {root}: run `trail profile` first")
    return int(manifest["settings"]["cap"])


def choose_bins(data: ProfileData, k: int, cap: int) -> LengthBins:
    """Deterministic from the training labels, so `train probe` and `train prompt` agree."""
    return quantile_edges(data.labels[data.split_rows("train")], k, cap)


def rows_xy(  # noqa: ANN201
    data: ProfileData, split: str, layer_axis: int | None = None, cap: int | None = None
):
    """(inputs, remaining labels) of one split; `layer_axis` picks a layer from multi-layer
    data; with `cap`, the probe's position features of each row's step are appended."""
    from trail.predict.probe import position_features

    rows = data.split_rows(split)
    x = data.vectors[rows] if layer_axis is None else data.vectors[rows, layer_axis]
    x = np.asarray(x, dtype=np.float32)
    if cap is not None:
        x = np.concatenate([x, position_features(data.steps[rows], cap).numpy()], axis=1)
    return x, data.labels[rows]


def requests_of(data: ProfileData, split: str) -> list[dict]:
    return [r for r in data.requests if r["split"] == split]
