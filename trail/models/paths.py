"""Where prepared models live (configurable with TRAIL_CACHE)."""

from __future__ import annotations

import os
from pathlib import Path

SMOLLM2_NAME = "smollm2-135m-instruct"
TINY_NAME = "tiny-llama"


def cache_dir() -> Path:
    root = os.environ.get("TRAIL_CACHE") or Path.home() / ".cache" / "trail"
    return Path(root) / "models"


def smollm2_dir(root: Path | None = None) -> Path:
    return (root or cache_dir()) / SMOLLM2_NAME


def tiny_dir(root: Path | None = None) -> Path:
    return (root or cache_dir()) / TINY_NAME
