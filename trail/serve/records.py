"""The read side of the prediction store for the HTTP API (`GET /v1/trail/requests/{id}`).

A module of its own, imported at the top of the ingress: Ray pickles the ingress class, and a
helper defined after it in the same module was missing in the replica (NameError).
"""

from __future__ import annotations

import asyncio
from typing import Any

import redis

from trail.serve.errors import OpenAIError
from trail.store import StoreReader


async def read_record(redis_url: str | None, request_id: str) -> dict[str, Any]:
    """A request's stored predictions (404 when unknown, 503 when Redis is unreachable)."""
    if not redis_url:
        raise OpenAIError(503, "no prediction store configured")
    try:
        record = await asyncio.to_thread(StoreReader.from_url(redis_url).get, request_id)
    except redis.RedisError as err:
        raise OpenAIError(503, f"prediction store unreachable: {err}") from err
    if record is None:
        raise OpenAIError(404, f"no record for request {request_id}")
    return record
