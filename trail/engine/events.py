"""Scheduler events (arrival, probe emission, preemption, finish, step) as JSONL lines.

The scheduler runs in vLLM's EngineCore process, out of reach of tests and tools in the
frontend process; a file is the simplest channel that works in-process and multiprocess alike.
Off unless `trail.dump_path` is set; the Redis store is the production channel.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import IO, Any

from trail.engine.tracking import Tracked


class EventLog:
    def __init__(self, path: str | None):
        self._file: IO[str] | None = None
        if path:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "a", buffering=1)  # noqa: SIM115 - lives with the scheduler

    @property
    def enabled(self) -> bool:
        return self._file is not None

    def _write(self, kind: str, t: Tracked, **fields: Any) -> None:
        if self._file is None:
            return
        s = t.length
        row = {"event": kind, "id": s.request_id, "t": time.monotonic(), "generated": s.generated}
        row.update(fields)
        self._file.write(json.dumps(row) + "\n")

    def step(
        self, prefill_tokens: int, decode_seqs: int, context_tokens: int, step_s: float
    ) -> None:
        """One engine step's shape and time: the trace `trail sim calibrate` fits."""
        if self._file is None:
            return
        row = {
            "event": "step",
            "prefill_tokens": prefill_tokens,
            "decode_seqs": decode_seqs,
            "context_tokens": context_tokens,
            "step_s": step_s,
        }
        self._file.write(json.dumps(row) + "\n")

    def probe_time(self, seconds: float) -> None:
        """Worker time one step's probe took (what `trail doctor` reports per step)."""
        if self._file is not None:
            self._file.write(json.dumps({"event": "probe_time", "probe_s": seconds}) + "\n")

    def arrival(self, t: Tracked) -> None:
        s = t.length
        self._write("arrival", t, initial_pred=s.initial_pred, true_total=s.true_total)

    def emission(self, t: Tracked, em: Any) -> None:
        self._write(
            "probe",
            t,
            at=em.generated,
            probs=em.probs,
            expected=t.length.refined_pred if em.probs is not None else None,
            vector=em.vector,
        )

    def admitted(self, t: Tracked, rank: float, lane: bool) -> None:
        """A request leaves the waiting queue (or keeps the decode slot it landed in) with this
        predicted remaining length: the waiting queue's order, scored later against the truth."""
        self._write("admitted", t, rank=rank, lane=lane)

    def preempted(self, t: Tracked, reason: str, recompute_tokens: int = 0) -> None:
        s = t.length
        self._write(
            "preempted", t, reason=reason, initial_pred=s.initial_pred, recompute=recompute_tokens
        )

    def finished(self, t: Tracked, n_output: int) -> None:
        self._write("finished", t, n_output=n_output, preemptions=t.length.preemptions)
