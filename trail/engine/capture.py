"""Worker side: map captured rows to requests, run the probe, ship K probabilities each.

Rows of a step are in batch order (ModelRunnerOutput.req_ids), request i owning the next
num_scheduled_tokens[i] rows. Prefill: mean of the prompt rows (accumulated across chunks);
decode: the last row. Only small vectors leave the worker, as `output.trail_probe`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

_ORIGINAL_ATTR = "_trail_original_sample_tokens"


@dataclass
class ProbeEmission:
    """One request's probe result for one step: the prediction of tokens left to generate
    after `generated` output tokens (the label the probe was trained on)."""

    generated: int
    probs: list[float] | None
    vector: list[float] | None = None


@dataclass
class PromptAccumulator:
    total: torch.Tensor | None = None
    count: int = 0

    def add(self, rows: torch.Tensor) -> None:
        s = rows.float().sum(dim=0)
        self.total = s if self.total is None else self.total + s
        self.count += rows.shape[0]

    def mean(self) -> torch.Tensor:
        assert self.total is not None and self.count > 0
        return self.total / self.count


@dataclass
class CaptureState:
    """Per-worker state across steps."""

    prompts: dict[str, PromptAccumulator] = field(default_factory=dict)
    probe_calls: int = 0
    probe_seconds: float = 0.0


def install_runner_hook() -> None:
    """Wrap GPUModelRunner.sample_tokens (the CPU runner inherits it) once per process."""
    from vllm.v1.worker.gpu_model_runner import GPUModelRunner

    if hasattr(GPUModelRunner, _ORIGINAL_ATTR):
        return
    original = GPUModelRunner.sample_tokens
    setattr(GPUModelRunner, _ORIGINAL_ATTR, original)

    def sample_tokens(self, grammar_output):  # noqa: ANN001, ANN202
        state = self.execute_model_state
        output = original(self, grammar_output)
        model = getattr(self, "model", None)
        capture = getattr(model, "trail_capture", None)
        if state is not None and capture is not None and hasattr(output, "req_ids"):
            scheduler_output = state[0]
            st = _state(self)
            before = st.probe_seconds
            output.trail_probe = collect_emissions(self, model, scheduler_output, output.req_ids)
            output.trail_probe_seconds = st.probe_seconds - before
            model.trail_capture = None
        return output

    GPUModelRunner.sample_tokens = sample_tokens


def request_spans(req_ids: list[str], num_scheduled: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Row range [start, end) of each request in the step's flattened token batch."""
    spans: dict[str, tuple[int, int]] = {}
    start = 0
    for rid in req_ids:
        n = num_scheduled.get(rid, 0)
        spans[rid] = (start, start + n)
        start += n
    return spans


def computed_before_step(scheduler_output: Any) -> dict[str, int]:
    """Tokens each scheduled request had computed before this step."""
    out = {r.req_id: r.num_computed_tokens for r in scheduler_output.scheduled_new_reqs}
    cached = scheduler_output.scheduled_cached_reqs
    out.update(zip(cached.req_ids, cached.num_computed_tokens, strict=False))
    return out


def collect_emissions(runner: Any, model: Any, scheduler_output: Any, req_ids: list[str]) -> dict:
    """Per request: the vector to probe this step (prefill mean or last decode row), if any."""
    cfg = model.trail
    st: CaptureState = _state(runner)
    for rid in scheduler_output.finished_req_ids:
        st.prompts.pop(rid, None)
    capture = model.trail_capture
    spans = request_spans(req_ids, scheduler_output.num_scheduled_tokens)
    before = computed_before_step(scheduler_output)
    picked: list[tuple[str, int, torch.Tensor]] = []
    for rid, (r0, r1) in spans.items():
        if r1 <= r0 or rid not in runner.requests:
            continue
        n_prompt = runner.requests[rid].num_prompt_tokens
        p0 = before.get(rid, 0)
        last_pos = p0 + (r1 - r0) - 1
        if p0 == 0:
            st.prompts[rid] = PromptAccumulator()
        if p0 < n_prompt:  # some prompt rows in this step
            n_rows = min(r1 - r0, n_prompt - p0)
            st.prompts.setdefault(rid, PromptAccumulator()).add(capture[r0 : r0 + n_rows])
        generated = last_pos - n_prompt + 1
        if generated == 0:
            picked.append((rid, 0, st.prompts[rid].mean()))
        elif generated > 0 and generated % cfg.predict_every == 0:
            picked.append((rid, generated, capture[r1 - 1].float()))
    return _run_probe(model, st, picked, ship_vectors=cfg.ship_vectors)


def _run_probe(model: Any, st: CaptureState, picked: list, ship_vectors: bool) -> dict:
    if not picked:
        return {}
    vectors = torch.stack([v for _, _, v in picked])
    probs: np.ndarray | None = None
    probe = getattr(model, "trail_probe", None)
    if probe is not None:
        t0 = time.perf_counter()
        probs = probe.probs(vectors).float().numpy()
        st.probe_seconds += time.perf_counter() - t0
        st.probe_calls += 1
    out = {}
    for i, (rid, generated, _) in enumerate(picked):
        out[rid] = ProbeEmission(
            generated=generated,
            probs=None if probs is None else probs[i].tolist(),
            vector=vectors[i].tolist() if ship_vectors else None,
        )
    return out


def _state(runner: Any) -> CaptureState:
    st = getattr(runner, "_trail_capture_state", None)
    if st is None:
        st = CaptureState()
        runner._trail_capture_state = st
    return st
