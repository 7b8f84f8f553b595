"""How TRAIL's settings reach vLLM's processes without costing a compile per replica.

vLLM hashes `hf_config` into its torch.compile cache key (ModelConfig.compute_hash) but ignores
the `hf_overrides` field itself. A dict override is written into hf_config, so a replica name,
a dump path or a Redis URL there made every replica compile cold. A *callable* override is kept
as the object it is (pickled to the engine core and workers with the VllmConfig) and only what
it writes into hf_config is hashed: here the aux-hidden-state layers, the one TRAIL setting that
changes the compiled graph. Two replicas of one config therefore share one compile.
"""

from __future__ import annotations

from typing import Any

from trail.engine.trail_config import TrailConfig

AUX_LAYERS_KEY = "trail_aux_layers"  # hf_config attribute: part of the compile-cache key


class TrailOverrides:
    """vLLM `hf_overrides` for an engine with TRAIL; `.trail` is the engine's TrailConfig."""

    def __init__(self, trail: TrailConfig):
        self.settings = trail.model_dump(mode="json")
        self.capture_layers = trail.resolved_capture_layers() if trail.wants_capture() else []
        self._trail: TrailConfig | None = trail

    @property
    def trail(self) -> TrailConfig:
        if self._trail is None:  # after unpickling: rebuilt once per process
            self._trail = TrailConfig.model_validate(self.settings)
        return self._trail

    def __call__(self, hf_config: Any) -> Any:
        if self.capture_layers:
            setattr(hf_config, AUX_LAYERS_KEY, list(self.capture_layers))
        return hf_config

    def __getstate__(self) -> dict[str, Any]:
        # the probe weights a resolved TrailConfig caches stay in this process
        return {**self.__dict__, "_trail": None}

    def __repr__(self) -> str:
        return f"TrailOverrides(policy={self.settings['policy']!r}, layers={self.capture_layers})"


def trail_config_of(vllm_config: Any) -> TrailConfig | None:
    """The TRAIL settings of an engine, or None for an engine started without TRAIL."""
    overrides = getattr(vllm_config.model_config, "hf_overrides", None)
    return overrides.trail if isinstance(overrides, TrailOverrides) else None


def require_trail_config(vllm_config: Any) -> TrailConfig:
    """The TRAIL scheduler's settings; a clear error for an engine given the class alone."""
    cfg = trail_config_of(vllm_config)
    if cfg is None:
        raise ValueError(
            "the TRAIL scheduler needs its settings as hf_overrides=TrailOverrides(TrailConfig(...)) "
            "(EngineConfig(trail=...).engine_kwargs() builds both)"
        )
    return cfg
