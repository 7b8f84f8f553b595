"""What a probe call costs on this CPU, next to one decode step of the served model."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import torch

from trail.predict.probe import ProbeMLP


def median_seconds(fn: Callable[[], object], repeats: int = 50) -> float:
    """Median wall time per call after one warm-up call."""
    fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return float(np.median(samples))


def probe_cost(probe: ProbeMLP, batches: tuple[int, ...] = (1, 8, 32)) -> dict[str, float]:
    """Milliseconds per probe call (softmax included) at each batch size."""
    hidden = probe.net[0].in_features
    out = {}
    for b in batches:
        x = torch.randn(b, hidden)
        out[str(b)] = round(median_seconds(lambda x=x: probe.probs(x)) * 1e3, 4)
    return out


def prompt_cost(predictor, batches: tuple[int, ...] = (1, 16)) -> dict[str, float]:  # noqa: ANN001
    """Milliseconds per request (encoder + head) at each batch size: the ingress's cost."""
    text = "Explain how a hash map handles collisions, with a short example in Python."
    out = {}
    for b in batches:
        texts = [text] * b
        out[str(b)] = round(
            median_seconds(lambda t=texts: predictor.predict_dist(t), 10) * 1e3 / b, 3
        )
    return out
