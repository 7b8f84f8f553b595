"""The experiment's HTTP level: the engine replay's requests and arrival times, sent through the
Serve app's OpenAI API (ingress → prompt prediction → router → replicas), one fresh app per
cell. What the engine replay cannot show — the ingress's own prediction, HTTP and SSE costs, and
the router across replicas — is in these numbers; the cell has the engine replay's shape, so the
same analysis (ratios, intervals, buckets) reads both.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trail.lab.bench.app_launcher import AppLauncher, app_args
from trail.lab.bench.client import Record, make_body
from trail.lab.bench.experiment import (
    SATURATION_TOKENS,
    RunCell,
    cycled,
    full_batch_rate,
    safe_label,
)
from trail.lab.bench.loadgen import open_loop
from trail.lab.bench.replay import _base_id, preemption_counts, read_events
from trail.lab.stats.summary import summarize
from trail.lab.workload.prompts import WorkItem
from trail.lab.workload.requests import BenchRequest

ORACLE_POLICIES = ("trail-oracle",)  # the ones that need the true length sent
SERVED = "smollm2"  # the model name the app serves (app_args' default)


@dataclass(frozen=True)
class HttpSetup:
    """The app every cell deploys: its replicas, their batch, and the router unless the policy
    spec names one (`trail@router=pow2`)."""

    launcher: AppLauncher
    replicas: int = 1
    router: str = "trail"
    max_num_seqs: int = 16
    model: str = "smollm2"  # a prepared model's name or folder
    prompt_predictor: Path | None = None  # None: the packaged one


def http_runner(setup: HttpSetup, cap: int) -> RunCell:
    """The grid's cells through the app (trail/lab/bench/experiment.py runs the grid)."""

    def run(items, times, lengths, policy, extra, label, folder) -> dict:  # noqa: ANN001
        reqs = http_requests(items, lengths, cap)
        return run_http_policy(setup, policy, reqs, times, lengths is None, folder, extra, label)

    return run


def http_requests(items: list[WorkItem], lengths: Sequence[int] | None, cap: int) -> list:
    """Request i is `q<i>` (also its `request_id`, so the engine's events name it)."""
    return [
        BenchRequest(f"q{i}", w.prompt, int(lengths[i]) if lengths else cap, 0)
        for i, w in enumerate(items)
    ]


def run_http_policy(
    setup: HttpSetup,
    policy: str,
    requests: list[BenchRequest],
    times: Sequence[float],
    natural: bool,
    workdir: Path,
    trail_extra: dict,
    label: str,
) -> dict:
    """One fresh app under one policy (and router); the engine replay's cell shape: summary,
    per-request results, preemptions from the replicas' scheduler events."""
    extra = dict(trail_extra)
    router = str(extra.pop("router", setup.router))
    folder = workdir / safe_label(label)
    folder.mkdir(parents=True, exist_ok=True)
    dump = folder / "events.jsonl"  # every replica appends its lines (O_APPEND, line-buffered)
    dump.unlink(missing_ok=True)
    args = app_args(policy, router, setup.replicas, None, setup.model, setup.max_num_seqs)
    args["engine"]["trail"].update({**extra, "dump_path": str(dump)})
    if setup.prompt_predictor is not None:
        args["prompt_predictor_path"] = str(setup.prompt_predictor)
    deploy_s = setup.launcher.deploy(args)
    _warm(setup.launcher.url, setup.replicas)
    oracle = policy in ORACLE_POLICIES
    mode = "natural" if natural else "exact"

    def body(req: BenchRequest) -> dict[str, Any]:
        b = make_body(req, SERVED, mode=mode, max_out=req.out_tokens, send_true_len=oracle)
        return {**b, "request_id": req.id}

    records = asyncio.run(open_loop(setup.launcher.url, requests, times, body, label=label))
    return _cell(records, read_events(dump), deploy_s, router)


def _cell(records: list[Record], events: list[dict], deploy_s: float, router: str) -> dict:
    failed = [r for r in records if not r.ok]
    if failed:  # a cell with lost requests is not comparable: raise, so a rerun redoes it
        raise RuntimeError(f"{len(failed)} of {len(records)} requests failed: {failed[0].error}")
    res = {
        r.id: {
            "arrival_s": r.sent_s,
            "finish_s": r.sent_s + r.latency_s,
            "latency_s": r.latency_s,
            "ttft_s": r.ttft_s,
            "tpot_s": r.tpot_s,
            "max_stall_s": r.max_stall_s,
            "length": r.out_tokens,
            "prompt_tokens": r.prompt_tokens,
            "replica": r.replica,
            "preemptions": 0,
        }
        for r in records
    }
    steps = [e for e in events if e.get("event") == "step"]
    events = [e for e in events if _request_of(e) in res]  # not the warm-up's
    for e in events:
        if e.get("event") == "preempted":
            res[_request_of(e)]["preemptions"] += 1
    span = max(r["finish_s"] for r in res.values()) - min(r["arrival_s"] for r in res.values())
    tokens = sum(r["length"] for r in res.values())
    summary = summarize(
        [r["latency_s"] for r in res.values()], [r["ttft_s"] for r in res.values()], tokens, span
    )
    summary.update(preemption_counts(events), deploy_s=deploy_s, router=router)
    summary["replicas_used"] = len({r["replica"] for r in res.values()})
    return {"summary": summary, "requests": res, "steps": steps}


def _request_of(event: dict) -> str | None:
    """`q3` of the engine's `chatcmpl-q3-<suffix>` (steps name no request)."""
    rid = event.get("id")
    return _base_id(rid).removeprefix("chatcmpl-") if rid else None


def _warm(url: str, replicas: int) -> None:
    """A few tiny requests first, so that no cell's first arrivals pay the replicas' first
    compilation and allocation."""
    warm = [BenchRequest(f"warm{i}", "Hi", 4, 0) for i in range(2 * replicas)]
    asyncio.run(
        open_loop(url, warm, [0.0] * len(warm), lambda r: make_body(r, SERVED), progress=False)
    )


def measure_http_saturation(setup: HttpSetup, items: list[WorkItem], workdir: Path) -> dict:
    """The app's full-batch rate (`full_batch_rate`): 2 × max_num_seqs × replicas requests of
    128 tokens at once; every replica's steps count (they share this machine's cores, so 2
    replicas are not 2 × one)."""
    batch = 2 * setup.max_num_seqs * setup.replicas
    reqs = http_requests(cycled(items, batch), [SATURATION_TOKENS] * batch, SATURATION_TOKENS)
    cell = run_http_policy(setup, "fcfs", reqs, [0.0] * batch, False, workdir, {}, "saturation")
    rate = full_batch_rate(cell["steps"], setup.max_num_seqs, setup.replicas)
    return rate | {"requests": batch}
