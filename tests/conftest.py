"""Shared fixtures: prepared model folders (built by `trail model prepare`, which `make test` runs)."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


@pytest.fixture(scope="session")
def smollm2_path() -> Path:
    from trail.models.paths import smollm2_dir

    path = smollm2_dir()
    if not (path / "config.json").exists():
        pytest.fail(f"{path} missing: run `trail model prepare` (make test does)")
    return path


@pytest.fixture(scope="session")
def tiny_path() -> Path:
    from trail.models.paths import tiny_dir

    path = tiny_dir()
    if not (path / "config.json").exists():
        pytest.fail(f"{path} missing: run `trail model prepare` (make test does)")
    return path


@pytest.fixture(scope="session")
def tiny_arch_paths() -> dict[str, Path]:
    """Every tiny architecture's folder (tiny-llama included), by transformers model type."""
    from trail.models.paths import TINY_ARCHS, tiny_dir

    paths = {arch: tiny_dir(arch=arch) for arch in TINY_ARCHS}
    missing = [str(path) for path in paths.values() if not (path / "config.json").exists()]
    if missing:
        pytest.fail(f"{', '.join(missing)} missing: run `trail model prepare` (make test does)")
    return paths


_session: list[pytest.Session] = []


def pytest_sessionfinish(session: pytest.Session) -> None:
    _session.append(session)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config: pytest.Config) -> None:
    """Leave without the interpreter's teardown. After a full run (every test passed, summary
    printed) the process once died in it with SIGSEGV, failing `make test`: the in-process
    engines, torch, Ray and gRPC leave native threads whose exit handlers race. Every result,
    the summary and pytest's cache are written by now; set TRAIL_TEST_CLEAN_EXIT=1 to keep the
    normal teardown (e.g. to debug it with `python -X faulthandler`)."""
    if _session and os.environ.get("TRAIL_TEST_CLEAN_EXIT") != "1":
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(int(_session[-1].exitstatus))
