"""The router's bookkeeping, free of Ray so it can be tested alone.

A replica's published stats lag by up to a stats period plus the controller's broadcast. Work the
router dispatched in that window is invisible to them, so a burst would all land on whichever
replica looked lightest. The ledger remembers each dispatched request's work until the replica's
published stats list the request as seen (it is then inside the published figure) or the
request completes.

A reservation made when a replica is *chosen* is tentative: Serve may fall through to another
replica (queue full) or drop the request, so it expires after TENTATIVE_S unless
`on_request_routed` confirms it. Reservations are indexed by replica, so a routing decision
touches only the candidates' own entries.
"""

from __future__ import annotations

import time
from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Any

STALE_AFTER_S = 10.0  # a confirmed reservation the stats never acknowledged (replica died)
TENTATIVE_S = 1.0  # a choice that was never confirmed as routed


@dataclass
class Reservation:
    decode: float  # predicted output tokens
    prefill: float  # prompt tokens
    at: float
    confirmed: bool = True

    @property
    def work(self) -> float:
        return self.decode + self.prefill


@dataclass
class WorkLedger:
    by_replica: dict[Hashable, dict[str, Reservation]] = field(default_factory=dict)
    replica_of: dict[str, Hashable] = field(default_factory=dict)

    def reserve(  # noqa: PLR0913
        self,
        request_id: str,
        replica: Hashable,
        decode: float,
        prefill: float = 0.0,
        confirmed: bool = True,
    ) -> None:
        """(Re)assign a request's work to a replica; a later call for the same id replaces it."""
        self.release(request_id)
        self.by_replica.setdefault(replica, {})[request_id] = Reservation(
            decode, prefill, time.time(), confirmed
        )
        self.replica_of[request_id] = replica

    def release(self, request_id: str) -> None:
        replica = self.replica_of.pop(request_id, None)
        if replica is not None:
            self.by_replica.get(replica, {}).pop(request_id, None)

    def acknowledge(self, replica: Hashable, stats: Mapping[str, Any]) -> None:
        """Drop reservations the replica's stats already count, and expired ones."""
        seen = set(stats.get("seen", ()))
        cutoff = float(stats.get("ts", 0.0)) - STALE_AFTER_S
        tentative_cutoff = time.time() - TENTATIVE_S
        mine = self.by_replica.get(replica, {})
        for rid, res in list(mine.items()):
            expired = res.at < (tentative_cutoff if not res.confirmed else cutoff)
            if rid in seen or expired:
                self.release(rid)

    def pending(self, replica: Hashable) -> list[Reservation]:
        return list(self.by_replica.get(replica, {}).values())

    def unacknowledged(self, replica: Hashable) -> float:
        return sum(r.work for r in self.pending(replica))

    def estimate(self, replica: Hashable, stats: Mapping[str, Any]) -> float:
        """Published work plus what was dispatched since that publication."""
        self.acknowledge(replica, stats)
        return float(stats.get("work_tokens", 0.0)) + self.unacknowledged(replica)

    def __len__(self) -> int:
        return len(self.replica_of)
