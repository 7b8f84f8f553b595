"""Bayesian refinement of the remaining-length distribution (METHOD.md section 3).

Between probe calls the length drifts down one token per step: a Markov chain over bins where
bin i moves to bin i-1 with probability 1/width_i (bin 0 absorbing). After j steps the prior is
posterior @ T^j; a new probe output p multiplies in as a likelihood.
"""

from __future__ import annotations

import numpy as np

from trail.predict.bins import LengthBins


def transition_matrix(bins: LengthBins) -> np.ndarray:
    k = bins.k
    t = np.zeros((k, k))
    t[0, 0] = 1.0
    for i in range(1, k):
        step = 1.0 / bins.widths[i]
        t[i, i] = 1.0 - step
        t[i, i - 1] = step
    return t


def normalise(p: np.ndarray) -> np.ndarray:
    total = float(p.sum())
    if not np.isfinite(total) or total <= 0.0:
        return np.full(p.shape, 1.0 / p.size)
    return p / total


class BayesRefiner:
    """Posterior over remaining-length bins for one request; cheap enough per step."""

    def __init__(self, bins: LengthBins, max_cached_power: int = 4096):
        self.bins = bins
        self.t = transition_matrix(bins)
        self._powers: dict[int, np.ndarray] = {0: np.eye(bins.k)}
        self._max_cached = max_cached_power

    def power(self, j: int) -> np.ndarray:
        if j not in self._powers:
            m = np.linalg.matrix_power(self.t, j)
            if len(self._powers) < self._max_cached:
                self._powers[j] = m
            return m
        return self._powers[j]

    def prior(self, posterior: np.ndarray | None, steps: int) -> np.ndarray | None:
        return None if posterior is None else posterior @ self.power(max(steps, 0))

    def update(
        self, posterior: np.ndarray | None, steps: int, likelihood: np.ndarray
    ) -> np.ndarray:
        """Posterior after `steps` generated tokens and a new probe output `likelihood`."""
        p = np.asarray(likelihood, dtype=float)
        prior = self.prior(posterior, steps)
        if prior is None:
            return normalise(p.copy())
        return normalise(prior * p)

    def expected(self, posterior: np.ndarray) -> float:
        return float(self.bins.expected(posterior))
