"""ReplicaStats for routing tests: an idle replica's, with the fields a test cares about."""

from __future__ import annotations

import time
from typing import Any

from trail.policy.replica_stats import ReplicaStats
from trail.policy.route import remaining_hist


def stats_of(remaining: list[float] | None = None, **over: Any) -> ReplicaStats:
    """An idle four-slot replica's stats taken now; `remaining` fills the histogram (predicted
    remaining tokens per request), `over` replaces any field."""
    idle: dict[str, Any] = {
        "replica": "r",
        "pid": 1,
        "work_tokens": 0.0,
        "running": 0,
        "waiting": 0,
        "inflight": 0,
        "max_num_seqs": 4,
        "waiting_work": 0.0,
        "prefill_pending": 0.0,
        "soonest_free": 0.0,
        "remaining_hist": tuple(remaining_hist(remaining or []).tolist()),
        "prefill_weight": None,
        "engine_unfinished": 0,
        "engine_running": None,
        "engine_waiting": None,
        "kv_free_blocks": None,
        "kv_total_blocks": None,
        "engine_load_ts": None,
        "seen": (),
        "ready_s": 0.0,
        "probe_version": None,
        "reload_error": None,
        "ts": time.time(),
    }
    return ReplicaStats(**(idle | over))
