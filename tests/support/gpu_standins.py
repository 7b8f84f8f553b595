"""CPU stand-ins for what vLLM does only on a GPU, each built from vLLM's own classes.

A CPU build of vLLM never runs async scheduling and never replays CUDA graphs, so the code TRAIL
needs there would otherwise go untested. Each stand-in is installed in the engine's process
before the engine starts (run_scenario's "preload", or before `trail doctor` runs in-process)
and makes the CPU path behave as the GPU path does at the point TRAIL depends on:

- `async_outputs`: every step's ModelRunnerOutput is returned wrapped in vLLM's
  AsyncGPUModelRunnerOutput, as GPUModelRunner.sample_tokens does under async scheduling; the
  executor then resolves it with vLLM's own get_output(). Only the CUDA stream/event objects
  its constructor touches are placeholders (vLLM's CPU runner does the same in
  `_torch_cuda_wrapper`).
- `graph_replay`: the model runs through a wrapper (a vLLM CUDAGraphWrapper subclass, so
  vLLM unwraps it as it unwraps a real one) that computes the outputs but undoes every Python
  attribute the forward wrote — what a CUDA graph replay does, since it never runs the Python.
- `disconnect_probe`: TRAIL's sample_tokens hook is never installed (the failure
  `trail doctor` must catch).

Each appends one line per use to $TRAIL_STANDIN_LOG, so a test can prove it was exercised.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

import torch
from vllm.compilation.cuda_graph import CUDAGraphWrapper


def _log(what: str) -> None:
    path = os.environ.get("TRAIL_STANDIN_LOG")
    if path:
        with open(path, "a") as f:
            f.write(what + "\n")


class _Placeholder:
    """A CUDA stream/event with nothing behind it (the copy it guards is synchronous on CPU)."""

    device = torch.device("cpu")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def record(self, *args: Any) -> None:
        pass

    def synchronize(self) -> None:
        pass

    def wait_stream(self, *args: Any) -> None:
        pass


@contextlib.contextmanager
def _cuda_placeholders() -> Iterator[None]:
    saved = (torch.cuda.Event, torch.cuda.current_stream, torch.cuda.stream)
    torch.cuda.Event = _Placeholder  # type: ignore[assignment,misc]
    torch.cuda.current_stream = lambda *a, **k: _Placeholder()  # type: ignore[assignment]
    torch.cuda.stream = lambda *a, **k: contextlib.nullcontext()  # type: ignore[assignment]
    try:
        yield
    finally:
        torch.cuda.Event, torch.cuda.current_stream, torch.cuda.stream = saved  # type: ignore[misc]


def async_outputs() -> None:
    from vllm.v1.outputs import ModelRunnerOutput
    from vllm.v1.worker.gpu_model_runner import AsyncGPUModelRunnerOutput, GPUModelRunner

    original = GPUModelRunner.sample_tokens

    def sample_tokens(self, grammar_output):  # noqa: ANN001, ANN202
        out = original(self, grammar_output)
        if not isinstance(out, ModelRunnerOutput) or not out.req_ids:
            return out
        sampled = out.sampled_token_ids
        tokens = torch.tensor([[t[0] if t else 0] for t in sampled], dtype=torch.long)
        with _cuda_placeholders():
            wrapped = AsyncGPUModelRunnerOutput(
                model_runner_output=out,
                sampled_token_ids=tokens,
                logprobs_tensors=None,  # the tests using this ask for no logprobs
                invalid_req_indices=[i for i, t in enumerate(sampled) if not t],
                async_output_copy_stream=_Placeholder(),
                vocab_size=self.model_config.get_vocab_size(),
            )
        _log("async_output")
        return wrapped

    GPUModelRunner.sample_tokens = sample_tokens


class PythonFreeReplay(CUDAGraphWrapper):
    """Outputs computed, Python side effects of forward undone, as in a CUDA graph replay."""

    def __init__(self, runnable: Any) -> None:  # no graph pool or capture state on CPU
        self.runnable = runnable

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        modules = list(self.runnable.modules())
        saved = [dict(m.__dict__) for m in modules]
        out = self.runnable(*args, **kwargs)
        for m, state in zip(modules, saved, strict=True):
            m.__dict__.clear()
            m.__dict__.update(state)
        _log("replay")
        return out


def graph_replay() -> None:
    from vllm.v1.worker.cpu_model_runner import CPUModelRunner

    original = CPUModelRunner.load_model

    def load_model(self, *args: Any, **kwargs: Any) -> None:
        original(self, *args, **kwargs)  # TRAIL's set-up runs in here, on the bare model
        self.model = PythonFreeReplay(self.model)

    CPUModelRunner.load_model = load_model
    CPUModelRunner.get_model = unwrapping_get_model


def unwrapping_get_model(runner: Any) -> Any:
    """vLLM's CPU runner returns self.model as is; unwrap as GPUModelRunner.get_model does."""
    model = runner.model
    return model.unwrap() if isinstance(model, CUDAGraphWrapper) else model


def disconnect_probe() -> None:
    from trail.engine import capture

    capture.install_runner_hooks = lambda: None  # the plugin then hooks nothing
    _log("disconnected")


STANDINS = {"async_outputs": async_outputs, "graph_replay": graph_replay}


def install(names: list[str]) -> None:
    for name in names:
        {**STANDINS, "disconnect_probe": disconnect_probe}[name]()
