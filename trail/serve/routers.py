"""Ray Serve RequestRouters: least predicted remaining work (TRAIL) and round robin.

They run inside every process that holds a handle to the LLM deployment (the ingress). Ray's
default PowerOfTwoChoicesRequestRouter is the third choice, selected by its path in config.
"""

from __future__ import annotations

import itertools
import logging
import os

from ray.serve.request_router import PendingRequest, ReplicaID, RequestRouter, RunningReplica

from trail.serve.ledger import WorkLedger, rank_by_work
from trail.serve.protocol import request_from_call

logger = logging.getLogger("ray.serve")
POW2_PATH = "ray.serve._private.request_router:PowerOfTwoChoicesRequestRouter"


def _replica_label(replica_id: ReplicaID) -> str:
    return replica_id.unique_id


class LeastWorkRouter(RequestRouter):
    """Send each request to the replica with the least predicted remaining work.

    Returns every replica, one per rank, lightest first: Serve tries the lightest, and falls
    through to the next only when that one's queue is full (max_ongoing_requests)."""

    def initialize_state(self, router_name: str = "trail") -> None:
        self.router_name = router_name
        self.ledger = WorkLedger()
        self._rid_by_internal: dict[str, str] = {}

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        if not candidate_replicas:
            return []
        by_id = {r.replica_id: r for r in candidate_replicas}
        estimates = {rid: self.ledger.estimate(rid, r.routing_stats) for rid, r in by_id.items()}
        tiebreak = {rid: self._queue_len(rid) for rid in by_id}
        ranked = rank_by_work(estimates, tiebreak)
        request = self._request(pending_request)
        if request is not None:  # tentative until on_request_routed confirms the replica
            self.ledger.reserve(request.request_id, ranked[0], request.work_tokens)
        self._publish_view(estimates)
        return [[by_id[rid]] for rid in ranked]

    def on_request_routed(self, pending_request, replica_id, result) -> None:  # noqa: ANN001
        request = self._request(pending_request)
        if request is None:
            return
        self.ledger.reserve(request.request_id, replica_id, request.work_tokens)
        self._rid_by_internal[pending_request.metadata.internal_request_id] = request.request_id
        _record_decision(self.router_name, replica_id)

    def on_request_completed(self, replica_id: ReplicaID, internal_request_id: str) -> None:
        rid = self._rid_by_internal.pop(internal_request_id, None)
        if rid is not None:
            self.ledger.release(rid)

    def _queue_len(self, replica_id: ReplicaID) -> int:
        return self.replica_queue_len_cache.get(replica_id) or 0

    @staticmethod
    def _request(pending_request: PendingRequest | None):  # noqa: ANN205
        if pending_request is None:
            return None
        return request_from_call(pending_request.args, pending_request.kwargs)

    def _publish_view(self, estimates: dict[ReplicaID, float]) -> None:
        try:
            from trail.metrics import router_view

            for rid, work in estimates.items():
                router_view(self.router_name, _replica_label(rid), work)
        except Exception:  # metrics are best-effort; routing must go on
            logger.debug("router_view failed", exc_info=True)


class RoundRobinRouter(RequestRouter):
    """Cycle over replicas in a stable order: the naive baseline."""

    def initialize_state(self, router_name: str = "round_robin") -> None:
        self.router_name = router_name
        self._counter = itertools.count()

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        if not candidate_replicas:
            return []
        ordered = sorted(candidate_replicas, key=lambda r: r.replica_id.unique_id)
        start = next(self._counter) % len(ordered)
        rotated = ordered[start:] + ordered[:start]
        return [[r] for r in rotated]

    def on_request_routed(self, pending_request, replica_id, result) -> None:  # noqa: ANN001
        _record_decision(self.router_name, replica_id)


def _record_decision(router_name: str, replica_id: ReplicaID) -> None:
    try:
        from trail.metrics import router_decision

        router_decision(router_name, _replica_label(replica_id))
    except Exception:
        logger.debug("router_decision failed (pid %s)", os.getpid(), exc_info=True)


ROUTER_CLASSES = {
    "trail": f"{__name__}:LeastWorkRouter",
    "round_robin": f"{__name__}:RoundRobinRouter",
    "pow2": POW2_PATH,
}
