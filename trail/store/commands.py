"""Turn a batch of queued events into one Redis pipeline (runs on the writer thread only).

Encoding happens here, not in the writers, so the scheduling loop only appends tuples. Step
points of one request within a batch go out as a single RPUSH; every touched key gets its TTL
refreshed once per batch, so a record whose ``arrival`` was dropped still expires.
"""

from __future__ import annotations

import json
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Any

from trail.store.keys import Keys, strip_engine_suffix

# (kind, request_id, payload); kind is one of trail.metrics.definitions.STORE_EVENT_KINDS
Event = tuple[str, str, dict[str, Any]]


@dataclass
class BatchPlan:
    """What a batch will write, and what could not be encoded."""

    written: Counter[str]
    invalid: int


def _floats(values: Any) -> list[float]:
    seq = values.tolist() if hasattr(values, "tolist") else values
    return [float(v) for v in seq]


def _arrival_fields(request_id: str, p: dict[str, Any]) -> dict[str, str]:
    fields = {
        "request_id": request_id,
        "replica": str(p["replica"]),
        "policy": str(p["policy"]),
        "prompt_tokens": str(int(p["prompt_tokens"])),
        "prompt_hash": str(p["prompt_hash"]),
        "initial_expected": repr(float(p["initial_expected"])),
        "arrival_ts": repr(float(p["ts"])),
    }
    if p.get("max_tokens") is not None:
        fields["max_tokens"] = str(int(p["max_tokens"]))
    if p.get("prompt_version"):
        fields["prompt_version"] = str(p["prompt_version"])
    if p.get("initial_dist") is not None:
        fields["initial_dist"] = json.dumps(_floats(p["initial_dist"]))
    return fields


def _step_point(p: dict[str, Any]) -> str:
    point: list[Any] = [int(p["step"]), float(p["expected_remaining"])]
    if p.get("dist") is not None:
        point.append(_floats(p["dist"]))
    return json.dumps(point)


class BatchEncoder:
    """Appends the commands for a batch of events to a (non-transactional) pipeline."""

    def __init__(self, keys: Keys, ttl_s: int, index_size: int) -> None:
        self.keys = keys
        self.ttl_s = ttl_s
        self.index_size = index_size

    def encode(self, pipe: Any, events: list[Event]) -> BatchPlan:
        written: Counter[str] = Counter()
        invalid = 0
        points: dict[str, list[str]] = defaultdict(list)
        touched: dict[str, None] = {}
        finished = False
        for kind, request_id, payload in events:
            try:
                if kind == "step":
                    points[request_id].append(_step_point(payload))
                else:
                    finished |= self._encode_one(pipe, kind, request_id, payload)
            except (KeyError, TypeError, ValueError):
                invalid += 1
                continue
            written[kind] += 1
            touched[request_id] = None
        for request_id, values in points.items():
            pipe.rpush(self.keys.trajectory(request_id), *values)
        self._refresh_ttls(pipe, touched, finished)
        return BatchPlan(written=written, invalid=invalid)

    def _encode_one(self, pipe: Any, kind: str, request_id: str, p: dict[str, Any]) -> bool:
        record = self.keys.record(request_id)
        if kind == "arrival":
            pipe.hset(record, mapping=_arrival_fields(request_id, p))
            base = strip_engine_suffix(request_id)
            if base is not None:
                pipe.set(self.keys.alias(base), request_id, ex=self.ttl_s)
        elif kind == "preempted":
            entry = {"reason": str(p["reason"]), "step": int(p["step"]), "ts": float(p["ts"])}
            pipe.rpush(self.keys.preemptions(request_id), json.dumps(entry))
            pipe.hincrby(record, "n_preemptions", 1)
        elif kind == "first_token":
            pipe.hsetnx(record, "first_token_ts", repr(float(p["ts"])))
        elif kind == "finished":
            fields = {
                "true_length": str(int(p["true_length"])),
                "finish_reason": str(p["finish_reason"]),
                "finish_ts": repr(float(p["ts"])),
            }
            if p.get("probe_version"):
                fields["probe_version"] = str(p["probe_version"])
            pipe.hset(record, mapping=fields)
            pipe.zadd(self.keys.finished_index, {request_id: float(p["ts"])})
            return True
        else:
            raise ValueError(f"unknown event kind {kind!r}")
        return False

    def _refresh_ttls(self, pipe: Any, touched: dict[str, None], finished: bool) -> None:
        for request_id in touched:
            for key in self.keys.per_request(request_id):
                pipe.expire(key, self.ttl_s)
        if finished:
            index = self.keys.finished_index
            pipe.zremrangebyscore(index, "-inf", time.time() - self.ttl_s)
            pipe.zremrangebyrank(index, 0, -(self.index_size + 1))
            pipe.expire(index, self.ttl_s)
