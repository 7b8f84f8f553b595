"""Open-loop arrival processes: the request set is fixed and only *when* each request is sent
varies, so every policy and router sees the same arrivals (same seed -> same times).

Gamma inter-arrivals with shape `burstiness` and mean 1/rate follow `vllm bench serve`'s knob:
burstiness 1 is Poisson, below 1 is burstier (CV = 1/sqrt(burstiness)), above 1 smoother.
"""

from __future__ import annotations

import numpy as np


def arrival_times(n: int, rate: float, seed: int, burstiness: float = 1.0) -> np.ndarray:
    """Seconds from 0 at which the n requests are sent; rate = inf sends them all at 0."""
    if n < 0:
        raise ValueError("n must be >= 0")
    if burstiness <= 0:
        raise ValueError("burstiness must be > 0")
    if np.isinf(rate):
        return np.zeros(n)
    if rate <= 0:
        raise ValueError("rate must be > 0 req/s (or inf)")
    rng = np.random.default_rng(seed)
    if burstiness == 1.0:
        gaps = rng.exponential(1.0 / rate, size=n)
    else:
        gaps = rng.gamma(shape=burstiness, scale=1.0 / (rate * burstiness), size=n)
    return np.cumsum(gaps)


def scaled(unit_times: np.ndarray, rate: float) -> np.ndarray:
    """Arrivals of a rate-1 process stretched to `rate`: one seed, one shape, several loads
    (the runs at different rates then differ only in speed, not in which burst comes when)."""
    return np.asarray(unit_times, dtype=float) / rate
