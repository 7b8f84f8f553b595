"""vLLM general plugin (entry point `vllm.general_plugins: trail`).

Runs in every vLLM process; must be idempotent. It hooks the V1 model runner so that an engine
started with TRAIL's hf_overrides (trail/engine/overrides.py) turns on the model's aux hidden
state outputs at load and attaches probe outputs to every step's ModelRunnerOutput, and it adds
the worker methods that hot-swap the probe and flush the capture sink. The served model's own vLLM class is used unchanged;
engines started without TRAIL are untouched. It also lets plain `vllm serve` start TRAIL from
`TRAIL_CONFIG` or `--hf-overrides '{"trail": ...}'` (trail/engine/engine_args_hook.py).
"""

from __future__ import annotations


def register() -> None:
    from trail.engine.vllm_hooks import check_vllm_version

    check_vllm_version()
    from trail.engine.capture import FLUSH_CAPTURE, flush_capture, install_runner_hooks

    install_runner_hooks()
    from trail.engine.reload import SWAP_PROBE, swap_probe
    from trail.engine.vllm_hooks import install_worker_method

    install_worker_method(SWAP_PROBE, swap_probe)
    install_worker_method(FLUSH_CAPTURE, flush_capture)
    from trail.engine.engine_args_hook import install_engine_args_hook

    install_engine_args_hook()
