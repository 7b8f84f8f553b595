"""The outcome ledger: every request the soak sends ends in exactly one class.

Classes (what a client can tell apart):

- ``ok``: 200 and the whole answer (a stream ended with ``[DONE]``);
- ``client_4xx``: 400/404/413 and the like (invalid bodies, over-long prompts);
- ``rejected``: 429 or 503 *with* ``Retry-After`` before any token (overload, a dead replica);
- ``stream_error``: a stream whose headers were 200 that ended with an in-band error event
  (the replica died under it: the clean way to fail once the headers went out);
- ``server_5xx``: any other 5xx (500, 502, 503 without Retry-After, ...);
- ``transport``: connection refused/reset, a stream cut without ``[DONE]``, the deadline;
- ``vanished``: the client itself left mid-stream (planned), so there is no server outcome.

``sent == sum(classes)`` is asserted: a request the ledger never closed is a lost one.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict, dataclass, field

CLASSES = ("ok", "client_4xx", "rejected", "stream_error", "server_5xx", "transport", "vanished")
FAILURES = ("stream_error", "server_5xx", "transport")  # a server-side failure the client saw


@dataclass
class Outcome:
    """One request: what was sent, when, how it ended, and who served it (when known)."""

    rid: int
    kind: str
    start: float  # time.monotonic()
    end: float | None = None
    cls: str | None = None
    status: int | None = None
    detail: str = ""
    ingress: str | None = None  # x-trail-ingress
    replica: str | None = None  # x-trail-replica
    expected_4xx: bool = False
    faults: list[str] = field(default_factory=list)  # fault windows it overlapped


@dataclass
class Ledger:
    """Open and close every request; the only place outcomes are counted."""

    t0: float = field(default_factory=time.monotonic)
    records: dict[int, Outcome] = field(default_factory=dict)
    _next: int = 0

    def open(self, kind: str, expected_4xx: bool = False) -> Outcome:
        self._next += 1
        out = Outcome(self._next, kind, time.monotonic(), expected_4xx=expected_4xx)
        self.records[out.rid] = out
        return out

    @staticmethod
    def close(out: Outcome, cls: str, status: int | None = None, detail: str = "") -> None:
        """Each request closes once: a second close would hide which ending was real."""
        assert cls in CLASSES, cls
        assert out.cls is None, f"request {out.rid} closed twice ({out.cls}, then {cls})"
        out.cls, out.status, out.detail, out.end = cls, status, detail[:200], time.monotonic()

    @property
    def sent(self) -> int:
        return len(self.records)

    def counts(self) -> Counter[str]:
        return Counter(r.cls or "unclosed" for r in self.records.values())

    def adds_up(self) -> bool:
        counts = self.counts()
        return counts.get("unclosed", 0) == 0 and self.sent == sum(counts[c] for c in CLASSES)

    def unexpected_accepts(self) -> list[Outcome]:
        """Invalid bodies that were not refused with a 4xx (the server accepted garbage)."""
        return [r for r in self.records.values() if r.expected_4xx and r.cls == "ok"]

    def unexpected_4xx(self) -> list[Outcome]:
        """Valid bodies refused with a 4xx."""
        return [r for r in self.records.values() if not r.expected_4xx and r.cls == "client_4xx"]

    def failures(self) -> list[Outcome]:
        return [r for r in self.records.values() if r.cls in FAILURES]

    def summary(self) -> dict:
        counts = self.counts()
        by_kind: dict[str, Counter[str]] = {}
        for r in self.records.values():
            by_kind.setdefault(r.kind, Counter())[r.cls or "unclosed"] += 1
        ok = [r for r in self.records.values() if r.cls == "ok"]
        return {
            "sent": self.sent,
            "ok_by_ingress": dict(Counter(r.ingress for r in ok if r.ingress)),
            "ok_by_replica": dict(Counter(r.replica for r in ok if r.replica)),
            "classes": {c: counts.get(c, 0) for c in (*CLASSES, "unclosed")},
            "adds_up": self.adds_up(),
            "statuses": dict(Counter(f"{r.cls} {r.status}" for r in self.records.values())),
            "by_kind": {k: dict(v) for k, v in sorted(by_kind.items())},
        }

    def failure_rows(self) -> list[dict]:
        rows = []
        for r in self.failures():
            row = asdict(r)
            row["start"] = round(r.start - self.t0, 2)
            row["end"] = round((r.end or r.start) - self.t0, 2)
            rows.append(row)
        return rows
