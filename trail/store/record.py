"""The shape of one request's record, its decoding from Redis, and online accuracy over records.

Fields are optional because the writer is best-effort: a dropped ``arrival`` event leaves a
record without replica/prompt fields, and an unfinished request has no true length yet.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
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
    max_tokens: int | None = None
    initial_expected: float | None = None
    initial_dist: list[float] | None = None
    arrival_ts: float | None = None
    first_token_ts: float | None = None
    finish_ts: float | None = None
    true_length: int | None = None
    finish_reason: str | None = None
    probe_version: str | None = None  # the probe whose outputs made the refined predictions
    prompt_version: str | None = None  # the ingress's prompt head that made initial_expected
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


def online_accuracy(
    records: Iterable[RequestRecord | Mapping[str, Any]],
    train_lengths: Sequence[float] | None = None,
) -> dict[str, Any]:
    """MAE and ranking of initial and refined predictions vs the true length, over finished
    records, as `trail eval` reports them offline.

    Every prediction is first capped by what the request's max_tokens still allows. initial:
    per request (MAE, Kendall tau, pairwise ordering accuracy). refined: every trajectory point
    (pooled); ``refined_mae_per_request`` averages each request's own mean first, so long
    requests do not dominate. With `train_lengths`, the best constant beside them (the training
    median of the total, and of the remaining length at each point's step).
    """
    from trail.predict.accuracy import ConstantBaseline, kendall_tau, pairwise_accuracy

    initial: list[tuple[float, float]] = []  # (predicted, true)
    points: list[tuple[float, float, int, float]] = []  # (predicted, true, step, room)
    per_request: list[float] = []
    every = [_as_record(r) for r in records]
    finished = [r for r in every if r.true_length is not None]
    for record in finished:
        true, room = float(record.true_length or 0), float(record.max_tokens or float("inf"))
        if record.initial_expected is not None:
            initial.append((min(record.initial_expected, room), true))
        mine = [
            (min(p.expected_remaining, room - p.step), true - p.step, p.step, room - p.step)
            for p in record.trajectory
        ]
        points.extend(mine)
        if mine:
            per_request.append(sum(abs(a - b) for a, b, _, _ in mine) / len(mine))
    ini = np.array(initial, dtype=float).reshape(-1, 2)
    pts = np.array(points, dtype=float).reshape(-1, 4)
    out: dict[str, Any] = {
        "n_requests": len(finished),
        "n_points": len(pts),
        "skipped_unfinished": len(every) - len(finished),
        "initial_mae": _mae(ini[:, 0], ini[:, 1]),
        "initial_tau": kendall_tau(ini[:, 0], ini[:, 1]) if len(ini) > 1 else None,
        "initial_pairwise": pairwise_accuracy(ini[:, 0], ini[:, 1]) if len(ini) > 1 else None,
        "refined_mae": _mae(pts[:, 0], pts[:, 1]),
        "refined_tau": kendall_tau(pts[:, 0], pts[:, 1]) if len(pts) > 1 else None,
        "refined_mae_per_request": _mean(per_request),
    }
    if train_lengths is not None and finished:
        base = ConstantBaseline(np.asarray(train_lengths, dtype=float))
        rooms = np.array([float(r.max_tokens or np.inf) for r in finished])
        truths = np.array([float(r.true_length or 0) for r in finished])
        out["constant_initial_mae"] = _mae(np.minimum(base.at(np.zeros(len(rooms))), rooms), truths)
        const = np.minimum(base.at(pts[:, 2]), pts[:, 3])
        out["constant_refined_mae"] = _mae(const, pts[:, 1])
    return out


def _mae(pred: np.ndarray, true: np.ndarray) -> float | None:
    return float(np.mean(np.abs(pred - true))) if len(pred) else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None
