"""What a serving replica publishes about itself for the router: one typed record.

The replica (trail/serve/llm_server.py) builds it, Ray Serve carries it to the router as a plain
dict (`record_routing_stats` -> `RunningReplica.routing_stats`), and the router
(trail/serve/routers.py) parses it back. A name is declared once, here, so a renamed or dropped
field fails at the parse instead of reading as zero work; the replica's stats file on disk
(tools and tests) is the same dict.

Pure (no framework imports), like the rest of trail.policy.
"""

from __future__ import annotations

import types
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, Union, get_args, get_origin, get_type_hints

from trail.policy.route import HIST_VALUES


class ReplicaStatsError(ValueError):
    """Stats this version cannot read: a field missing, unknown or of the wrong type."""


@dataclass(frozen=True)
class ReplicaStats:
    """One replica's load as of `ts`. The routing inputs (trail/policy/route.py) come first;
    the rest is for people and tests watching the replica."""

    replica: str  # Serve's replica id (the router's metric label)
    pid: int
    work_tokens: float  # predicted decode + prefill tokens left, running + waiting
    running: int
    waiting: int  # incl. requests accepted after the engine's last snapshot
    inflight: int  # calls this replica is answering
    max_num_seqs: int  # the engine's batch slots
    waiting_work: float  # predicted decode tokens of waiting requests
    prefill_pending: float  # prompt tokens still to prefill
    soonest_free: float  # predicted remaining of the running request nearest its end
    remaining_hist: tuple[float, ...]  # counts per route.HIST_EDGES bucket
    prefill_weight: float | None  # the engine's fitted prefill cost; None until it has one
    engine_unfinished: int  # what vLLM's AsyncLLM still holds
    # the scheduler's last publication (trail/engine/load.py); None before its first
    engine_running: int | None
    engine_waiting: int | None
    kv_free_blocks: int | None
    kv_total_blocks: int | None
    engine_load_ts: float | None
    seen: tuple[str, ...]  # ids of the requests inside these figures (the router's ledger)
    ready_s: float  # engine start-up time
    probe_version: str | None
    reload_error: str | None
    ts: float  # time.time() when taken

    def __post_init__(self) -> None:
        """Check every field against its annotation (ints pass as floats, lists as tuples), so
        a record that exists is one the router can read, on either side of the wire."""
        for name, kind in _FIELD_TYPES.items():
            object.__setattr__(self, name, _checked(name, getattr(self, name), kind))
        if len(self.remaining_hist) != len(HIST_VALUES):
            raise ReplicaStatsError(
                f"remaining_hist: {len(HIST_VALUES)} buckets expected (route.HIST_EDGES), "
                f"got {len(self.remaining_hist)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """The wire form: a JSON-ready dict (Ray Serve ships routing stats as a dict)."""
        return {
            f.name: list(v) if isinstance(v := getattr(self, f.name), tuple) else v
            for f in fields(self)
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ReplicaStats:
        """Parse the wire form; a missing or unknown key or a wrong type raises
        ReplicaStatsError (a replica of another version, most likely)."""
        if not isinstance(data, Mapping):
            raise ReplicaStatsError(f"replica stats must be a mapping, got {type(data).__name__}")
        missing = sorted(_FIELD_TYPES.keys() - data.keys())
        unknown = sorted(str(k) for k in data.keys() - _FIELD_TYPES.keys())
        if missing or unknown:
            raise ReplicaStatsError(f"replica stats: missing {missing}, unknown {unknown}")
        return cls(**data)


_FIELD_TYPES: dict[str, Any] = get_type_hints(ReplicaStats)


def _checked(name: str, value: Any, kind: Any) -> Any:
    """`value` as `kind` (int, float, str, X | None, tuple[X, ...]), or ReplicaStatsError."""
    origin = get_origin(kind)
    if origin in (Union, types.UnionType):
        if value is None:
            return None
        (inner,) = (a for a in get_args(kind) if a is not type(None))
        return _checked(name, value, inner)
    if origin is tuple and isinstance(value, list | tuple):
        item = get_args(kind)[0]
        return tuple(_checked(f"{name}[{i}]", v, item) for i, v in enumerate(value))
    if kind is float and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if kind in (int, str) and isinstance(value, kind) and not isinstance(value, bool):
        return value
    want = getattr(kind, "__name__", str(kind))
    raise ReplicaStatsError(f"{name}: {want} expected, got {type(value).__name__} {value!r}")
