"""Confidence intervals for steady-state means from one long, autocorrelated run."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import stats

from trail.lab.sim.distributions import Array


@dataclass(frozen=True)
class Estimate:
    mean: float
    half_width: float  # of the 95 % confidence interval

    @property
    def low(self) -> float:
        return self.mean - self.half_width

    @property
    def high(self) -> float:
        return self.mean + self.half_width

    def covers(self, value: float) -> bool:
        return self.low <= value <= self.high


def batch_means(values: Array, batches: int = 30, warmup: float = 0.05) -> Estimate:
    """Mean with a batch-means 95 % CI, after dropping a warm-up prefix.

    Response times of successive jobs are strongly correlated near load 1; means of long
    consecutive batches are nearly independent, so their spread gives an honest interval.
    """
    values = np.asarray(values, dtype=float)
    kept = values[int(len(values) * warmup) :]
    usable = len(kept) // batches * batches
    if usable < batches * 2:
        raise ValueError(f"too few samples ({len(values)}) for {batches} batches")
    means = kept[:usable].reshape(batches, -1).mean(axis=1)
    t = stats.t.ppf(0.975, batches - 1)
    return Estimate(float(means.mean()), float(t * means.std(ddof=1) / math.sqrt(batches)))


def littles_law_gap(area: float, arrivals: Array, departures: Array) -> float:
    """Relative gap between L (time-average number in system, kept by the simulator's own event
    loop) and lambda * W (from per-job times) over the whole run, which starts and ends empty."""
    horizon = float(np.max(departures) - np.min(arrivals))
    number = area / horizon
    lam_w = len(arrivals) / horizon * float(np.mean(departures - arrivals))
    return abs(number - lam_w) / lam_w
