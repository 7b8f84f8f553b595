"""Length bins: a prediction is a probability vector over bins; its scalar is the expected value.

Edges are chosen from the measured length distribution (not a copy of the paper's 10 x 512).
The probe predicts remaining length at every step, so the edges follow the pooled training
labels: equal-mass (quantile) bins are narrow where most requests are, so the expected value
over midpoints loses little to quantisation. SmolLM2 often loops until the cap, so total
lengths have a spike at the cap: a narrow top bin [cap - top_width, cap] holds that spike with
a midpoint near the cap, and the other K-1 bins are quantiles of the labels below it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class LengthBins:
    """Bins [e0, e1), [e1, e2), ..., with the last bin open (">= its lower edge").

    `edges` has K+1 entries; the last one is the representative value used for the open bin's
    midpoint computation (e.g. the generation cap), so every bin has a finite midpoint.
    """

    edges: tuple[float, ...]

    @classmethod
    def uniform(cls, k: int = 10, upper: float = 512.0) -> LengthBins:
        return cls(tuple(float(x) for x in np.linspace(0.0, upper, k + 1)))

    @classmethod
    def from_edges(cls, edges: Sequence[float]) -> LengthBins:
        e = tuple(float(x) for x in edges)
        if len(e) < 2 or any(b <= a for a, b in zip(e, e[1:], strict=False)) or e[0] != 0.0:
            raise ValueError(f"bin edges must start at 0 and increase strictly, got {edges}")
        return cls(e)

    @property
    def k(self) -> int:
        return len(self.edges) - 1

    @property
    def widths(self) -> np.ndarray:
        return np.diff(np.asarray(self.edges))

    @property
    def midpoints(self) -> np.ndarray:
        e = np.asarray(self.edges)
        return (e[:-1] + e[1:]) / 2.0

    def index(self, lengths: np.ndarray | Sequence[float] | float) -> np.ndarray:
        """Bin index of each length; lengths past the last edge fall in the last (open) bin."""
        x = np.asarray(lengths, dtype=float)
        idx = np.searchsorted(np.asarray(self.edges), x, side="right") - 1
        return np.clip(idx, 0, self.k - 1)

    def expected(self, probs: np.ndarray) -> np.ndarray | float:
        """Expected length over bin midpoints (rows of `probs` are distributions)."""
        p = np.asarray(probs, dtype=float)
        value = p @ self.midpoints
        return float(value) if np.ndim(value) == 0 else value

    def one_hot(self, lengths: np.ndarray | Sequence[float]) -> np.ndarray:
        idx = self.index(lengths)
        out = np.zeros((len(idx), self.k))
        out[np.arange(len(idx)), idx] = 1.0
        return out

    def to_list(self) -> list[float]:
        return list(self.edges)


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
