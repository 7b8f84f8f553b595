"""Worker side: map captured rows to requests, run the probe, ship K probabilities each.

Rows of a step are in batch order (ModelRunnerOutput.req_ids), request i owning the next
num_scheduled_tokens[i] rows. The probed row is always the request's last row of the step, the
one the sampler used: at the end of prefill that is the last prompt token, which vLLM computes
even on a full prefix-cache hit, so the initial prediction is the same with or without caching.
Only small vectors leave the worker, as `output.trail_probe`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from trail.engine.sink import CaptureSink, capture_request
from trail.engine.vllm_hooks import (
    attach_probe_output,
    computed_before_step,
    install_sample_tokens_hook,
    raw_model,
    runner_request,
)
from trail.metrics.recorders import capture_rows


@dataclass
class ProbeEmission:
    """One request's probe result for one step: the prediction of tokens left to generate
    after `generated` output tokens (the label the probe was trained on)."""

    generated: int
    probs: list[float] | None
    vector: list[float] | None = None
    version: str | None = None  # the probe that produced probs (hot reload changes it)


@dataclass
class CaptureState:
    """Per-worker state across steps: probe counters and the capture sink, if any."""

    probe_calls: int = 0
    probe_seconds: float = 0.0
    sink: CaptureSink | None = None


def install_runner_hook() -> None:
    """Attach probe outputs to every step's ModelRunnerOutput (once per process)."""
    install_sample_tokens_hook(_after_sample_tokens)


def _after_sample_tokens(runner: Any, scheduler_output: Any, output: Any) -> None:
    model = raw_model(runner)
    capture = getattr(model, "trail_capture", None)
    if capture is None:
        return
    st = _state(runner)
    before = st.probe_seconds
    emissions = collect_emissions(runner, model, scheduler_output, output.req_ids)
    attach_probe_output(output, emissions, st.probe_seconds - before)
    model.trail_capture = None


def request_spans(req_ids: list[str], num_scheduled: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Row range [start, end) of each request in the step's flattened token batch."""
    spans: dict[str, tuple[int, int]] = {}
    start = 0
    for rid in req_ids:
        n = num_scheduled.get(rid, 0)
        spans[rid] = (start, start + n)
        start += n
    return spans


def collect_emissions(runner: Any, model: Any, scheduler_output: Any, req_ids: list[str]) -> dict:
    """Per request: the row to probe this step, if its last row samples an output token
    (generated 0 = end of prefill, then every `predict_every` tokens)."""
    every = model.trail.refine_settings().predict_every
    st: CaptureState = _state(runner)
    capture = model.trail_capture  # [tokens, H] or [tokens, layers, H]
    probe_rows = capture if capture.dim() == 2 else capture[:, model.trail_probe_index]
    spans = request_spans(req_ids, scheduler_output.num_scheduled_tokens)
    before = computed_before_step(scheduler_output)
    picked: list[tuple[str, int, torch.Tensor]] = []
    sunk: list[tuple[str, int, torch.Tensor]] = []
    for rid, (r0, r1) in spans.items():
        request = runner_request(runner, rid)
        if r1 <= r0 or request is None:
            continue
        generated = before.get(rid, 0) + (r1 - r0) - request.num_prompt_tokens
        if generated < 0:  # a prefill chunk before the last prompt token
            continue
        if generated % every == 0 and (model.trail_probe is not None or model.trail.ship_vectors):
            picked.append((rid, generated, probe_rows[r1 - 1].float()))
        asked = capture_request(request) if model.trail.capture_dir else None
        if asked is not None and generated % asked[1] == 0:
            sunk.append((asked[0], generated, capture[r1 - 1].reshape(-1, capture.shape[-1])))
    if sunk:
        _sink(st, model, capture.shape[-1]).write(sunk)
    return _run_probe(model, st, picked, ship_vectors=model.trail.ship_vectors)


def _sink(st: CaptureState, model: Any, hidden: int) -> CaptureSink:
    if st.sink is None:
        cfg = model.trail
        quota = cfg.capture_quota_mb * 2**20 if cfg.capture_quota_mb else None
        st.sink = CaptureSink(
            cfg.capture_dir,
            model.trail_layers,
            hidden,
            quota_bytes=quota,
            queue_rows=cfg.capture_queue_rows,
            on_count=lambda outcome, n: capture_rows(cfg.replica, outcome, n),
        )
    return st.sink


def _run_probe(model: Any, st: CaptureState, picked: list, ship_vectors: bool) -> dict:
    if not picked:
        return {}
    vectors = torch.stack([v for _, _, v in picked])
    probs: np.ndarray | None = None
    bundle = getattr(model, "trail_probe", None)  # a ProbeBundle
    if bundle is not None:
        if next(bundle.probe.parameters()).device != vectors.device:  # run where the states are
            bundle.probe.to(vectors.device)
        t0 = time.perf_counter()
        steps = torch.tensor([g for _, g, _ in picked])
        probs = bundle.probs(vectors, steps).float().cpu().numpy()
        st.probe_seconds += time.perf_counter() - t0
        st.probe_calls += 1
    out = {}
    for i, (rid, generated, _) in enumerate(picked):
        out[rid] = ProbeEmission(
            generated=generated,
            probs=None if probs is None else probs[i].tolist(),
            vector=vectors[i].cpu().tolist() if ship_vectors else None,
            version=None if bundle is None else bundle.version,
        )
    return out


def _state(runner: Any) -> CaptureState:
    st = getattr(runner, "_trail_capture_state", None)
    if st is None:
        st = CaptureState()
        runner._trail_capture_state = st
    return st
