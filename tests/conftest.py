"""Shared fixtures: prepared model folders (built by `trail model prepare`, which `make test` runs)."""

from __future__ import annotations

import os
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
