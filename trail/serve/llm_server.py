"""LLMServer: one Serve replica hosting vLLM's AsyncLLM with the TRAIL scheduler.

It streams `Chunk`s back through the handle and publishes its predicted remaining work through
`record_routing_stats`, which the LeastWorkRouter reads as `replica.routing_stats`.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from trail.engine.engine_config import EngineConfig
from trail.engine.load import read_load
from trail.policy.route import remaining_hist
from trail.serve.config import ServeConfig
from trail.serve.protocol import Chunk, EngineRequest

logger = logging.getLogger("ray.serve")
LOAD_MAX_AGE_S = 2.0  # an older EngineLoad no longer describes a busy engine


@dataclass
class Inflight:
    work_tokens: float  # decode + prefill
    decode_tokens: float  # predicted output tokens
    accepted_at: float


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
        engine.trail = engine.trail.model_copy(update=update)
    return engine


class LLMServer:
    async def __init__(self, config: dict[str, Any]) -> None:
        self.cfg = ServeConfig.model_validate(config)
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
        logger.info("replica %s: engine ready in %.1fs", self.name, self.ready_s)

    @staticmethod
    def _start_engine(engine_cfg: EngineConfig) -> Any:
        engine_cfg.apply_env()  # before vLLM reads its environment
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.v1.engine.async_llm import AsyncLLM

        return AsyncLLM.from_engine_args(AsyncEngineArgs(**engine_cfg.engine_kwargs()))

    async def generate(self, req: EngineRequest) -> AsyncIterator[Chunk]:
        """Stream one request; if the caller goes away, the request is aborted in the engine."""
        self.inflight[req.request_id] = Inflight(req.work_tokens, req.predicted_tokens, time.time())
        finished = False
        try:
            yield Chunk(replica=self.name)
            n = 0
            async for out in self.engine.generate(
                {"prompt_token_ids": req.prompt_token_ids}, self._params(req), req.request_id
            ):
                comp = out.outputs[0]
                n += len(comp.token_ids)
                finished = out.finished
                yield Chunk(
                    text=comp.text,
                    completion_tokens=n,
                    finish_reason=comp.finish_reason if finished else None,
                )
        finally:
            self.inflight.pop(req.request_id, None)
            if not finished:
                await self.engine.abort(req.request_id)

    @staticmethod
    def _params(req: EngineRequest) -> Any:
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        extra = {"trail": req.trail} if req.trail else None
        return SamplingParams(**req.sampling, output_kind=RequestOutputKind.DELTA, extra_args=extra)

    def record_routing_stats(self) -> dict[str, Any]:
        """Predicted remaining work (engine snapshot + requests it does not show yet)."""
        stats = self.current_stats()
        self._write_stats(stats)
        return stats

    def current_stats(self) -> dict[str, Any]:
        now = time.time()
        last = read_load(self.load_path, max_age_s=float("inf"))  # the engine's last word
        fresh = last is not None and now - last.ts <= LOAD_MAX_AGE_S
        load = last if self.inflight and fresh else None
        if load is not None:
            unseen = [r for r in self.inflight.values() if r.accepted_at > load.ts]
            work = load.work_tokens + sum(r.work_tokens for r in unseen)
            running, waiting = load.running, load.waiting + len(unseen)
            waiting_work, soonest = load.waiting_work, load.soonest_free
            hist = np.asarray(load.remaining_hist or remaining_hist([]), dtype=float)
            prefill_weight = load.prefill_weight
        else:  # idle, or no fresh snapshot: our own predictions are the best figure
            unseen = list(self.inflight.values())
            work = sum(r.work_tokens for r in unseen)
            running, waiting, waiting_work, soonest = 0, len(unseen), 0.0, 0.0
            hist, prefill_weight = remaining_hist([]), None
        hist = hist + remaining_hist([r.decode_tokens for r in unseen])
        return {
            "replica": self.name,
            "pid": os.getpid(),
            "work_tokens": float(work),
            "running": running,
            "waiting": waiting,
            "inflight": len(self.inflight),
            # the slot-aware router's inputs (trail/policy/route.py)
            "max_num_seqs": self.cfg.engine.max_num_seqs,
            "waiting_work": float(waiting_work + sum(r.decode_tokens for r in unseen)),
            "prefill_pending": float(
                (load.prefill_tokens_pending if load is not None else 0)
                + sum(r.work_tokens - r.decode_tokens for r in unseen)
            ),
            "soonest_free": float(soonest),
            "remaining_hist": hist.tolist(),
            "prefill_weight": prefill_weight,
            "engine_unfinished": self.engine.get_num_unfinished_requests(),
            # the scheduler's last publication (it always publishes the step it went idle)
            "engine_running": last.running if last else None,
            "engine_waiting": last.waiting if last else None,
            "kv_free_blocks": last.kv_free_blocks if last else None,
            "kv_total_blocks": last.kv_total_blocks if last else None,
            "engine_load_ts": last.ts if last else None,
            "seen": list(self.inflight),
            "ready_s": round(self.ready_s, 2),
            "ts": now,
        }

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
