"""Latency summaries shared by the replay and HTTP benchmarks (pure numpy)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def summarize(
    latencies: Sequence[float], ttfts: Sequence[float], tokens: int, span_s: float
) -> dict:
    lat = np.asarray(latencies, dtype=float)
    ttft = np.asarray(ttfts, dtype=float)
    if lat.size == 0:
        return {"n": 0}
    return {
        "n": int(lat.size),
        "mean_latency_s": float(lat.mean()),
        "p50_latency_s": float(np.percentile(lat, 50)),
        "p90_latency_s": float(np.percentile(lat, 90)),
        "p99_latency_s": float(np.percentile(lat, 99)),
        "mean_ttft_s": float(ttft.mean()),
        "p99_ttft_s": float(np.percentile(ttft, 99)),
        "throughput_tok_s": float(tokens / span_s) if span_s > 0 else 0.0,
    }


def ratios(base: dict, other: dict, keys: Sequence[str]) -> dict:
    """base / other for each key (how many times better `other` is than `base`)."""
    return {k: (base[k] / other[k] if other.get(k) else float("nan")) for k in keys}
