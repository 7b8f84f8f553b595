"""Worker side: layer-k rows from vLLM's aux hidden states, the probe, results to the scheduler.

Capture goes through the runner's EAGLE-3 aux-hidden-state outputs: the model returns the chosen
layers' residual streams beside the final hidden state, as graph *outputs*, so they exist on
every step vLLM runs — eager, torch.compile'd, and replayed full CUDA graphs alike (a Python
side effect in forward would be skipped by a replay). The runner keeps them in its
`execute_model_state`, which `sample_tokens` reads before clearing it.

Rows of a step are in batch order (ModelRunnerOutput.req_ids), request i owning the next
num_scheduled_tokens[i] rows. The probed row is always the request's last row of the step, the
one the sampler used: at the end of prefill that is the last prompt token, which vLLM computes
even on a full prefix-cache hit, so the initial prediction is the same with or without caching.

No blocking device sync on the step: the rows are gathered by one index, the probe runs where
they are, and results are copied to the host without waiting (`PendingProbe`); they are
resolved where vLLM resolves its own output — at once for a synchronous step, in
`AsyncGPUModelRunnerOutput.get_output` under async scheduling. Only the rank whose output vLLM
returns runs the probe and the sink.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import torch

from trail.engine import vllm_hooks as hooks
from trail.engine.overrides import trail_config_of
from trail.engine.sink import CaptureSink, capture_request
from trail.engine.trail_config import TrailConfig
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
class WorkerCapture:
    """Per-worker TRAIL state: what is captured, the probe, counters and the sink."""

    cfg: TrailConfig
    layers: list[int]  # sorted; aux index = layer + 1
    probe: Any  # ProbeBundle | None (hot reload swaps it)
    active: bool  # this rank's output is the one vLLM returns
    probe_calls: int = 0
    probe_seconds: float = 0.0
    sink: CaptureSink | None = None

    @property
    def probe_index(self) -> int:
        return self.layers.index(self.cfg.resolved_layer())


@dataclass
class Picked:
    """Which rows of a step to probe or sink, decided on the host before any device work."""

    probe: list[tuple[str, int, int]] = field(default_factory=list)  # (req, generated, row)
    sink: list[tuple[str, int, int]] = field(default_factory=list)  # (capture id, generated, row)


@dataclass
class PendingProbe:
    """A step's probe results on their way to the host; `resolve` waits for the copy."""

    capture: WorkerCapture
    picked: Picked
    probs: torch.Tensor | None
    vectors: torch.Tensor | None
    sink_rows: torch.Tensor | None
    ready: Any  # a device event, or None where the copy was synchronous
    seconds: float

    def resolve(self) -> tuple[dict[str, ProbeEmission], float]:
        if self.ready is not None:
            self.ready.synchronize()
        wc, picked = self.capture, self.picked
        if self.sink_rows is not None:
            rows = [(cid, g, self.sink_rows[i]) for i, (cid, g, _) in enumerate(picked.sink)]
            _sink(wc, self.sink_rows.shape[-1]).write(rows)
        version = None if wc.probe is None else wc.probe.version
        probs = None if self.probs is None else self.probs.tolist()
        vectors = None if self.vectors is None else self.vectors.tolist()
        emissions = {
            rid: ProbeEmission(
                generated=g,
                probs=None if probs is None else probs[i],
                vector=None if vectors is None else vectors[i],
                version=version,
            )
            for i, (rid, g, _) in enumerate(picked.probe)
        }
        return emissions, self.seconds


def install_runner_hooks() -> None:
    """Once per process: set capture up at model load, collect it after every step."""
    hooks.install_load_hook(setup_capture)
    hooks.install_sample_tokens_hook(after_sample_tokens)
    hooks.install_async_output_hook(resolve_pending)


