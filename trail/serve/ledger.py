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

The other way round, stats taken before a request finished still list it (as `seen`) after the
router heard it complete: a *ghost*. Short requests finish within one stats period, so without
this an idle replica looks busy to the next request. The ledger keeps what it reserved for each
routed request until it completes, then for STALE_AFTER_S as a finished request, so the router
can take ghosts back out of the stats (`ghosts`).
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass, field

from trail.policy.replica_stats import ReplicaStats

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
    routed: dict[str, tuple[Hashable, Reservation]] = field(default_factory=dict)
    finished: dict[Hashable, dict[str, Reservation]] = field(default_factory=dict)

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
        res = Reservation(decode, prefill, time.time(), confirmed)
        self.by_replica.setdefault(replica, {})[request_id] = res
        self.replica_of[request_id] = replica
        if confirmed:
            self.routed[request_id] = (replica, res)

    def release(self, request_id: str) -> None:
        replica = self.replica_of.pop(request_id, None)
        if replica is not None:
            self.by_replica.get(replica, {}).pop(request_id, None)

    def complete(self, request_id: str) -> None:
        """The request finished: not pending any more, and a ghost wherever stats still list it."""
        self.release(request_id)
        replica, res = self.routed.pop(request_id, (None, None))
        if res is None:
            return
        now = time.time()
        done = self.finished.setdefault(replica, {})
        while done and next(iter(done.values())).at < now - STALE_AFTER_S:  # oldest first
            del done[next(iter(done))]
        done[request_id] = Reservation(res.decode, res.prefill, now)

    def ghosts(self, replica: Hashable, stats: ReplicaStats | None) -> list[Reservation]:
        """Finished requests that the replica's stats still count (taken before they ended)."""
        done = self.finished.get(replica, {})
        return [done[rid] for rid in (stats.seen if stats else ()) if rid in done]

    def acknowledge(self, replica: Hashable, stats: ReplicaStats | None) -> None:
        """Drop reservations the replica's stats already count, and expired ones (without
        stats, only tentative ones: nothing says when the replica last spoke)."""
        seen = set(stats.seen if stats else ())
        cutoff = (stats.ts if stats else 0.0) - STALE_AFTER_S
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

    def estimate(self, replica: Hashable, stats: ReplicaStats | None) -> float:
        """Published work plus what was dispatched since that publication."""
        self.acknowledge(replica, stats)
        return (stats.work_tokens if stats else 0.0) + self.unacknowledged(replica)

    def forget_except(self, live: set[Hashable]) -> None:
        """Drop everything about replicas that are gone. Without this, a dead replica's
        reservations and ghosts stayed in every ingress's ledger for good (trimming happens
        only when that replica finishes another request): found by the soak (ops/soak)."""
        for table in (self.by_replica, self.finished):
            for replica in [r for r in table if r not in live]:
                del table[replica]
        for rid in [rid for rid, r in self.replica_of.items() if r not in live]:
            del self.replica_of[rid]
        for rid in [rid for rid, (r, _) in self.routed.items() if r not in live]:
            del self.routed[rid]

    def sizes(self) -> dict[str, int]:
        """Entries per table: all bounded by the requests in flight (plus STALE_AFTER_S of
        finished ones), so a table that grows with the requests served is a leak."""
        return {
            "pending": len(self.replica_of),
            "routed": len(self.routed),
            "finished": sum(len(d) for d in self.finished.values()),
        }

    def __len__(self) -> int:
        return len(self.replica_of)
