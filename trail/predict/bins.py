"""Length bins: a prediction is a probability vector over bins; its scalar is the expected value."""

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
