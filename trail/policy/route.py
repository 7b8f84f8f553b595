"""Which replica a new request should go to, for a batch engine (pure numpy; the Serve router and
the cluster simulator both call `rank_replicas`).

An engine is a batch of slots, not one server: a request that finds a free slot (and KV room)
starts at once, however much work the slot-holders still have. So the score has two tiers:
1. replicas with a free slot and room for the request: the least predicted work in total wins
   (it will decode fastest: fewer sequences share each step's cost);
2. full replicas: the request waits behind the predicted work *waiting* to be admitted, plus
   the remaining work of the running request that will free a slot first.
Prefill tokens are weighted by their measured cost relative to one decode token
(`prefill_weight`), not counted as equal.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ReplicaViews:
    """One entry per replica (arrays of equal length), as the router last saw them plus what it
    dispatched since."""

    free_slots: np.ndarray  # max_num_seqs - running - dispatched-but-not-admitted
    kv_free_tokens: np.ndarray  # inf where unknown
    total_work: np.ndarray  # predicted remaining decode tokens, running + waiting
    waiting_work: np.ndarray  # predicted decode tokens of waiting requests
    waiting_prefill: np.ndarray  # prompt tokens still to prefill
    soonest_free: np.ndarray  # predicted remaining tokens of the running request nearest its end

    @classmethod
    def of(cls, **columns: object) -> ReplicaViews:
        arrays = {k: np.asarray(v, dtype=float) for k, v in columns.items()}
        n = len(next(iter(arrays.values())))
        defaults = {f: np.zeros(n) for f in cls.__dataclass_fields__}
        defaults["kv_free_tokens"] = np.full(n, np.inf)
        return cls(**{**defaults, **arrays})


def route_scores(
    v: ReplicaViews, request_tokens: float, prefill_weight: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """(tier, score) per replica; lower is better in both."""
    fits = (v.free_slots >= 1) & (v.kv_free_tokens >= request_tokens)
    total = v.total_work + prefill_weight * v.waiting_prefill
    queued = v.waiting_work + prefill_weight * v.waiting_prefill + v.soonest_free
    return np.where(fits, 0, 1), np.where(fits, total, queued)


def rank_replicas(
    v: ReplicaViews,
    request_tokens: float = 0.0,
    prefill_weight: float = 1.0,
    tiebreak: np.ndarray | None = None,
) -> np.ndarray:
    """Replica indices, best first (ties: `tiebreak`, e.g. a random permutation, then index)."""
    tier, score = route_scores(v, request_tokens, prefill_weight)
    tb = np.zeros(len(tier)) if tiebreak is None else np.asarray(tiebreak, dtype=float)
    return np.lexsort((tb, score, tier))
