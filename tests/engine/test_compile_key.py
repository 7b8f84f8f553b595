"""Two replicas of one config share one torch.compile cache entry: runtime-only TRAIL settings
(replica name, event log, Redis URL) stay out of vLLM's compile-cache key, while what changes the
compiled graph (the captured layers) stays in it."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.engine


def _key(model, **trail) -> str:
    from vllm.engine.arg_utils import EngineArgs

    from trail.engine.engine_config import EngineConfig
    from trail.engine.trail_config import TrailConfig

    cfg = EngineConfig(model=str(model), trail=TrailConfig(policy="fcfs", capture=True, **trail))
    cfg.apply_env()
    return EngineArgs(**cfg.engine_kwargs()).create_engine_config().compute_hash()


def test_runtime_settings_leave_the_compile_key_alone(tiny_path, tmp_path) -> None:
    a = _key(tiny_path, layer=1, replica="a", dump_path=str(tmp_path / "a.jsonl"))
    b = _key(
        tiny_path,
        layer=1,
        replica="b",
        dump_path=str(tmp_path / "b.jsonl"),
        redis_url="redis://127.0.0.1:1/0",
    )
    assert a == b
    assert _key(tiny_path, layer=2) != a  # another captured layer is another graph
