"""Probes with known weights for the tiny test model (shared by engine and serve tests)."""

from __future__ import annotations

from pathlib import Path


def write_known_probe(path: Path, seed: int | None = None) -> Path:
    """Zero weights, so it outputs the same fixed distribution (uniform over 8 bins of 16
    tokens) for every vector: it predicts nothing, but exercises the capture -> probe ->
    refinement path with values a test can reason about.

    With a `seed`: random weights instead, so requests get different predictions (a test of
    what a policy does with them must not run on a probe whose rank is a constant)."""
    import torch

    from trail.predict.bins import LengthBins
    from trail.predict.probe import ProbeBundle, ProbeMLP

    bins = LengthBins.uniform(8, 128)
    if seed is not None:
        torch.manual_seed(seed)
    probe = ProbeMLP(hidden=128, k=bins.k)
    with torch.no_grad():
        for p in probe.parameters():
            if seed is None:
                p.zero_()
            else:
                p.mul_(8.0)  # default init is too flat to separate requests
    ProbeBundle(probe=probe, layer=1, bins=bins, card={"note": "known weights, test only"}).save(
        path
    )
    return path
