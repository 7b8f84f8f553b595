"""Ray Serve RequestRouters: the slot-aware TRAIL router and round robin.

They run inside every process that holds a handle to the LLM deployment (the ingress). Ray's
default PowerOfTwoChoicesRequestRouter is the third choice, selected by its path in config.

A replica's `routing_stats` is the wire form of trail.policy.replica_stats.ReplicaStats. One this
version cannot parse (a replica of another version) is routed as a replica that has published
nothing yet: on this router's own reservations alone, with free slots; that is logged once per
replica, since such a replica's real load is invisible to the router.
"""

from __future__ import annotations

import itertools
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np
from ray.serve.request_router import PendingRequest, ReplicaID, RequestRouter, RunningReplica

from trail.policy.cost import DEFAULT_STEP_COST
from trail.policy.replica_stats import ReplicaStats, ReplicaStatsError
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
        """kwargs: `request_router_kwargs` from the deployment (trail/serve/app.py): router_name,
        default_prediction."""
        self.router_name = str(kwargs.get("router_name", "trail"))
        # for calls that carry no TRAIL prediction (Ray Serve LLM's ingress, trail/serve/raysl.py)
        self.default_prediction = float(kwargs.get("default_prediction", 256.0))
        self.ledger = WorkLedger()
        self._rid_by_internal: dict[str, str] = {}
        self._rng = np.random.default_rng()
        self._parsed: dict[ReplicaID, tuple[object, ReplicaStats | None]] = {}
        self._refused: set[ReplicaID] = set()

    async def choose_replicas(
        self,
        candidate_replicas: list[RunningReplica],
        pending_request: PendingRequest | None = None,
    ) -> list[list[RunningReplica]]:
        if not candidate_replicas:
            return []
        replicas = sorted(candidate_replicas, key=lambda r: r.replica_id.unique_id)
        stats = self._stats(replicas)
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

    def update_replicas(self, replicas: list[RunningReplica]) -> None:
        """Serve's new replica set: the ledger forgets replicas that are gone (a killed
        replica's entries would otherwise stay in this ingress for good)."""
        super().update_replicas(replicas)
        self.ledger.forget_except({r.replica_id for r in replicas})
        routed = self.ledger.routed
        self._rid_by_internal = {k: v for k, v in self._rid_by_internal.items() if v in routed}
        self._refused &= {r.replica_id for r in replicas}

    def _stats(self, replicas: list[RunningReplica]) -> list[ReplicaStats | None]:
        """Each replica's parsed stats, None where unknown. A parse is kept until Serve hands
        over a new dict (one per controller broadcast), not repeated per request."""
        parsed = {}
        for r in replicas:
            raw = r.routing_stats
            kept = self._parsed.get(r.replica_id)
            parsed[r.replica_id] = kept if kept and kept[0] is raw else (raw, self._parse(r, raw))
        self._parsed = parsed  # replicas gone from the candidates are dropped
        return [parsed[r.replica_id][1] for r in replicas]

    def _parse(self, replica: RunningReplica, raw: Any) -> ReplicaStats | None:
        if not raw:  # nothing published yet
            return None
        try:
            return ReplicaStats.from_dict(raw)
        except ReplicaStatsError as exc:
            if replica.replica_id not in self._refused:
                self._refused.add(replica.replica_id)
                logger.warning(
                    "replica %s: routing stats refused (%s); routed as one with no stats",
                    _replica_label(replica.replica_id),
                    exc,
                )
            return None

    def _tiebreak(self, replicas: list[RunningReplica]) -> np.ndarray:
        """Serve's queue length, then chance: with a fixed order, sequential requests on an idle
        cluster would all go to one replica, and a replacement replica would never be tried."""
        queue = [self.replica_queue_len_cache.get(r.replica_id) or 0 for r in replicas]
        return np.asarray(queue, dtype=float) + 0.5 * self._rng.random(len(replicas))

    def _request(self, pending_request: PendingRequest | None):  # noqa: ANN202
        if pending_request is None:
            return None
        return request_from_call(
            pending_request.args, pending_request.kwargs, self.default_prediction
        )

    def _publish_view(self, estimates: dict[ReplicaID, float]) -> None:
        try:
            from trail.metrics import router_ledger, router_view

            for rid, work in estimates.items():
                router_view(self.router_name, _replica_label(rid), work)
            sizes = {**self.ledger.sizes(), "ids": len(self._rid_by_internal)}
            router_ledger(self.router_name, sizes)
        except Exception:  # metrics are best-effort; routing must go on
            logger.debug("router_view failed", exc_info=True)


def replica_views(
    stats: Sequence[ReplicaStats | None],
    pending: Sequence[Sequence[Reservation]],
    ghosts: Sequence[Sequence[Reservation]] | None = None,
) -> tuple[ReplicaViews, float]:
    """The replicas' published stats plus what this router dispatched since, less the requests
    it knows finished since (ghosts: where they stood is unknown, so each figure loses what the
    request was reserved with, floored at zero), as route.py's views; and the prefill weight
    the replicas fitted (the default until one has). A replica without stats (None) has free
    slots and only this router's reservations; then no histogram is used (total work ranks)."""
    n = len(stats)
    cols = {k: np.zeros(n) for k in ("free", "total", "wait", "prefill", "soon")}
    hist = np.zeros((n, len(HIST_VALUES)))
    gone_all = ghosts or [[] for _ in stats]
    for i, (s, mine, gone) in enumerate(zip(stats, pending, gone_all, strict=True)):
        busy = len(mine) - len(gone)
        cols["free"][i] = np.inf
        if s is not None:
            busy += s.running + s.waiting
            cols["free"][i] = s.max_num_seqs
            cols["total"][i] = _less(s.work_tokens, gone, "work")
            cols["wait"][i] = _less(s.waiting_work, gone, "decode")
            cols["prefill"][i] = _less(s.prefill_pending, gone, "prefill")
            cols["soon"][i] = s.soonest_free
            hist[i] = without(np.asarray(s.remaining_hist), [r.decode for r in gone])
        cols["free"][i] -= max(busy, 0)
        cols["total"][i] += _sum(mine, "work")
        cols["wait"][i] += _sum(mine, "decode")
        cols["prefill"][i] += _sum(mine, "prefill")
        hist[i] += remaining_hist([r.decode for r in mine])
    weights = [s.prefill_weight for s in stats if s is not None and s.prefill_weight]
    views = ReplicaViews(
        free_slots=cols["free"],
        kv_free_tokens=np.full(n, np.inf),  # KV room is the engine's own admission check
        total_work=cols["total"],
        waiting_work=cols["wait"],
        waiting_prefill=cols["prefill"],
        soonest_free=cols["soon"],
        hist=hist if all(s is not None for s in stats) else None,  # else: total work
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
