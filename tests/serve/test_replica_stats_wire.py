"""What LLMServer really publishes for the router parses as a ReplicaStats, idle and busy.

current_stats reads only the replica's own bookkeeping and its engine's EngineLoad file, so an
LLMServer without an engine (no Ray, no vLLM start) runs the real code; tests/serve's app tests
parse the stats of live replicas too (tests/support/serve.py: replica_stats).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

from trail.engine.load import EngineLoad, write_load
from trail.policy.replica_stats import ReplicaStats
from trail.policy.route import remaining_hist
from trail.serve.config import ServeConfig
from trail.serve.llm_server import LLMServer
from trail.serve.replica_report import Inflight


def engineless_server(folder: Path, inflight: dict[str, Inflight]) -> LLMServer:
    server = LLMServer.__new__(LLMServer)  # __init__ would start vLLM
    server.cfg = ServeConfig.model_validate({"engine": {"max_num_seqs": 4}})
    server.name, server.ready_s, server.probe, server.reload_error = "rep", 1.234, None, None
    server.load_path, server.stats_path = folder / "rep.json", folder / "rep.replica.json"
    server.inflight = inflight
    server.engine = SimpleNamespace(
        get_num_unfinished_requests=lambda: len(inflight), shutdown=lambda: None
    )
    return server


def published(server: LLMServer) -> ReplicaStats:
    """What Serve hands the router, checked against what the replica wrote to disk."""
    stats = ReplicaStats.from_dict(server.record_routing_stats())
    assert ReplicaStats.from_dict(json.loads(server.stats_path.read_text())) == stats
    return stats


def test_an_idle_replica_without_an_engine_snapshot_publishes_parseable_stats(tmp_path):
    stats = published(engineless_server(tmp_path, {}))
    assert (stats.replica, stats.max_num_seqs, stats.work_tokens, stats.seen) == ("rep", 4, 0, ())
    assert stats.engine_load_ts is None and stats.prefill_weight is None
    assert sum(stats.remaining_hist) == 0 and stats.ready_s == 1.23


def test_a_busy_replica_publishes_its_snapshot_plus_what_it_accepted_since(tmp_path):
    now = time.time()
    load = EngineLoad(
        predicted_remaining_tokens=300.0,
        prefill_tokens_pending=20,
        running=1,
        waiting=0,
        ts=now - 0.5,
        kv_free_blocks=10,
        kv_total_blocks=12,
        prefill_weight=0.3,
        soonest_free=300.0,
        remaining_hist=remaining_hist([300]).tolist(),
    )
    write_load(tmp_path / "rep.json", load)
    inflight = {"old": Inflight(320.0, 300.0, now - 1), "new": Inflight(40.0, 30.0, now)}
    stats = published(engineless_server(tmp_path, inflight))
    assert (stats.running, stats.waiting, stats.inflight) == (1, 1, 2)  # "new" is unseen
    assert stats.work_tokens == 320 + 40 and stats.waiting_work == 30
    assert stats.prefill_pending == 20 + 10 and stats.prefill_weight == 0.3
    assert stats.seen == ("old", "new") and sum(stats.remaining_hist) == 2
    assert (stats.engine_running, stats.kv_free_blocks, stats.engine_load_ts) == (1, 10, load.ts)
