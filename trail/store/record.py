"""The shape of one request's record, its decoding from Redis, and online accuracy over records.

Fields are optional because the writer is best-effort: a dropped ``arrival`` event leaves a
record without replica/prompt fields, and an unfinished request has no true length yet.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field


class TrajectoryPoint(BaseModel):
    """A refined prediction made after ``step`` output tokens had been generated."""

    step: int
    expected_remaining: float
    dist: list[float] | None = None


class Preemption(BaseModel):
    reason: str
    step: int
    ts: float


class RequestRecord(BaseModel):
    """What ``PredictionStore.get`` returns (as a dict) and ``GET /v1/trail/requests/{id}`` serves."""

    request_id: str
    replica: str | None = None
    policy: str | None = None
    prompt_tokens: int | None = None
    prompt_hash: str | None = None
    initial_expected: float | None = None
    initial_dist: list[float] | None = None
    arrival_ts: float | None = None
    first_token_ts: float | None = None
    finish_ts: float | None = None
    true_length: int | None = None
    finish_reason: str | None = None
    n_preemptions: int = 0
    trajectory: list[TrajectoryPoint] = Field(default_factory=list)
    preemptions: list[Preemption] = Field(default_factory=list)
    ttl_s: int | None = None


_JSON_FIELDS = ("initial_dist",)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _decode_hash(raw: Mapping[Any, Any]) -> dict[str, Any]:
    fields = {_text(k): _text(v) for k, v in raw.items()}
    for name in _JSON_FIELDS:
        if name in fields:
            fields[name] = json.loads(fields[name])
    return fields


def _decode_point(raw: bytes | str) -> TrajectoryPoint:
    values = json.loads(raw)
    dist = values[2] if len(values) > 2 else None
    return TrajectoryPoint(step=values[0], expected_remaining=values[1], dist=dist)


def decode_record(
    request_id: str,
    fields: Mapping[Any, Any],
    trajectory: Sequence[bytes | str],
    preemptions: Sequence[bytes | str],
    ttl_s: int | None,
) -> RequestRecord | None:
    """Build a record from the raw replies of HGETALL, LRANGE traj, LRANGE preempt, TTL."""
    if not fields and not trajectory and not preemptions:
        return None
    data = _decode_hash(fields)
    data["request_id"] = data.get("request_id", request_id)
    data["trajectory"] = [_decode_point(p) for p in trajectory]
    data["preemptions"] = [Preemption.model_validate_json(p) for p in preemptions]
    data["ttl_s"] = ttl_s if ttl_s is not None and ttl_s >= 0 else None
    return RequestRecord.model_validate(data)


def _as_record(record: RequestRecord | Mapping[str, Any]) -> RequestRecord:
    return record if isinstance(record, RequestRecord) else RequestRecord.model_validate(record)


def online_accuracy(records: Iterable[RequestRecord | Mapping[str, Any]]) -> dict[str, Any]:
    """MAE of initial and refined predictions vs the true length, over finished records.

    initial: |initial_expected - true_length| per request. refined: |expected_remaining -
    (true_length - step)| over every trajectory point (pooled); ``refined_mae_per_request``
    averages each request's own mean first, so long requests do not dominate.
    """
    initial: list[float] = []
    refined: list[float] = []
    per_request: list[float] = []
    finished = skipped = 0
    for record in map(_as_record, records):
        if record.true_length is None:
            skipped += 1
            continue
        finished += 1
        if record.initial_expected is not None:
            initial.append(abs(record.initial_expected - record.true_length))
        errors = [
            abs(p.expected_remaining - (record.true_length - p.step)) for p in record.trajectory
        ]
        refined.extend(errors)
        if errors:
            per_request.append(sum(errors) / len(errors))
    return {
        "n_requests": finished,
        "n_points": len(refined),
        "skipped_unfinished": skipped,
        "initial_mae": _mean(initial),
        "refined_mae": _mean(refined),
        "refined_mae_per_request": _mean(per_request),
    }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
