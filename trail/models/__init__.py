"""Served models with no hub: the packaged SmolLM2-135M-Instruct and tiny random models of
several architectures (tiny-llama first)."""

from trail.models.paths import TINY_ARCHS, cache_dir, smollm2_dir, tiny_dir

__all__ = ["TINY_ARCHS", "cache_dir", "smollm2_dir", "tiny_dir"]
