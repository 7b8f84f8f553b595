"""Read side of the prediction store: one record, many records, the most recently finished.

Reads are for the HTTP endpoint and the CLI, not the hot loop: they raise ``redis.RedisError``
when Redis is unreachable (the endpoint maps that to 503).
"""

from __future__ import annotations

from typing import Any

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from trail.store.keys import Keys
from trail.store.record import RequestRecord, decode_record


def make_client(url: str, timeout_s: float) -> redis.Redis:
    """A client whose failures surface quickly (a paused Redis must not hang a reader or the
    writer): callers do their own retrying."""
    return redis.Redis.from_url(
        url,
        socket_timeout=timeout_s,
        socket_connect_timeout=timeout_s,
        retry=Retry(NoBackoff(), 0),
        health_check_interval=0,
    )


class StoreReader:
    """Reads records written by :class:`trail.store.PredictionStore`."""

    def __init__(self, client: redis.Redis, *, key_prefix: str = "trail:req:") -> None:
        self.client = client
        self.keys = Keys(key_prefix)

    @classmethod
    def from_url(
        cls, url: str, *, key_prefix: str = "trail:req:", timeout_s: float = 2.0
    ) -> StoreReader:
        return cls(make_client(url, timeout_s), key_prefix=key_prefix)

    def get(self, request_id: str) -> dict[str, Any] | None:
        """Full record incl. trajectory; also accepts the id without vLLM's engine suffix."""
        record = self.get_record(request_id)
        return record.model_dump() if record is not None else None

    def get_record(self, request_id: str) -> RequestRecord | None:
        record = self._get_many([request_id])[0]
        if record is None:
            full_id = self.client.get(self.keys.alias(request_id))
            if full_id is not None:
                record = self._get_many([_text(full_id)])[0]
        return record

    def get_many(self, request_ids: list[str]) -> list[dict[str, Any] | None]:
        return [r.model_dump() if r else None for r in self._get_many(request_ids)]

    def recent(self, n: int) -> list[dict[str, Any]]:
        """The ``n`` most recently finished requests still held in Redis, newest first."""
        if n <= 0:
            return []
        raw_ids = self.client.zrevrange(self.keys.finished_index, 0, n - 1)
        ids = [_text(i) for i in raw_ids]
        return [r for r in self.get_many(ids) if r is not None]

    def _get_many(self, request_ids: list[str]) -> list[RequestRecord | None]:
        pipe = self.client.pipeline(transaction=False)
        for request_id in request_ids:
            record, trajectory, preemptions = self.keys.per_request(request_id)
            pipe.hgetall(record)
            pipe.lrange(trajectory, 0, -1)
            pipe.lrange(preemptions, 0, -1)
            pipe.ttl(record)
            pipe.ttl(trajectory)
        replies = pipe.execute()
        return [
            _decode(request_id, replies[5 * i : 5 * i + 5])
            for i, request_id in enumerate(request_ids)
        ]


def _text(value: Any) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _decode(request_id: str, replies: list[Any]) -> RequestRecord | None:
    fields, trajectory, preemptions, record_ttl, trajectory_ttl = replies
    ttl = record_ttl if record_ttl is not None and record_ttl >= 0 else trajectory_ttl
    return decode_record(request_id, fields, trajectory, preemptions, ttl)
