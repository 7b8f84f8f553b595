"""Ray Serve RequestRouters: the slot-aware TRAIL router and round robin.

They run inside every process that holds a handle to the LLM deployment (the ingress). Ray's
default PowerOfTwoChoicesRequestRouter is the third choice, selected by its path in config.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from ray.serve.request_router import PendingRequest, ReplicaID, RequestRouter, RunningReplica

from trail.policy.cost import DEFAULT_STEP_COST
from trail.policy.route import HIST_VALUES, ReplicaViews, rank_replicas, remaining_hist
from trail.serve.ledger import Reservation, WorkLedger
from trail.serve.protocol import request_from_call

logger = logging.getLogger("ray.serve")
POW2_PATH = "ray.serve._private.request_router:PowerOfTwoChoicesRequestRouter"


def _replica_label(replica_id: ReplicaID) -> str:
    return replica_id.unique_id


class LeastWorkRouter(RequestRouter):
    """The slot-aware TRAIL router (trail/policy/route.py, the simulator's `slots`): a replica
    with a free slot wins, the least predicted overlap with the new request among those; then
    the least predicted work waiting to be admitted.

    Returns every replica, one per rank, best first: Serve tries the best, and falls through to
    the next only when that one's queue is full (max_ongoing_requests)."""

    def initialize_state(self, **kwargs: Any) -> None:
        """kwargs: `request_router_kwargs` from the deployment (trail/serve/app.py): router_name."""
        self.router_name = str(kwargs.get("router_name", "trail"))
        self.ledger = WorkLedger()
        self._rid_by_internal: dict[str, str] = {}
        self._rng = np.random.default_rng()

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        if not candidate_replicas:
            return []
        replicas = sorted(candidate_replicas, key=lambda r: r.replica_id.unique_id)
        stats = [r.routing_stats or {} for r in replicas]
        for r, s in zip(replicas, stats, strict=True):
            self.ledger.acknowledge(r.replica_id, s)
        pending = [self.ledger.pending(r.replica_id) for r in replicas]
        ghosts = [self.ledger.ghosts(r.replica_id, s) for r, s in zip(replicas, stats, strict=True)]
        views, weight = replica_views(stats, pending, ghosts)
        request = self._request(pending_request)
        order = rank_replicas(
            views,
            prefill_weight=weight,
            tiebreak=self._tiebreak(replicas),
            predicted_len=None if request is None else request.predicted_tokens,
        )
        ranked = [replicas[int(i)] for i in order]
        if request is not None:  # tentative until on_request_routed confirms the replica
            self.ledger.reserve(
                request.request_id,
                ranked[0].replica_id,
                request.predicted_tokens,
                request.prompt_tokens,
                confirmed=False,
            )
        self._publish_view(
            {r.replica_id: float(views.total_work[i]) for i, r in enumerate(replicas)}
        )
        return [[r] for r in ranked]

    def on_request_routed(self, pending_request, replica_id, result) -> None:  # noqa: ANN001
        request = self._request(pending_request)
        if request is None:
            return
        self.ledger.reserve(
            request.request_id, replica_id, request.predicted_tokens, request.prompt_tokens
        )
        self._rid_by_internal[pending_request.metadata.internal_request_id] = request.request_id
        _record_decision(self.router_name, replica_id)

    def on_request_completed(self, replica_id: ReplicaID, internal_request_id: str) -> None:
        rid = self._rid_by_internal.pop(internal_request_id, None)
        if rid is not None:
            self.ledger.complete(rid)

    def _tiebreak(self, replicas: list[RunningReplica]) -> np.ndarray:
        """Serve's queue length, then chance: with a fixed order, sequential requests on an idle
        cluster would all go to one replica, and a replacement replica would never be tried."""
        queue = [self.replica_queue_len_cache.get(r.replica_id) or 0 for r in replicas]
        return np.asarray(queue, dtype=float) + 0.5 * self._rng.random(len(replicas))

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


def replica_views(
    stats: Sequence[Mapping[str, Any]],
    pending: Sequence[Sequence[Reservation]],
    ghosts: Sequence[Sequence[Reservation]] | None = None,
) -> tuple[ReplicaViews, float]:
    """The replicas' published stats plus what this router dispatched since, less the requests
    it knows finished since (ghosts: where they stood is unknown, so each figure loses what the
    request was reserved with, floored at zero), as route.py's views; and the prefill weight
    the replicas fitted (the default until one has)."""
    n = len(stats)
    cols = {k: np.zeros(n) for k in ("free", "total", "wait", "prefill", "soon")}
    hist = np.zeros((n, len(HIST_VALUES)))
    gone_all = ghosts or [[] for _ in stats]
    for i, (s, mine, gone) in enumerate(zip(stats, pending, gone_all, strict=True)):
        busy = s.get("running", 0) + s.get("waiting", 0) + len(mine) - len(gone)
        cols["free"][i] = float(s.get("max_num_seqs") or np.inf) - max(busy, 0)
        cols["total"][i] = _less(s.get("work_tokens", 0.0), gone, "work") + _sum(mine, "work")
        cols["wait"][i] = _less(s.get("waiting_work", 0.0), gone, "decode") + _sum(mine, "decode")
        cols["prefill"][i] = _less(s.get("prefill_pending", 0.0), gone, "prefill")
        cols["prefill"][i] += _sum(mine, "prefill")
        cols["soon"][i] = s.get("soonest_free", 0.0)
        if s.get("remaining_hist"):
            hist[i] = without(np.asarray(s["remaining_hist"], float), [r.decode for r in gone])
        hist[i] += remaining_hist([r.decode for r in mine])
    weights = [s["prefill_weight"] for s in stats if s.get("prefill_weight")]
    views = ReplicaViews(
        free_slots=cols["free"],
        kv_free_tokens=np.full(n, np.inf),  # KV room is the engine's own admission check
        total_work=cols["total"],
        waiting_work=cols["wait"],
        waiting_prefill=cols["prefill"],
        soonest_free=cols["soon"],
        hist=hist if all("remaining_hist" in s for s in stats) else None,  # else: total work
    )
    return views, float(np.mean(weights)) if weights else DEFAULT_STEP_COST.prefill_weight


def _sum(reservations: Sequence[Reservation], attr: str) -> float:
    return float(sum(getattr(r, attr) for r in reservations))


def _less(published: float, gone: Sequence[Reservation], attr: str) -> float:
    return max(float(published) - _sum(gone, attr), 0.0)


def without(hist: np.ndarray, decodes: Sequence[float]) -> np.ndarray:
    """`hist` less one count per finished request: from the highest non-empty bucket at or
    below the one its reserved length falls in (it can only have shrunk since)."""
    hist = hist.copy()
    for decode in decodes:
        bucket = int(np.argmax(remaining_hist([decode])))
        filled = np.flatnonzero(hist[: bucket + 1] > 0)
        if len(filled):
            hist[filled[-1]] -= 1
    return hist


class RoundRobinRouter(RequestRouter):
    """Cycle over replicas in a stable order: the naive baseline."""

    def initialize_state(self, **kwargs: Any) -> None:
        self.router_name = str(kwargs.get("router_name", "round_robin"))
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
