"""vLLM general plugin (entry point `vllm.general_plugins: trail`).

Runs in every vLLM process; must be idempotent. It registers the TRAIL model class (selected per
engine with hf_overrides={"architectures": ["TrailLlamaForCausalLM"], "trail": {...}}) and wraps
the model runner's `sample_tokens` so the worker attaches probe outputs to ModelRunnerOutput.
Engines that do not select the TRAIL architecture are untouched.
"""

from __future__ import annotations

TRAIL_ARCH = "TrailLlamaForCausalLM"


def register() -> None:
    from vllm import ModelRegistry

    from trail.engine.vllm_hooks import check_vllm_version

    check_vllm_version()

    if TRAIL_ARCH not in ModelRegistry.get_supported_archs():
        ModelRegistry.register_model(TRAIL_ARCH, "trail.engine.model:TrailLlamaForCausalLM")
    from trail.engine.capture import install_runner_hook

    install_runner_hook()
    from trail.engine.reload import SWAP_PROBE, swap_probe
    from trail.engine.vllm_hooks import install_worker_method

    install_worker_method(SWAP_PROBE, swap_probe)
