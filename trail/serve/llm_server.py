"""LLMServer: one Serve replica hosting vLLM's AsyncLLM with the TRAIL scheduler.

It answers OpenAI calls through vLLM's own serving layer (trail/serve/openai_layer.py), streams
the answer back through the handle, and publishes its predicted remaining work through
`record_routing_stats`, which the LeastWorkRouter reads as `replica.routing_stats`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import aclosing
from pathlib import Path
from typing import Any

from trail.engine.engine_config import EngineConfig, start_async_engine
from trail.serve.capture import ServedCapture
from trail.serve.config import LiveConfig, ServeConfig
from trail.serve.openai_layer import answer, build_state, frontend_args
from trail.serve.protocol import GENERATES, Accepted, OpenAICall, Reply
from trail.serve.replica_report import Inflight, ReplicaFacts, replica_stats
from trail.serve.sources import check_sources
from trail.serve.tracked_engine import TrackedEngine

logger = logging.getLogger("ray.serve")


def replica_name() -> str:
    """The Serve replica id (matches the router's metric label), or a random one outside Serve."""
    try:
        from ray import serve

        return serve.get_replica_context().replica_id.unique_id
    except Exception:
        return uuid.uuid4().hex[:8]


def engine_config_for_replica(cfg: ServeConfig, name: str, load_path: Path) -> EngineConfig:
    """The engine config with this replica's name (metric label, record field), load file and
    Redis."""
    engine = cfg.engine.model_copy(deep=True)
    if engine.trail is not None:
        update: dict[str, Any] = {"load_path": str(load_path), "replica": name}
        if cfg.redis_url:
            update["redis_url"] = cfg.redis_url
        if cfg.capture.fraction > 0:
            update["capture_dir"] = cfg.capture_dir()
            update["capture_quota_mb"] = cfg.capture.quota_mb
            update["capture_queue_rows"] = cfg.capture.queue_rows
        engine.trail = engine.trail.model_copy(update=update)
    return engine


def _started_probe(cfg: ServeConfig) -> tuple[str | None, Any]:
    """(path, ProbeBundle) the engine started with, if its policy runs a probe."""
    trail = cfg.engine.trail
    path = trail.resolved_probe_path() if trail is not None else None
    if path is None:
        return None, None
    from trail.predict.probe import ProbeBundle

    return str(path), ProbeBundle.load(path)


class LLMServer:
    async def __init__(self, config: dict[str, Any]) -> None:
        self.cfg = ServeConfig.model_validate(config)
        check_sources(self.cfg)
        self.name = replica_name()
        load_dir = Path(self.cfg.load_dir or Path(tempfile.gettempdir()) / "trail-load")
        load_dir.mkdir(parents=True, exist_ok=True)
        self.load_path = load_dir / f"{self.name}.json"
        self.stats_path = load_dir / f"{self.name}.replica.json"
        self.inflight: dict[str, Inflight] = {}
        self.started_at = time.time()
        self.engine = self._start_engine(
            engine_config_for_replica(self.cfg, self.name, self.load_path)
        )
        self.ready_s = time.time() - self.started_at
        self.capture = ServedCapture.from_config(self.cfg, self.name)
        self.probe_path, self.probe = _started_probe(self.cfg)
        args = frontend_args(
            self.cfg.engine.model, self.cfg.served_model_name, self.cfg.openai_args
        )
        self.tracked = TrackedEngine(self.engine, self.capture, lambda: self.probe_version)
        self.openai_state = await build_state(self.tracked, args)
        self.reload_error: str | None = None
        if self.cfg.probe_watch and self.probe is not None:
            watch = self._watch_probe(self.cfg.probe_watch, self.cfg.probe_watch_s)
            self._watcher = asyncio.get_running_loop().create_task(watch)
        logger.info("replica %s: engine ready in %.1fs", self.name, self.ready_s)

    async def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Ray Serve's in-place update (`live` in a declarative deploy): swap the probe."""
        live = LiveConfig.model_validate(user_config or {})
        if live.probe_path is not None and live.probe_path != self.probe_path:
            await self._swap_probe(live.probe_path)

    async def _watch_probe(self, path: str, every_s: float) -> None:
        """Poll `path`; a probe whose weights differ from the running one is swapped in. A
        version that failed (other bins or layer, a broken file) is not retried until the
        weights at `path` change again."""
        from trail.predict.probe import weights_version

        refused: str | None = None
        while True:
            await asyncio.sleep(every_s)
            try:
                version = weights_version(Path(path) / "probe.pt")
            except OSError:  # not there (yet), or being re-pointed
                continue
            if version not in (self.probe_version, refused) and not await self._swap_probe(path):
                refused = version

    async def _swap_probe(self, path: str) -> bool:
        """Swap the engine's probe between two steps; on any failure keep the old one (raising
        in reconfigure would make Serve replace the replica, dropping its requests)."""
        from trail.engine.reload import reload_probe

        try:
            self.probe = await reload_probe(self.engine, path, self.probe)
        except Exception as exc:  # noqa: BLE001 - any refusal keeps serving the old probe
            self.reload_error = f"{path}: {exc}"
            logger.error("replica %s: probe reload refused: %s", self.name, self.reload_error)
            return False
        self.probe_path, self.reload_error = path, None
        logger.info("replica %s: probe %s from %s", self.name, self.probe_version, path)
        return True

    @property
    def probe_version(self) -> str | None:
        return None if self.probe is None else self.probe.version

    @staticmethod
    def _start_engine(engine_cfg: EngineConfig) -> Any:
        return start_async_engine(engine_cfg)

    async def openai(self, call: OpenAICall) -> AsyncIterator[Accepted | Reply | str]:
        """Answer one OpenAI call through vLLM's handler. The first item says which replica
        took it; if the caller goes away, the generation is aborted in the engine."""
        if call.route in GENERATES:
            self.inflight[call.request_id] = Inflight(
                call.work_tokens, call.predicted_tokens, time.time()
            )
        try:
            yield Accepted(self.name)
            async with aclosing(answer(self.openai_state, call, self.tracked)) as items:
                async for item in items:
                    yield item
        finally:
            self.inflight.pop(call.request_id, None)
            left = await self.tracked.abort_left_behind(call.engine_ids)
            if left:
                logger.info("aborted %s, left behind by a cancelled call", left)

    def record_routing_stats(self) -> dict[str, Any]:
        """Predicted remaining work (engine snapshot + requests it does not show yet)."""
        stats = self.current_stats()
        self._write_stats(stats)
        return stats

    def current_stats(self) -> dict[str, Any]:
        """This replica's ReplicaStats, in the wire form Serve carries to the router."""
        facts = ReplicaFacts(
            name=self.name,
            load_path=self.load_path,
            max_num_seqs=self.cfg.engine.max_num_seqs,
            engine_unfinished=self.engine.get_num_unfinished_requests(),
            ready_s=self.ready_s,
            probe_version=self.probe_version,
            reload_error=self.reload_error,
        )
        return replica_stats(facts, self.inflight)

    def _write_stats(self, stats: dict[str, Any]) -> None:
        """The same stats on disk, for tools and tests that cannot pick a replica by handle."""
        tmp = self.stats_path.with_name(f".{self.stats_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(stats))
        os.replace(tmp, self.stats_path)

    async def check_health(self) -> None:
        if self.engine.errored:
            raise RuntimeError(f"engine dead: {self.engine.dead_error}")

    def __del__(self) -> None:
        engine = getattr(self, "engine", None)
        if engine is not None:
            engine.shutdown()
