"""A replica's predicted remaining work as it publishes it to the router (`routing_stats`).

One function for both Serve doors: our own LLMServer and the Ray Serve LLM server class
(trail/serve/raysl.py). Both keep the calls they accepted (`Inflight`) and read their engine's
last EngineLoad file; the scheduler's snapshot wins while it is fresh, and the calls it does not
show yet are added on top.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trail.engine.load import read_load
from trail.policy.replica_stats import ReplicaStats
from trail.policy.route import remaining_hist

LOAD_MAX_AGE_S = 2.0  # an older EngineLoad no longer describes a busy engine


@dataclass
class Inflight:
    work_tokens: float  # decode + prefill
    decode_tokens: float  # predicted output tokens
    accepted_at: float


@dataclass
class ReplicaFacts:
    """What only the replica itself knows, beside its engine's load file."""

    name: str
    load_path: Path
    max_num_seqs: int
    engine_unfinished: int
    ready_s: float
    probe_version: str | None = None
    reload_error: str | None = None


def replica_stats(facts: ReplicaFacts, inflight: dict[str, Inflight]) -> dict[str, Any]:
    """This replica's ReplicaStats, in the wire form Serve carries to the router."""
    now = time.time()
    last = read_load(facts.load_path, max_age_s=float("inf"))  # the engine's last word
    fresh = last is not None and now - last.ts <= LOAD_MAX_AGE_S
    load = last if inflight and fresh else None
    if load is not None:
        unseen = [r for r in inflight.values() if r.accepted_at > load.ts]
        work = load.work_tokens + sum(r.work_tokens for r in unseen)
        running, waiting = load.running, load.waiting + len(unseen)
        waiting_work, soonest = load.waiting_work, load.soonest_free
        hist = np.asarray(load.remaining_hist or remaining_hist([]), dtype=float)
        prefill_weight = load.prefill_weight
    else:  # idle, or no fresh snapshot: our own predictions are the best figure
        unseen = list(inflight.values())
        work = sum(r.work_tokens for r in unseen)
        running, waiting, waiting_work, soonest = 0, len(unseen), 0.0, 0.0
        hist, prefill_weight = remaining_hist([]), None
    hist = hist + remaining_hist([r.decode_tokens for r in unseen])
    return ReplicaStats(
        replica=facts.name,
        pid=os.getpid(),
        work_tokens=float(work),
        running=running,
        waiting=waiting,
        inflight=len(inflight),
        max_num_seqs=facts.max_num_seqs,
        waiting_work=float(waiting_work + sum(r.decode_tokens for r in unseen)),
        prefill_pending=float(
            (load.prefill_tokens_pending if load is not None else 0)
            + sum(r.work_tokens - r.decode_tokens for r in unseen)
        ),
        soonest_free=float(soonest),
        remaining_hist=tuple(hist.tolist()),
        prefill_weight=prefill_weight,
        engine_unfinished=facts.engine_unfinished,
        # the scheduler's last publication (it always publishes the step it went idle)
        engine_running=last.running if last else None,
        engine_waiting=last.waiting if last else None,
        kv_free_blocks=last.kv_free_blocks if last else None,
        kv_total_blocks=last.kv_total_blocks if last else None,
        engine_load_ts=last.ts if last else None,
        seen=tuple(inflight),
        ready_s=round(facts.ready_s, 2),
        probe_version=facts.probe_version,
        reload_error=facts.reload_error,
        ts=now,
    ).to_dict()
