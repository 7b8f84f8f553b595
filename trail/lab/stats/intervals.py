"""Ratios between policies with 95 % intervals, overall and per length bucket (pure numpy).

Every policy serves the same requests at the same arrival times, so the comparison is paired:
the bootstrap resamples seeds, then requests within each chosen seed, and takes the *same*
requests from both policies (a hierarchical, paired percentile bootstrap). With one seed it is
a plain paired bootstrap over requests. The point estimate is the ratio on all the data.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

Stat = Callable[[np.ndarray], float]
Samples = Mapping[int, Sequence[float] | np.ndarray]  # per seed, one value per request
BUCKET_EDGES = (128, 384)  # output tokens: short < 128 <= medium < 384 <= long
BUCKETS = ("short", "medium", "long")


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, float]:
        return {"value": self.value, "low": self.low, "high": self.high}

    def __str__(self) -> str:
        return f"{self.value:.2f} [{self.low:.2f}, {self.high:.2f}]"


def p99(x: np.ndarray) -> float:
    return float(np.percentile(x, 99))


STATS: dict[str, Stat] = {"mean": lambda x: float(np.mean(x)), "p50": np.median, "p99": p99}


def ratio_interval(
    base: Samples,
    other: Samples,
    stat: Stat = STATS["mean"],
    n_boot: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> Interval:
    """stat(base) / stat(other) (how many times better `other` is) with a percentile interval.

    base[s][i] and other[s][i] are the same request i of seed s under the two policies.
    """
    seeds = sorted(base)
    b = [np.asarray(base[s], dtype=float) for s in seeds]
    o = [np.asarray(other[s], dtype=float) for s in seeds]
    for s, x, y in zip(seeds, b, o, strict=True):
        if x.shape != y.shape or x.size == 0:
            raise ValueError(f"seed {s}: the two policies must serve the same, non-empty requests")
    value = pooled_ratio(base, other, stat)
    rng = np.random.default_rng(seed)
    draws = np.empty(n_boot)
    for k in range(n_boot):
        picked = rng.integers(len(seeds), size=len(seeds)) if len(seeds) > 1 else [0]
        idx = [rng.integers(b[j].size, size=b[j].size) for j in picked]
        xb = np.concatenate([b[j][i] for j, i in zip(picked, idx, strict=True)])
        ob = np.concatenate([o[j][i] for j, i in zip(picked, idx, strict=True)])
        draws[k] = _ratio(xb, ob, stat)
    tail = (1 - level) / 2 * 100
    low, high = np.nanpercentile(draws, [tail, 100 - tail])
    return Interval(value, float(low), float(high))


def pooled_ratio(
    base: Samples,
    other: Samples,
    stat: Stat = STATS["mean"],
) -> float:
    """stat(base) / stat(other) over all seeds' requests (the interval's point estimate)."""
    seeds = sorted(base)
    return _ratio(
        np.concatenate([np.asarray(base[s], float) for s in seeds]),
        np.concatenate([np.asarray(other[s], float) for s in seeds]),
        stat,
    )


def _ratio(x: np.ndarray, y: np.ndarray, stat: Stat) -> float:
    denom = stat(y)
    return float(stat(x) / denom) if denom > 0 else float("nan")


def bucket_of(lengths: Sequence[int], edges: tuple[int, int] = BUCKET_EDGES) -> np.ndarray:
    """'short' / 'medium' / 'long' for each output length."""
    idx = np.searchsorted(np.asarray(edges), np.asarray(lengths), side="right")
    return np.asarray(BUCKETS)[idx]


def by_bucket(values: Sequence[float], lengths: Sequence[int]) -> dict[str, np.ndarray]:
    """The values of each bucket (empty buckets left out)."""
    v, b = np.asarray(values, dtype=float), bucket_of(lengths)
    return {name: v[b == name] for name in BUCKETS if np.any(b == name)}
