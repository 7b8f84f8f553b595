"""Engine tests: each engine configuration runs in its own process (see engine_run.py)."""

from __future__ import annotations

import pytest

from tests.support.known_probe import write_known_probe


@pytest.fixture
def known_probe(tmp_path, tiny_path):  # noqa: ARG001 - the tiny model must exist
    """See tests/support/known_probe.py."""
    return write_known_probe(tmp_path / "known-probe")


@pytest.fixture
def run_scenario(tmp_path):
    from trail.engine.run_scenario import run_in_subprocess

    def run(
        engine: dict, phases: list[list[dict]], timeout: int = 900, preload: list[str] = ()
    ) -> dict:
        spec = {"engine": engine, "phases": phases, "preload": list(preload)}
        try:
            return run_in_subprocess(spec, tmp_path, timeout)
        except RuntimeError as e:
            pytest.fail(str(e))

    return run
