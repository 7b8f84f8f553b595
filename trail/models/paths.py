"""Where prepared models live (configurable with TRAIL_CACHE)."""

from __future__ import annotations

import os
from pathlib import Path

SMOLLM2_NAME = "smollm2-135m-instruct"
TINY_NAME = "tiny-llama"
TINY_ARCHS = ("llama", "mistral", "qwen2", "qwen3", "granite", "phi3", "olmo2", "gpt2")
"""The tiny random models `trail model prepare` builds, by transformers model type: one folder
each (models/tiny-<arch>), all with SmolLM2's tokenizer. gpt2 is the one vLLM cannot give aux
hidden states for (trail.models.prepare.TINY_REFUSED_ARCH)."""


def cache_dir() -> Path:
    root = os.environ.get("TRAIL_CACHE") or Path.home() / ".cache" / "trail"
    return Path(root) / "models"


def smollm2_dir(root: Path | None = None) -> Path:
    return (root or cache_dir()) / SMOLLM2_NAME


def tiny_dir(root: Path | None = None, arch: str = "llama") -> Path:
    """The tiny model folder of one architecture (tiny-llama by default)."""
    if arch not in TINY_ARCHS:
        raise ValueError(f"unknown tiny architecture {arch!r}; known: {', '.join(TINY_ARCHS)}")
    return (root or cache_dir()) / f"tiny-{arch}"


SMOLLM2_ASSETS = Path(__file__).resolve().parents[1] / "assets" / "smollm2"
"""What ships with the package for SmolLM2: probe, prompt predictor, test set, workloads."""
