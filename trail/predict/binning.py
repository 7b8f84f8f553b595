"""Choose bin edges from the measured length distribution (not a copy of the paper's 10 x 512).

The probe predicts remaining length at every step, so the edges follow the pooled training
labels: equal-mass (quantile) bins are narrow where most requests are, so the expected value
over midpoints loses little to quantisation. SmolLM2 often loops until the cap, so total
lengths have a spike at the cap: a narrow top bin [cap - top_width, cap] holds that spike with
a midpoint near the cap, and the other K-1 bins are quantiles of the labels below it.
"""

from __future__ import annotations

import numpy as np

from trail.predict.bins import LengthBins


def quantile_edges(
    labels: np.ndarray, k: int, cap: int, min_width: int = 8, top_width: int = 16
) -> LengthBins:
    """K-1 equal-mass bins over [0, cap - top_width) + the top bin; widths >= `min_width`."""
    x = np.asarray(labels, dtype=float)
    top = cap - top_width
    inner = np.quantile(x[x < top], np.linspace(0, 1, k)[1:-1])
    edges = [0.0]
    for q in np.round(inner):
        if q - edges[-1] >= min_width and top - q >= min_width:
            edges.append(float(q))
    edges += [float(top), float(cap)]
    return LengthBins.from_edges(edges)


def quantisation_mae(bins: LengthBins, labels: np.ndarray) -> float:
    """MAE of an oracle that knows the right bin: the floor any predictor over these bins has."""
    x = np.asarray(labels, dtype=float)
    return float(np.mean(np.abs(bins.midpoints[bins.index(x)] - x)))
