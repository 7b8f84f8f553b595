"""Engine tests: each engine configuration runs in its own process (see engine_run.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def base_id(engine_request_id: str) -> str:
    """vLLM appends '-xxxxxxxx' to request ids inside the engine."""
    return engine_request_id.rsplit("-", 1)[0]


@pytest.fixture
def known_probe(tmp_path, tiny_path):
    """A probe with known weights for the tiny model: zero input weights, so it outputs the same
    fixed distribution (uniform over 8 bins of 16 tokens) for every vector. It predicts nothing;
    it exercises the capture -> probe -> refinement path with values a test can reason about."""
    import torch

    from trail.predict.bins import LengthBins
    from trail.predict.probe import ProbeBundle, ProbeMLP

    bins = LengthBins.uniform(8, 128)
    probe = ProbeMLP(hidden=128, k=bins.k)
    with torch.no_grad():
        for p in probe.parameters():
            p.zero_()
    path = tmp_path / "known-probe"
    ProbeBundle(probe=probe, layer=1, bins=bins, card={"note": "known weights, test only"}).save(
        path
    )
    return path


@pytest.fixture
def run_scenario(tmp_path):
    from trail.engine.run_scenario import run_in_subprocess

    def run(engine: dict, phases: list[list[dict]], timeout: int = 900) -> dict:
        try:
            return run_in_subprocess({"engine": engine, "phases": phases}, tmp_path, timeout)
        except RuntimeError as e:
            pytest.fail(str(e))

    return run
