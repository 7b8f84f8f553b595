"""PredictionStore: a bounded, non-blocking, batched writer of prediction records to Redis.

The scheduler calls the event methods on its hot loop, so they only append a tuple to a deque
(or count a drop) and return in about a microsecond; they never touch the network and never
raise. A daemon thread drains the deque every ``flush_interval_s`` through pipelines. When a
round trip fails, that batch and whatever is queued are dropped and counted, writers drop new
events while Redis is known to be down, and the thread probes Redis with exponential backoff so
writing resumes by itself once Redis is back.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import weakref
from collections import deque
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from trail.metrics import definitions as m
from trail.store.commands import BatchEncoder, Event
from trail.store.reader import StoreReader, make_client

log = logging.getLogger(__name__)

BACKOFF_MIN_S = 0.05
BACKOFF_MAX_S = 2.0


class PredictionStore(StoreReader):
    """Bounded, non-blocking, batched writer of per-request prediction records to Redis."""

    def __init__(
        self,
        url: str,
        *,
        ttl_s: int = 86400,
        queue_size: int = 10000,
        flush_interval_s: float = 0.05,
        store_distributions: bool = False,
        key_prefix: str = "trail:req:",
        max_batch: int = 2000,
        socket_timeout_s: float = 1.0,
        index_size: int = 100_000,
    ) -> None:
        super().__init__(make_client(url, socket_timeout_s), key_prefix=key_prefix)
        self.url = url
        self.store_distributions = store_distributions
        self._encoder = BatchEncoder(self.keys, ttl_s=ttl_s, index_size=index_size)
        self._queue: deque[Event] = deque()
        self._queue_size = queue_size
        self._flush_interval_s = flush_interval_s
        self._max_batch = max_batch
        self._healthy = True
        self._rejecting = False
        self._busy = False
        self._closed = False
        self._wake = threading.Event()
        self._thread = threading.Thread(target=self._run, name="trail-store-writer", daemon=True)
        _touch_counters()
        self._thread.start()
        atexit.register(_close_if_alive, weakref.ref(self))

    # ---- writers (hot path) ---------------------------------------------------------------
    def arrival(
        self,
        request_id: str,
        *,
        replica: str,
        policy: str,
        prompt_tokens: int,
        prompt_hash: str,
        initial_dist: list[float] | None,
        initial_expected: float,
        ts: float,
        max_tokens: int | None = None,
        prompt_version: str | None = None,
    ) -> None:
        payload = {
            "prompt_version": prompt_version,
            "max_tokens": max_tokens,
            "replica": replica,
            "policy": policy,
            "prompt_tokens": prompt_tokens,
            "prompt_hash": prompt_hash,
            "initial_dist": list(initial_dist) if initial_dist is not None else None,
            "initial_expected": initial_expected,
            "ts": ts,
        }
        self._put(("arrival", request_id, payload))

    def step(
        self,
        request_id: str,
        *,
        step: int,
        expected_remaining: float,
        dist: list[float] | None = None,
    ) -> None:
        keep = list(dist) if dist is not None and self.store_distributions else None
        self._put(
            (
                "step",
                request_id,
                {"step": step, "expected_remaining": expected_remaining, "dist": keep},
            )
        )

    def preempted(self, request_id: str, *, reason: str, step: int, ts: float) -> None:
        self._put(("preempted", request_id, {"reason": reason, "step": step, "ts": ts}))

    def first_token(self, request_id: str, *, ts: float) -> None:
        self._put(("first_token", request_id, {"ts": ts}))

    def finished(
        self,
        request_id: str,
        *,
        true_length: int,
        finish_reason: str,
        ts: float,
        probe_version: str | None = None,
    ) -> None:
        payload = {"true_length": true_length, "finish_reason": finish_reason, "ts": ts}
        if probe_version is not None:
            payload["probe_version"] = probe_version
        self._put(("finished", request_id, payload))

    def _put(self, event: Event) -> None:
        try:
            if not self._healthy or self._closed:
                m.STORE_DROPPED.labels(reason="redis_down").inc()
            elif len(self._queue) >= self._queue_size:
                m.STORE_DROPPED.labels(reason="queue_full").inc()
            else:
                self._queue.append(event)
        except Exception:  # a writer must never raise into the scheduling loop
            pass

    # ---- lifecycle ------------------------------------------------------------------------
    @property
    def healthy(self) -> bool:
        """Whether the last Redis round trip succeeded."""
        return self._healthy

    def queued(self) -> int:
        return len(self._queue)

    def flush(self, timeout_s: float = 5.0) -> bool:
        """Wait until everything queued so far is handled; True if it was written (Redis up)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self._queue and not self._busy:
                return self._healthy
            self._wake.set()
            time.sleep(0.002)
        return False

    def close(self) -> None:
        """Flush what is queued (briefly), stop the thread, release connections."""
        if self._closed:
            return
        self.flush(timeout_s=2.0)
        self._closed = True
        self._wake.set()
        self._thread.join(timeout=3.0)
        with contextlib.suppress(Exception):
            self.client.close()

    # ---- writer thread --------------------------------------------------------------------
    def _run(self) -> None:
        backoff = BACKOFF_MIN_S
        while not self._closed:
            self._wake.wait(self._flush_interval_s if self._healthy else backoff)
            self._wake.clear()
            if not self._healthy:
                backoff = BACKOFF_MIN_S if self._probe() else min(backoff * 2, BACKOFF_MAX_S)
                continue
            self._drain()

    def _probe(self) -> bool:
        try:
            self.client.ping()
        except Exception:
            return False
        log.warning(
            "prediction store: Redis at %s is reachable again; writes resume", redact(self.url)
        )
        self._healthy = True
        return True

    def _drain(self) -> None:
        self._busy = True
        try:
            while self._queue and self._healthy:
                batch = [
                    self._queue.popleft() for _ in range(min(self._max_batch, len(self._queue)))
                ]
                self._write(batch)
        finally:
            m.STORE_QUEUE_EVENTS.set(len(self._queue))
            self._busy = False

    def _write(self, batch: list[Event]) -> None:
        started = time.perf_counter()
        pipe = self.client.pipeline(transaction=False)
        plan = self._encoder.encode(pipe, batch)
        if plan.invalid:
            m.STORE_DROPPED.labels(reason="invalid").inc(plan.invalid)
        try:
            replies = pipe.execute(raise_on_error=False)
        except Exception as exc:
            self._mark_down(exc, failed=sum(plan.written.values()))
            return
        self._count_rejected(replies)
        m.STORE_FLUSH_SECONDS.observe(time.perf_counter() - started)
        for kind, count in plan.written.items():
            m.STORE_WRITES.labels(kind=kind).inc(count)

    def _count_rejected(self, replies: list[Any]) -> None:
        """Commands Redis answered with an error (OOM under `maxmemory` with `noeviction`, a
        read-only replica, ...): the connection is fine, so nothing raised, but those writes
        are lost — counted and logged (once until a batch goes through clean), never silent."""
        errors = [r for r in replies if isinstance(r, Exception)]
        if not errors:
            self._rejecting = False
            return
        m.STORE_DROPPED.labels(reason="rejected").inc(len(errors))
        if not self._rejecting:
            log.warning(
                "prediction store: Redis at %s rejected %d of %d writes (%s); dropping them",
                redact(self.url),
                len(errors),
                len(replies),
                errors[0],
            )
        self._rejecting = True

    def _mark_down(self, exc: Exception, failed: int) -> None:
        queued = len(self._queue)
        self._queue.clear()
        self._healthy = False
        m.STORE_DROPPED.labels(reason="redis_error").inc(failed)
        if queued:
            m.STORE_DROPPED.labels(reason="redis_down").inc(queued)
        log.warning(
            "prediction store: Redis at %s failed (%s); dropping events", redact(self.url), exc
        )


def _close_if_alive(ref: weakref.ReferenceType[PredictionStore]) -> None:
    store = ref()
    if store is not None:
        with contextlib.suppress(Exception):
            store.close()


def _touch_counters() -> None:
    """Zero-valued write/drop series per label, so a first drop is a rate, not a new series."""
    for kind in m.STORE_EVENT_KINDS:
        m.STORE_WRITES.labels(kind=kind)
    for reason in m.STORE_DROP_REASONS:
        m.STORE_DROPPED.labels(reason=reason)


def redact(url: str) -> str:
    """The URL without its password, for logs (redis://user:secret@host -> redis://user:***@host)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}{port}"))