def setup_capture(runner: Any) -> None:
    """At model load, before compile and graph capture: turn the runner's aux outputs on for
    the TRAIL layers, or refuse the model/probe with a clear error."""
    cfg = trail_config_of(runner.vllm_config)
    if cfg is None or not cfg.wants_capture():
        return
    model = runner.get_model()
    layers = cfg.resolved_capture_layers()
    check_capturable(model, runner, layers, cfg.probe_bundle)
    hooks.enable_aux_outputs(runner, model, tuple(k + 1 for k in layers))
    runner._trail = WorkerCapture(cfg, layers, cfg.probe_bundle, hooks.is_output_rank())


def check_capturable(model: Any, runner: Any, layers: list[int], probe: Any) -> None:
    """Refuse at start what would otherwise fail (or silently capture nothing) at the first
    step: a model class without aux hidden states, EAGLE-3 already using them, a layer the
    model does not have, a probe trained on another hidden size or (its card's config
    fingerprint) another model."""
    name = type(model).__name__
    if not hooks.supports_aux_outputs(model):
        raise RuntimeError(
            f"TRAIL cannot capture hidden states from {name}: its vLLM class does not "
            "implement aux hidden state outputs (SupportsEagle3). Supported architectures: "
            "docs/gpu_models.md (`python -m trail.engine.architectures`)."
        )
    if runner.use_aux_hidden_state_outputs:
        raise RuntimeError(
            "TRAIL capture and EAGLE-3 style speculative decoding both need the model's aux "
            "hidden states; turn one of them off"
        )
    text = runner.model_config.hf_text_config
    n_layers, hidden = text.num_hidden_layers, text.hidden_size
    if probe is not None and probe.model_hidden != hidden:
        raise ValueError(
            f"the TRAIL probe reads hidden size {probe.model_hidden} but {name} has "
            f"{hidden}: this probe was trained on another model; train one for this model "
            "(`trail profile`, `trail train probe`) and set trail.probe_path"
        )
    expected = getattr(probe, "model_fingerprint", None)  # None: no probe, or an older one
    if expected is not None:
        from pathlib import Path

        from trail.predict.probe import model_fingerprint

        served = model_fingerprint(runner.model_config.hf_config)
        if served != expected:
            raise ValueError(
                f"the TRAIL probe was trained for {probe.model_name} (model fingerprint "
                f"{expected}) but this engine serves {Path(runner.model_config.model).name} "
                f"({name}, fingerprint {served}): its hidden states mean other things to the "
                "probe, even at the same hidden size; train a probe for this model "
                "(`trail profile`, `trail train probe`) and set trail.probe_path"
            )
    bad = [k for k in layers if not 0 <= k < n_layers - 1]
    if bad:
        raise ValueError(
            f"TRAIL capture layers {bad} do not exist in {name} ({n_layers} decoder layers; "
            f"vLLM returns the output of layers 0..{n_layers - 2})"
        )


def after_sample_tokens(runner: Any, state: Any, output: Any) -> None:
    """Start this step's probe; attach it to vLLM's output (resolved now, or with the async
    output). Steps without aux states (PP intermediate, pooling, no capture) pass through."""
    wc: WorkerCapture | None = getattr(runner, "_trail", None)
    inner = hooks.inner_output(output)
    aux = hooks.step_aux_states(state)
    if wc is None or not wc.active or inner is None or aux is None:
        return
    pending = start_probe(wc, runner, hooks.step_scheduler_output(state), inner.req_ids, aux)
    if pending is None:
        return
    if inner is output:  # synchronous: vLLM itself has just waited for the sampled tokens
        hooks.attach_probe_output(inner, *pending.resolve())
    else:
        hooks.defer_to_async_output(output, pending)


def resolve_pending(pending: PendingProbe, inner: Any) -> None:
    hooks.attach_probe_output(inner, *pending.resolve())


def request_spans(req_ids: list[str], num_scheduled: dict[str, int]) -> dict[str, tuple[int, int]]:
    """Row range [start, end) of each request in the step's flattened token batch."""
    spans: dict[str, tuple[int, int]] = {}
    start = 0
    for rid in req_ids:
        n = num_scheduled.get(rid, 0)
        spans[rid] = (start, start + n)
        start += n
    return spans


