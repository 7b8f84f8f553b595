"""What a probe call costs on this CPU, next to one decode step of the served model."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

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


@torch.inference_mode()
def decode_step_cost(model_dir: Path, context: int = 256, batch: int = 1) -> float:
    """Milliseconds for one decode step (one new token over a KV cache of `context` tokens),
    fp32 transformers on this CPU: the unit the probe's cost is compared with."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    ids = torch.randint(100, 1000, (batch, context))
    past = model(input_ids=ids, use_cache=True).past_key_values
    nxt = torch.randint(100, 1000, (batch, 1))

    def step() -> None:
        model(input_ids=nxt, past_key_values=past, use_cache=True)
        past.crop(context)

    return round(median_seconds(step, repeats=20) * 1e3, 3)
