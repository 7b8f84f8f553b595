"""What TRAIL cannot run is refused at start with an error that names the problem and the fix —
never a crash at the first step, never a silent fall-back to prompt-only ranking."""

from __future__ import annotations

import pytest

from trail.engine.engine_config import EngineConfig, force_v1_runner
from trail.engine.run_scenario import run_in_subprocess
from trail.engine.trail_config import TrailConfig


def _start_fails(engine: dict, tmp_path) -> str:
    """Start an engine (own process) with one request; return the error it died with."""
    spec = {"engine": engine, "phases": [[{"id": "0", "prompt_ids": [1, 2, 3], "params": {}}]]}
    with pytest.raises(RuntimeError) as err:
        run_in_subprocess(spec, tmp_path, timeout=600)
    return str(err.value)


@pytest.mark.engine
def test_a_model_class_without_aux_hidden_states_is_refused_at_load(tiny_arch_paths, tmp_path):
    trail = {"policy": "fcfs", "layer": 1, "capture": True}
    engine = {"model": str(tiny_arch_paths["gpt2"]), "in_process": True, "trail": trail}
    err = _start_fails(engine, tmp_path)
    assert "GPT2LMHeadModel" in err and "aux hidden state" in err, err[-1500:]
    assert "docs/gpu_models.md" in err


@pytest.mark.engine
def test_a_probe_of_another_hidden_size_is_refused_at_load(tiny_path, tmp_path) -> None:
    # the packaged probe reads SmolLM2's 576-wide states; the tiny Llama has 128
    engine = {"model": str(tiny_path), "in_process": True, "trail": {"policy": "trail"}}
    err = _start_fails(engine, tmp_path)
    assert "hidden size 576" in err and "has 128" in err, err[-1500:]


@pytest.mark.engine
def test_a_layer_the_model_lacks_is_refused_at_load(tiny_path, tmp_path) -> None:
    trail = {"policy": "fcfs", "layer": 7, "capture": True}
    err = _start_fails({"model": str(tiny_path), "in_process": True, "trail": trail}, tmp_path)
    assert "capture layers [7] do not exist" in err, err[-1500:]


def test_pipeline_parallel_is_refused_before_start() -> None:
    cfg = EngineConfig(trail=TrailConfig(policy="fcfs"), extra={"pipeline_parallel_size": 2})
    with pytest.raises(ValueError, match="pipeline_parallel_size=2"):
        cfg.engine_kwargs()
    # stock vLLM (no TRAIL) is not ours to refuse
    EngineConfig(extra={"pipeline_parallel_size": 2}).engine_kwargs()


def test_the_v1_runner_is_forced_and_an_explicit_v2_refused(monkeypatch) -> None:
    monkeypatch.delenv("VLLM_USE_V2_MODEL_RUNNER", raising=False)
    force_v1_runner()
    import os

    assert os.environ["VLLM_USE_V2_MODEL_RUNNER"] == "0"
    monkeypatch.setenv("VLLM_USE_V2_MODEL_RUNNER", "1")
    with pytest.raises(RuntimeError, match="Model Runner V2"):
        EngineConfig(trail=TrailConfig(policy="fcfs")).apply_env()
