"""Engine-level load summary, published by the scheduler for the replica that hosts it.

The scheduler lives in vLLM's EngineCore process; the Serve replica needs its aggregate
predicted remaining work for routing. A small JSON file, replaced atomically at most every
`period_s`, is the cheapest channel that needs no change to vLLM's output protocol.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path


@dataclass
class EngineLoad:
    predicted_remaining_tokens: float  # sum over running + waiting requests
    prefill_tokens_pending: int  # prompt tokens not yet computed (waiting + partial prefills)
    running: int
    waiting: int
    ts: float  # time.time() when written
    kv_free_blocks: int = -1  # KV cache blocks free (incl. cached, evictable); -1: unknown
    kv_total_blocks: int = -1  # usable blocks (vLLM's null block excluded)
    preemptions: dict[str, int] = field(default_factory=dict)  # since start, by reason
    recomputed_tokens: dict[str, int] = field(default_factory=dict)  # likewise
    # what the slot-aware router reads (trail/policy/route.py)
    prefill_weight: float = 1.0  # cost of a prefill token / a decoding sequence's step (fitted)
    waiting_work: float = 0.0  # predicted decode tokens of the waiting requests
    soonest_free: float = 0.0  # predicted remaining of the running request nearest its end
    remaining_hist: list[float] = field(default_factory=list)  # counts per route.HIST_EDGES

    @property
    def work_tokens(self) -> float:
        """What the router balances: decode work left plus prefill still to do."""
        return self.predicted_remaining_tokens + self.prefill_tokens_pending


class LoadPublisher:
    def __init__(self, path: str | None, period_s: float = 0.1):
        self.path = Path(path) if path else None
        self.period_s = period_s
        self._last = -math.inf  # (time.monotonic() may be below period_s soon after boot)
        self._idle = False

    def maybe_publish(self, load_fn, *sinks, idle: bool = False) -> None:  # noqa: ANN001
        """At most every period_s: compute the load (() -> EngineLoad), write the file (if any),
        feed the sinks. The step where the engine becomes `idle` is always published, so the
        last publication never shows work that is gone."""
        now = time.monotonic()
        if now - self._last < self.period_s and not (idle and not self._idle):
            return
        self._last, self._idle = now, idle
        load = load_fn()
        if self.path is not None:
            write_load(self.path, load)
        for sink in sinks:
            sink(load)


def write_load(path: Path, load: EngineLoad) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(asdict(load)))
    os.replace(tmp, path)


def read_load(path: str | Path, max_age_s: float = 5.0) -> EngineLoad | None:
    """The last published load, or None if missing or older than max_age_s."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return None
    load = EngineLoad(**data)
    return load if time.time() - load.ts <= max_age_s else None