def pick_rows(wc: WorkerCapture, runner: Any, scheduler_output: Any, req_ids: list[str]) -> Picked:
    """Per request: the row to probe this step, if its last row samples an output token
    (generated 0 = end of prefill, then every `predict_every` tokens), and the row to sink."""
    every = wc.cfg.refine_settings().predict_every
    wants_probe = wc.probe is not None or wc.cfg.ship_vectors
    spans = request_spans(req_ids, scheduler_output.num_scheduled_tokens)
    before = hooks.computed_before_step(scheduler_output)
    picked = Picked()
    for rid, (r0, r1) in spans.items():
        request = hooks.runner_request(runner, rid)
        if r1 <= r0 or request is None:
            continue
        generated = before.get(rid, 0) + (r1 - r0) - request.num_prompt_tokens
        if generated < 0:  # a prefill chunk before the last prompt token
            continue
        if wants_probe and generated % every == 0:
            picked.probe.append((rid, generated, r1 - 1))
        asked = capture_request(request) if wc.cfg.capture_dir else None
        if asked is not None and generated % asked[1] == 0:
            picked.sink.append((asked[0], generated, r1 - 1))
    return picked


def start_probe(
    wc: WorkerCapture, runner: Any, scheduler_output: Any, req_ids: list[str], aux: list
) -> PendingProbe | None:
    """Gather the picked rows, run the probe where they are, start the copies to the host."""
    picked = pick_rows(wc, runner, scheduler_output, req_ids)
    if not picked.probe and not picked.sink:
        return None
    device = aux[0].device
    t0 = time.perf_counter()
    probs = vectors = sink_rows = None
    if picked.probe:
        rows = aux[wc.probe_index][_index([r for _, _, r in picked.probe], device)].float()
        if wc.probe is not None:
            probs = _run_probe(wc, rows, [g for _, g, _ in picked.probe])
        if wc.cfg.ship_vectors:
            vectors = rows
    if picked.sink:
        idx = _index([r for _, _, r in picked.sink], device)
        sink_rows = torch.stack([a[idx] for a in aux], dim=1).to(torch.float16)
    copies = [hooks.to_host(t) for t in (probs, vectors, sink_rows)]
    return PendingProbe(
        wc, picked, *copies, ready=hooks.record_ready(device), seconds=time.perf_counter() - t0
    )


def _index(rows: list[int], device: torch.device) -> torch.Tensor:
    """Host ints onto the device without a sync (pinned, as vLLM's own copy checker wants)."""
    t = torch.tensor(rows, dtype=torch.long)
    if device.type == "cuda":
        t = t.pin_memory()
    return t.to(device, non_blocking=True)


def _run_probe(wc: WorkerCapture, rows: torch.Tensor, generated: list[int]) -> torch.Tensor:
    bundle = wc.probe
    if next(bundle.probe.parameters()).device != rows.device:  # run where the states are
        bundle.probe.to(rows.device)
    wc.probe_calls += 1
    t0 = time.perf_counter()
    probs = bundle.probs(rows, _index(generated, rows.device)).float()
    wc.probe_seconds += time.perf_counter() - t0
    return probs


def _sink(wc: WorkerCapture, hidden: int) -> CaptureSink:
    if wc.sink is None:
        cfg = wc.cfg
        quota = cfg.capture_quota_mb * 2**20 if cfg.capture_quota_mb else None
        wc.sink = CaptureSink(
            cfg.capture_dir,
            wc.layers,
            hidden,
            quota_bytes=quota,
            queue_rows=cfg.capture_queue_rows,
            on_count=lambda outcome, n: capture_rows(cfg.replica, outcome, n),
        )
    return wc.sink


FLUSH_CAPTURE = "trail_flush_capture"  # the worker method the plugin installs


def flush_capture(worker: Any) -> dict[str, int] | None:
    """collective_rpc target: this worker's sink counters once its queue is on disk (None on
    a rank without a sink)."""
    wc: WorkerCapture | None = getattr(worker.model_runner, "_trail", None)
    return None if wc is None or wc.sink is None else wc.sink.flush()
