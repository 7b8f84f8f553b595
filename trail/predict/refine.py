"""Bayesian refinement of the remaining-length distribution (METHOD.md section 3).

Between probe calls the length drifts down one token per step: a Markov chain over bins where
bin i moves to bin i-1 with probability 1/width_i (bin 0 absorbing). After j steps the prior is
posterior @ T^j; a new probe output p multiplies in as a likelihood.

Calibration (issue 13): the probe outputs p(bin | h), a posterior under the training base rate,
and outputs of consecutive steps are highly correlated, so multiplying every one in as an
independent likelihood makes the posterior overconfident at the served cadence (every step).
The update therefore uses the likelihood ratio p / base_rate (dividing out the training prior)
raised to a temper 0 < alpha <= 1 (alpha = 1 and no base rate: the paper's rule). `trail eval`
picks alpha on the validation split at the served `predict_every`.
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
    """Rows (last axis) scaled to sum 1; a row with no finite positive mass becomes uniform."""
    total = p.sum(axis=-1, keepdims=True)
    bad = ~np.isfinite(total) | (total <= 0.0)
    safe = np.where(bad, 1.0, total)
    return np.where(bad, 1.0 / p.shape[-1], p / safe)


class BayesRefiner:
    """Posterior over remaining-length bins: one request ([K]) or a batch ([n, K]) at a time."""

    def __init__(
        self,
        bins: LengthBins,
        temper: float = 1.0,
        base_rate: np.ndarray | None = None,
        max_cached_power: int = 4096,
    ):
        if not 0.0 < temper <= 1.0:
            raise ValueError(f"temper must be in (0, 1], got {temper}")
        self.bins = bins
        self.temper = temper
        self.base_rate = None if base_rate is None else normalise(np.asarray(base_rate, float))
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
        return None if posterior is None else np.asarray(posterior) @ self.power(max(steps, 0))

    def update(
        self,
        posterior: np.ndarray | None,
        steps: int,
        likelihood: np.ndarray,
        first: bool = False,
    ) -> np.ndarray:
        """Posterior after `steps` generated tokens and a new probe output `likelihood`.

        With no posterior yet the probe output itself is the first posterior (it already holds
        the training prior). The request's first probe output (`first`) is independent of a
        prompt-predictor prior and enters untempered; later ones, correlated with the outputs
        already counted, enter as tempered likelihood ratios."""
        p = np.asarray(likelihood, dtype=float)
        prior = self.prior(posterior, steps)
        if prior is None:
            return normalise(p.copy())
        return normalise(prior * self.likelihood(p, 1.0 if first else self.temper))

    def likelihood(self, probe_probs: np.ndarray, temper: float | None = None) -> np.ndarray:
        alpha = self.temper if temper is None else temper
        ratio = probe_probs if self.base_rate is None else probe_probs / self.base_rate
        return ratio if alpha == 1.0 else np.power(np.maximum(ratio, 1e-300), alpha)

    def expected(self, posterior: np.ndarray) -> float:
        return float(self.bins.expected(posterior))
