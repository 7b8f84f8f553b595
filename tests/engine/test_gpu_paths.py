"""The engine paths only a GPU runs, exercised on CPU through stand-ins built from vLLM's own
classes (tests/support/gpu_standins.py; mocks only where CPU vLLM cannot run the real path):
vLLM's AsyncGPUModelRunnerOutput around every step (async scheduling, the GPU default), and a
model whose Python forward never runs on the runner's objects (full CUDA graph replay). In both,
the probe's inputs must still be the rows transformers computes and its results must still
reach the scheduler and refine the predictions."""

from __future__ import annotations

import pytest
import torch

from tests.engine.test_capture import N_OUT, PROMPTS, check_capture
from tests.support import gpu_standins

pytestmark = pytest.mark.engine


def _standin_uses(log) -> list[str]:
    return log.read_text().split() if log.exists() else []


@pytest.mark.parametrize("standin", ["async_outputs", "graph_replay"])
def test_probe_results_reach_the_scheduler_under_gpu_paths(
    standin, tiny_path, known_probe, run_scenario, tmp_path, monkeypatch
):
    log = tmp_path / "standin.log"
    monkeypatch.setenv("TRAIL_STANDIN_LOG", str(log))
    preload = [f"tests.support.gpu_standins:{standin}"]
    events = check_capture(tiny_path, 1, run_scenario, tmp_path, probe=known_probe, preload=preload)
    uses = _standin_uses(log)
    # every step (prefill + N_OUT - 1 decodes) went through the stand-in, not around it
    assert len(uses) >= N_OUT, uses
    assert len(events) == len(PROMPTS) * N_OUT


def test_replay_standin_drops_python_side_effects_of_forward() -> None:
    """The stand-in is a fair model of graph replay: outputs are computed from the inputs, but
    an attribute written in forward (how capture used to work) does not survive."""

    class SideEffect(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.kept = None

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            self.kept = x * 2
            return x + 1

    class Runner:
        model = gpu_standins.PythonFreeReplay(SideEffect())

    out = Runner.model(torch.ones(2))
    assert torch.equal(out, torch.full((2,), 2.0))
    assert Runner.model.unwrap().kept is None
    assert gpu_standins.unwrapping_get_model(Runner()) is Runner.model.unwrap()
