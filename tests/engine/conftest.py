"""Engine tests: each engine configuration runs in its own process (see engine_run.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.known_probe import write_known_probe


def read_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def base_id(engine_request_id: str) -> str:
    """vLLM appends '-xxxxxxxx' to request ids inside the engine."""
    return engine_request_id.rsplit("-", 1)[0]


@pytest.fixture
def known_probe(tmp_path, tiny_path):  # noqa: ARG001 - the tiny model must exist
    """See tests/known_probe.py."""
    return write_known_probe(tmp_path / "known-probe")


@pytest.fixture
def run_scenario(tmp_path):
    from trail.engine.run_scenario import run_in_subprocess

    def run(engine: dict, phases: list[list[dict]], timeout: int = 900) -> dict:
        try:
            return run_in_subprocess({"engine": engine, "phases": phases}, tmp_path, timeout)
        except RuntimeError as e:
            pytest.fail(str(e))

    return run
