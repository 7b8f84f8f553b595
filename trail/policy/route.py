"""Which replica a new request should go to, for a batch engine (pure numpy; the Serve router and
the cluster simulator both call `rank_replicas`).

An engine is a batch of slots, not one server: a request that finds a free slot (and KV room)
starts at once, however much work the slot-holders still have. So the score has two tiers:
1. replicas with a free slot and room for the request: the least predicted *overlap* wins, the
   tokens the others will still be generating while the new request runs, sum of
   min(remaining_i, L) over the replica's requests for the new request's predicted length L.
   A step's cost grows with the sequences in it, so this is both the slowdown the newcomer
   suffers and the one it causes; for short L it counts requests (join the shortest queue), for
   long L it is the total predicted work;
2. full replicas: the request waits behind the predicted work *waiting* to be admitted, plus
   the remaining work of the running request that will free a slot first.
Prefill tokens are weighted by their measured cost relative to one decode token
(`prefill_weight`), not counted as equal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

# buckets of predicted remaining tokens a replica reports (counts per bucket), and the value
# that stands for a bucket
HIST_EDGES = np.array([0, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096, np.inf])
HIST_VALUES = np.array([4, 12, 24, 48, 96, 192, 384, 768, 1536, 3072, 6144], dtype=float)


def remaining_hist(remaining: list[float] | np.ndarray) -> np.ndarray:
    """Counts of predicted remaining tokens per bucket of HIST_EDGES."""
    return np.histogram(np.asarray(remaining, dtype=float), HIST_EDGES)[0].astype(float)


def overlap(hist: np.ndarray, length: float, steps: np.ndarray | None = None) -> np.ndarray:
    """sum of min(remaining_i, length) per replica ([n, B] counts), `steps` tokens after the
    counts were taken."""
    rem = HIST_VALUES[None, :] - (0.0 if steps is None else np.asarray(steps)[:, None])
    return (hist * np.minimum(np.maximum(rem, 0.0), length)).sum(axis=-1)


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
    hist: np.ndarray | None = None  # [n, B] counts of predicted remaining (running + waiting)
    hist_steps: np.ndarray | None = None  # decode steps since the counts were taken

    @classmethod
    def of(cls, **columns: object) -> ReplicaViews:
        arrays = {k: np.asarray(v, dtype=float) for k, v in columns.items()}
        n = len(next(iter(arrays.values())))
        defaults: dict[str, Any] = {f: np.zeros(n) for f in cls.__dataclass_fields__}
        defaults |= {"kv_free_tokens": np.full(n, np.inf), "hist": None, "hist_steps": None}
        return cls(**{**defaults, **arrays})


def route_scores(
    v: ReplicaViews,
    request_tokens: float,
    prefill_weight: float = 1.0,
    predicted_len: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(tier, score) per replica; lower is better in both. Without the replicas' histograms or
    the request's predicted length, tier 1 ranks by total predicted work."""
    fits = (v.free_slots >= 1) & (v.kv_free_tokens >= request_tokens)
    if v.hist is None or predicted_len is None:
        work = v.total_work
    else:
        work = overlap(v.hist, predicted_len, v.hist_steps)
    total = work + prefill_weight * v.waiting_prefill
    queued = v.waiting_work + prefill_weight * v.waiting_prefill + v.soonest_free
    return np.where(fits, 0, 1), np.where(fits, total, queued)


def rank_replicas(
    v: ReplicaViews,
    request_tokens: float = 0.0,
    prefill_weight: float = 1.0,
    tiebreak: np.ndarray | None = None,
    predicted_len: float | None = None,
) -> np.ndarray:
    """Replica indices, best first. Equal scores go to the replica with less total predicted
    work: for a short request, one near-done request and one long one overlap it equally, but
    only the long one will still be there for the next (then `tiebreak`, then index)."""
    tier, score = route_scores(v, request_tokens, prefill_weight, predicted_len)
    tb = np.zeros(len(tier)) if tiebreak is None else np.asarray(tiebreak, dtype=float)
    return np.lexsort((tb, v.total_work, score, tier))
