"""`trail doctor`: prove on your own node, with your own model and settings, that TRAIL runs.

TRAIL can silently degrade to prompt-only ranking where the probe's inputs or outputs go missing
(graph replay, async outputs, another runner, another model class). The doctor starts the engine
exactly as a Serve replica does, sends a few requests and checks what reached the scheduler:
probe outputs on prefill *and* decode steps, refined predictions, captured rows equal to a
transformers forward of the same tokens, the scheduler class for the async mode, probe time per
step, and (on CUDA with async scheduling) vLLM's own blocking-sync detector. Exit code 1 on any
FAIL. Without a trained probe for the model it runs the plumbing with a random probe of the right
size and says so.
"""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trail.engine.engine_config import ASYNC_SCHEDULER_CLS, SCHEDULER_CLS, EngineConfig
from trail.engine.trail_config import TrailConfig

PROMPTS = [
    "Why is the sky blue?",
    "Write a haiku about the sea.",
    "List three uses of a paperclip and explain each one briefly.",
]


@dataclass
class Check:
    name: str
    status: str  # PASS | FAIL | SKIP | NOTE
    detail: str


@dataclass
class Run:
    """What one doctor run observed: the engine's settings and the scheduler's event log."""

    engine: dict[str, Any]
    prompt_ids: list[list[int]]
    output_ids: list[list[int]]
    request_ids: list[str]
    events: list[dict]
    plumbing_probe: bool
    layer: int


def model_shape(model: str) -> tuple[int, int]:
    """(decoder layers, hidden size) from the model's config."""
    from transformers import AutoConfig

    text = AutoConfig.from_pretrained(model).get_text_config()
    return text.num_hidden_layers, text.hidden_size


def plumbing_probe(folder: Path, hidden: int, layer: int) -> Path:
    """A random probe of the model's hidden size: it predicts nothing, but exercises capture,
    probe, refinement and the scheduler exactly as a trained one would."""
    import torch

    from trail.predict.bins import LengthBins
    from trail.predict.probe import ProbeBundle, ProbeMLP

    torch.manual_seed(0)
    bins = LengthBins.uniform(10, 512)
    card = {"note": "trail doctor plumbing probe: random weights, predicts nothing"}
    ProbeBundle(probe=ProbeMLP(hidden, bins.k), layer=layer, bins=bins, card=card).save(folder)
    return folder


