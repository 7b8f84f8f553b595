"""Served models with no hub: the packaged SmolLM2-135M-Instruct and a tiny random Llama."""

from trail.models.paths import cache_dir, smollm2_dir, tiny_dir

__all__ = ["cache_dir", "smollm2_dir", "tiny_dir"]
