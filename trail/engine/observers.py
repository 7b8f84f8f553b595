"""Where the scheduler's observations go: the JSONL event log, the Redis prediction store and
Prometheus metrics. One object, so the scheduler calls one method per event; every sink is
best-effort and never blocks the scheduling loop (the store queues, metrics are in-memory)."""

from __future__ import annotations

import time
from typing import Any

from trail.engine.events import EventLog
from trail.engine.tracking import Tracked
from trail.engine.trail_config import TrailConfig


class SchedulerObserver:
    def __init__(self, cfg: TrailConfig):
        self.cfg = cfg
        self.log = EventLog(cfg.dump_path)
        self.store = None
        if cfg.redis_url:
            from trail.store import PredictionStore

            self.store = PredictionStore(
                cfg.redis_url, ttl_s=cfg.store_ttl_s, store_distributions=cfg.store_distributions
            )
        from trail.metrics import ReplicaMetrics

        probe = cfg.probe_bundle
        self.metrics = ReplicaMetrics(cfg.replica, cfg.policy, probe and probe.version)

    def arrival(self, t: Tracked, request: Any) -> None:
        self.log.arrival(t)
        if self.store is not None:
            from trail.store import prompt_hash

            ids = list(request.prompt_token_ids or [])
            self.store.arrival(
                t.length.request_id,
                replica=self.cfg.replica,
                policy=self.cfg.policy,
                prompt_tokens=len(ids),
                prompt_hash=prompt_hash(ids),
                max_tokens=getattr(request, "max_tokens", None),
                initial_dist=t.initial_dist,
                initial_expected=t.length.initial_pred,
                ts=time.time(),
                prompt_version=t.prompt_version,
            )

    def admitted(self, t: Tracked, rank: float, lane: bool = False) -> None:
        self.log.admitted(t, rank, lane)

    def first_token(self, t: Tracked) -> None:
        if self.store is not None:
            self.store.first_token(t.length.request_id, ts=time.time())

    def emission(self, t: Tracked, em: Any, posterior: list[float] | None) -> None:
        self.log.emission(t, em)
        if self.store is not None and em.probs is not None and t.length.refined_pred is not None:
            self.store.step(
                t.length.request_id,
                step=em.generated,
                expected_remaining=t.length.refined_pred,
                dist=posterior,
            )

    def step(self, prefill_tokens: int, decode_seqs: int, context_tokens: int, secs: float) -> None:
        self.log.step(prefill_tokens, decode_seqs, context_tokens, secs)

    def probe_seconds(self, seconds: float) -> None:
        self.metrics.probe_call(seconds)
        self.log.probe_time(seconds)

    def preempted(self, t: Tracked, reason: str, recompute_tokens: int = 0) -> None:
        self.log.preempted(t, reason, recompute_tokens)
        self.metrics.preempted(reason, recompute_tokens)
        if self.store is not None:
            self.store.preempted(
                t.length.request_id, reason=reason, step=t.length.generated, ts=time.time()
            )

    def starvation_promoted(self, t: Tracked) -> None:
        self.metrics.starvation_promoted()

    def finished(self, t: Tracked, n_output: int, finish_reason: str) -> None:
        self.log.finished(t, n_output)
        self.metrics.request_finished(
            true_length=n_output,
            finish_reason=finish_reason,
            initial_expected=t.length.initial_pred,
            trajectory=t.trajectory,
            probe_version=t.probe_version,
            prompt_version=t.prompt_version,
        )
        if self.store is not None:
            self.store.finished(
                t.length.request_id,
                true_length=n_output,
                finish_reason=finish_reason,
                ts=time.time(),
                probe_version=t.probe_version,
            )

    def load(self, load: Any) -> None:
        self.metrics.set_queues(running=load.running, waiting=load.waiting)
        self.metrics.set_predicted_remaining(load.predicted_remaining_tokens)

    def close(self) -> None:
        if self.store is not None:
            self.store.close()