def prepare(cfg: EngineConfig, workdir: Path) -> tuple[EngineConfig, bool, int]:
    """The config to check: the user's, with the event log and raw vectors turned on, and a
    plumbing probe where no trained probe fits the model."""
    trail = cfg.trail or TrailConfig(policy="trail")
    n_layers, hidden = model_shape(cfg.model)
    probe = None
    try:
        probe = trail.probe_bundle
    except ValueError:
        probe = None
    plumbing = probe is None or probe.model_hidden != hidden or probe.layer >= n_layers - 1
    updates: dict[str, Any] = {"ship_vectors": True, "dump_path": str(workdir / "events.jsonl")}
    if plumbing:
        layer = trail.layer if trail.layer is not None else max(n_layers // 3, 0)
        updates |= {"probe_path": str(plumbing_probe(workdir / "probe", hidden, layer))}
        updates |= {"policy": trail.policy if trail.needs_probe else "trail", "layer": layer}
    trail = TrailConfig.model_validate({**trail.model_dump(), **updates})
    return cfg.model_copy(update={"trail": trail}), plumbing, trail.resolved_layer()


async def _generate(engine: Any, prompt_ids: list[list[int]], max_tokens: int) -> tuple:
    from vllm import SamplingParams, TokensPrompt

    params = SamplingParams(temperature=0.0, max_tokens=max_tokens, ignore_eos=True)

    async def one(ids: list[int]) -> tuple[str, list[int]]:
        rid, final = uuid.uuid4().hex, None
        async for out in engine.generate(TokensPrompt(prompt_token_ids=ids), params, rid):
            final = out
        return rid, list(final.outputs[0].token_ids)

    return await asyncio.gather(*(one(ids) for ids in prompt_ids))


def run_engine(cfg: EngineConfig, plumbing: bool, layer: int, max_tokens: int) -> Run:
    from transformers import AutoTokenizer

    from trail.engine.engine_config import start_async_engine
    from trail.models.chat import chat_prompt_ids

    tok = AutoTokenizer.from_pretrained(cfg.model)
    prompt_ids = [chat_prompt_ids(tok, p) for p in PROMPTS]
    engine = start_async_engine(cfg)
    try:
        vc = engine.vllm_config
        facts = {
            "scheduler_cls": str(vc.scheduler_config.scheduler_cls),
            "async_scheduling": bool(vc.scheduler_config.async_scheduling),
            "cudagraph_mode": str(vc.compilation_config.cudagraph_mode),
            "compile_mode": str(vc.compilation_config.mode),
            "tensor_parallel_size": vc.parallel_config.tensor_parallel_size,
            "device": str(vc.device_config.device),
        }
        done = asyncio.run(_generate(engine, prompt_ids, max_tokens))
    finally:
        engine.shutdown()
        del engine  # before interpreter exit, when vLLM's __del__ would shut down twice
    dump = Path(cfg.trail.dump_path)
    events = [json.loads(line) for line in dump.read_text().splitlines()] if dump.exists() else []
    return Run(
        facts,
        prompt_ids,
        [ids for _, ids in done],
        [rid for rid, _ in done],
        events,
        plumbing,
        layer,
    )


def probe_events(run: Run) -> dict[str, list[dict]]:
    """Probe events per request, in order (the engine suffixes request ids)."""
    out: dict[str, list[dict]] = {rid: [] for rid in run.request_ids}
    for e in run.events:
        if e["event"] == "probe":
            base = next((r for r in run.request_ids if e["id"].startswith(r)), None)
            if base is not None:
                out[base].append(e)
    return out


def check_all(run: Run, every: int, tolerance: float, reference: bool, model: str) -> list[Check]:
    by_req = probe_events(run)
    checks = [_check_scheduler(run)]
    checks += _check_probe_arrival(run, by_req, every)
    checks.append(_check_refined(run, by_req))
    checks.append(_check_rows(run, by_req, model, tolerance) if reference else _skip_rows())
    checks.append(_check_probe_time(run))
    checks.append(_check_sync(run))
    return checks


def _check_scheduler(run: Run) -> Check:
    e = run.engine
    want = ASYNC_SCHEDULER_CLS if e["async_scheduling"] else SCHEDULER_CLS
    ok = e["scheduler_cls"] == want
    detail = ", ".join(f"{k}={v}" for k, v in e.items())
    return Check("scheduler class matches async mode", "PASS" if ok else "FAIL", detail)


def _check_probe_arrival(run: Run, by_req: dict[str, list[dict]], every: int) -> list[Check]:
    n_out = [len(ids) for ids in run.output_ids]
    prefill = sum(1 for evs in by_req.values() for e in evs if e["at"] == 0)
    decode = sum(1 for evs in by_req.values() for e in evs if e["at"] > 0)
    want_decode = sum(len([g for g in range(1, n) if g % every == 0]) for n in n_out)
    return [
        Check(
            "probe outputs on prefill steps",
            "PASS" if prefill == len(run.request_ids) else "FAIL",
            f"{prefill} of {len(run.request_ids)} requests",
        ),
        Check(
            "probe outputs on decode steps",
            "PASS" if decode == want_decode and decode > 0 else "FAIL",
            f"{decode} of {want_decode} expected (every {every} tokens)",
        ),
    ]


def _check_refined(run: Run, by_req: dict[str, list[dict]]) -> Check:
    evs = [e for r in by_req.values() for e in r]
    refined = [e for e in evs if e.get("expected") is not None]
    firsts = [r[0]["expected"] for r in by_req.values() if r and r[0].get("expected") is not None]
    lasts = [r[-1]["expected"] for r in by_req.values() if r and r[-1].get("expected") is not None]
    ok = bool(evs) and len(refined) == len(evs)
    detail = f"{len(refined)} of {len(evs)} probe outputs refined a prediction"
    if firsts and lasts:
        detail += (
            f"; mean predicted remaining {sum(firsts) / len(firsts):.0f} at the first, "
            f"{sum(lasts) / len(lasts):.0f} at the last probe output"
        )
    if run.plumbing_probe:
        detail += " (plumbing probe: the values mean nothing)"
    return Check("predictions refined", "PASS" if ok else "FAIL", detail)


def _check_rows(run: Run, by_req: dict[str, list[dict]], model: str, tolerance: float) -> Check:
    import numpy as np

    expected = reference_rows(model, run.layer, run.prompt_ids, run.output_ids)
    worst, n = 0.0, 0
    for i, rid in enumerate(run.request_ids):
        for e in by_req[rid]:
            if e.get("vector") is None:
                continue
            want = expected[i][e["at"]]
            got = np.asarray(e["vector"], dtype=np.float32)
            worst = max(worst, float(np.linalg.norm(got - want) / np.linalg.norm(want)))
            n += 1
    ok = n > 0 and worst <= tolerance
    detail = (
        f"{n} rows of layer {run.layer}, worst relative error {worst:.1e} (limit {tolerance:g})"
    )
    return Check("captured rows equal transformers", "PASS" if ok else "FAIL", detail)


def _skip_rows() -> Check:
    return Check("captured rows equal transformers", "SKIP", "--no-reference")


def reference_rows(model: str, layer: int, prompt_ids: list, output_ids: list) -> list[dict]:
    """transformers' hidden_states[layer + 1] at the row that sampled each output token."""
    import torch
    from transformers import AutoModelForCausalLM

    ref = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    rows = []
    for ids, out in zip(prompt_ids, output_ids, strict=True):
        with torch.no_grad():
            hs = ref(torch.tensor([ids + out[:-1]]), output_hidden_states=True).hidden_states
        h = hs[layer + 1][0]
        rows.append({g: h[len(ids) + g - 1].numpy() for g in range(len(out))})
    return rows


def _check_probe_time(run: Run) -> Check:
    probe = [e["probe_s"] for e in run.events if e["event"] == "probe_time"]
    steps = [e["step_s"] for e in run.events if e["event"] == "step"]
    if not probe or not steps:
        return Check("probe time per step", "FAIL", "no probe time was reported")
    share = sum(probe) / max(sum(steps), 1e-9)
    detail = f"{1e3 * sum(probe) / len(probe):.2f} ms per probe step, {share:.1%} of step time"
    return Check("probe time per step", "NOTE", detail)


def _check_sync(run: Run) -> Check:
    if not run.engine["device"].startswith("cuda") or not run.engine["async_scheduling"]:
        return Check("no blocking device sync", "SKIP", "checked on CUDA with async scheduling")
    return Check("no blocking device sync", "PASS", "VLLM_GPU_SYNC_CHECK=error raised nothing")


def doctor(
    cfg: EngineConfig,
    max_tokens: int | None = None,
    tolerance: float | None = None,
    reference: bool = True,
    workdir: Path | None = None,
) -> list[Check]:
    """Run every check; an engine that fails to start is one FAIL with its error."""
    workdir = Path(workdir or tempfile.mkdtemp(prefix="trail-doctor-"))
    cfg, plumbing, layer = prepare(cfg, workdir)
    every = cfg.trail.refine_settings().predict_every
    max_tokens = max_tokens or max(12, 2 * every + 2)
    if tolerance is None:
        tolerance = 1e-3 if cfg.dtype == "float32" else 5e-2
    os.environ.setdefault("VLLM_GPU_SYNC_CHECK", "error")  # read on CUDA only
    note = Check(
        "probe",
        "NOTE",
        f"plumbing probe (random, layer {layer}): no trained probe fits this model"
        if plumbing
        else f"trained probe {cfg.trail.resolved_probe_path()} (layer {layer})",
    )
    try:
        run = run_engine(cfg, plumbing, layer, max_tokens)
    except Exception as exc:  # noqa: BLE001 - the doctor reports, it does not crash
        return [note, Check("engine starts and serves", "FAIL", f"{type(exc).__name__}: {exc}")]
    return [note, *check_all(run, every, tolerance, reference, cfg.model)]
