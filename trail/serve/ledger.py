"""The router's bookkeeping, free of Ray so it can be tested alone.

A replica's published stats lag by up to a stats period plus the controller's broadcast. Work the
router dispatched in that window is invisible to them, so a burst would all land on whichever
replica looked lightest. The ledger remembers each dispatched request's work until the replica's
published stats list the request as seen (it is then inside the published figure) or the
request completes.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

STALE_AFTER_S = 10.0  # a reservation the stats never acknowledged (replica died, clock skew)


@dataclass
class Reservation:
    replica: Hashable
    work: float
    at: float


@dataclass
class WorkLedger:
    reservations: dict[str, Reservation] = field(default_factory=dict)

    def reserve(self, request_id: str, replica: Hashable, work: float) -> None:
        """(Re)assign a request's work to a replica; a later call for the same id replaces it."""
        self.reservations[request_id] = Reservation(replica, work, time.time())

    def release(self, request_id: str) -> None:
        self.reservations.pop(request_id, None)

    def acknowledge(self, replica: Hashable, stats: Mapping[str, Any]) -> None:
        """Drop reservations the replica's stats already count."""
        seen = set(stats.get("seen", ()))
        cutoff = float(stats.get("ts", 0.0)) - STALE_AFTER_S
        for rid, res in list(self.reservations.items()):
            if res.replica == replica and (rid in seen or res.at < cutoff):
                del self.reservations[rid]

    def unacknowledged(self, replica: Hashable) -> float:
        return sum(r.work for r in self.reservations.values() if r.replica == replica)

    def estimate(self, replica: Hashable, stats: Mapping[str, Any]) -> float:
        """Published work plus what was dispatched since that publication."""
        self.acknowledge(replica, stats)
        return float(stats.get("work_tokens", 0.0)) + self.unacknowledged(replica)


def rank_by_work(estimates: Mapping[Hashable, float], tiebreak: Mapping[Hashable, int]) -> list:
    """Replica ids, lightest first; equal work goes to the one with fewer requests in flight."""
    return sorted(estimates, key=lambda r: (estimates[r], tiebreak.get(r, 0), str(r)))
