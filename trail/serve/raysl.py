"""TRAIL inside Ray Serve LLM (`ray.serve.llm.build_openai_app`): the server class it names.

Ray Serve LLM builds vLLM's AsyncLLM from `LLMConfig.engine_kwargs`; TRAIL's settings travel in
`engine_kwargs.hf_overrides.trail` (the carrier plain `vllm serve` uses, turned into the TRAIL
scheduler by our vLLM plugin, trail/engine/engine_args_hook.py). What the stock `LLMServer`
cannot do is publish predicted work: this subclass adds the replica's name, EngineLoad file and
Redis to the TRAIL settings before the engine starts, keeps the calls it is answering, and
returns ReplicaStats from `record_routing_stats`, the hook Ray's controller polls for the request
router (`deployment_config.request_router_config`: trail.serve.routers:LeastWorkRouter).

Used as `LLMConfig(server_cls="trail.serve.raysl:TrailLLMServer", ...)`
(deployments/raysl-cpu.yaml). The prompt predictor of our own app is not run here: the router
and the engine start from `default_prediction` (or a `trail_initial_pred` the client sent), capped
by max_tokens, and the probe refines from the first prefill on.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any

from ray.llm._internal.serve.core.server.llm_server import LLMServer
from ray.llm._internal.serve.engines.vllm.vllm_engine import VLLMEngine

from trail.engine.engine_args_hook import HF_KEY
from trail.engine.engine_config import lane_seats
from trail.engine.trail_config import TrailConfig
from trail.serve.llm_server import replica_name
from trail.serve.protocol import predicted_output
from trail.serve.replica_report import Inflight, ReplicaFacts, replica_stats

DEFAULT_PREDICTION = 256.0  # TrailConfig's default


class TrailVLLMEngine(VLLMEngine):
    """Ray's vLLM engine wrapper, fixed for vLLM 0.32: its app state names the tokenization
    handler `serving_tokenization` (Ray 2.60 looks for `openai_serving_tokenization`, so
    /tokenize and /detokenize would answer 'not supported')."""

    async def start(self) -> None:
        await super().start()
        if self._oai_serving_tokenization is None:
            self._oai_serving_tokenization = getattr(self._app_state, "serving_tokenization", None)


class TrailLLMServer(LLMServer):
    _default_engine_cls = TrailVLLMEngine

    async def start(self) -> None:
        started = time.time()
        self.trail_name = replica_name()
        load_dir = Path(tempfile.gettempdir()) / "trail-load"
        load_dir.mkdir(parents=True, exist_ok=True)
        self.load_path = load_dir / f"{self.trail_name}.json"
        self.inflight: dict[str, Inflight] = {}
        self.trail = await self._trail_settings()
        self.lane_seats = lane_seats(TrailConfig.model_validate(self.trail))
        _resolve_model_alias(self._llm_config)
        self._llm_config.update_engine_kwargs(hf_overrides={HF_KEY: self.trail})
        await super().start()
        self.ready_s = time.time() - started

    async def _trail_settings(self) -> dict[str, Any]:
        """The config's TRAIL settings, with this replica's name, load file and a Redis URL
        (unset: the cluster's embedded Redis, as in our own app; single node only)."""
        from trail.serve.redis_host import resolve_redis_url

        overrides = self._llm_config.engine_kwargs.get("hf_overrides") or {}
        if not isinstance(overrides, dict) or not isinstance(overrides.get(HF_KEY), dict):
            raise ValueError(
                "TrailLLMServer needs TRAIL settings in "
                f"engine_kwargs.hf_overrides.{HF_KEY} (a mapping of TrailConfig fields)"
            )
        trail = dict(overrides[HF_KEY])
        trail["redis_url"] = await asyncio.to_thread(resolve_redis_url, trail.get("redis_url"))
        return {**trail, "replica": self.trail_name, "load_path": str(self.load_path)}

    async def chat(self, request: Any, raw_request_info: Any = None) -> AsyncGenerator[Any, None]:
        key = self._accept(request)
        return self._tracked(
            key, await self._or_forget(key, super().chat, request, raw_request_info)
        )

    async def completions(
        self, request: Any, raw_request_info: Any = None
    ) -> AsyncGenerator[Any, None]:
        key = self._accept(request)
        call = super().completions
        return self._tracked(key, await self._or_forget(key, call, request, raw_request_info))

    def _accept(self, request: Any) -> str:
        """Count the call in this replica's work under the id the router reserved it with (the
        request's own id, before Ray stamps its Serve request id on it)."""
        key = str(request.request_id)
        decode = predicted_output(request, self._default_prediction())
        self.inflight[key] = Inflight(decode, decode, time.time())
        return key

    async def _or_forget(self, key: str, method: Any, *args: Any) -> Any:
        try:
            return await method(*args)
        except BaseException:
            self.inflight.pop(key, None)
            raise

    async def _tracked(self, key: str, stream: AsyncIterator[Any]) -> AsyncGenerator[Any, None]:
        """The answer as Ray produced it; the call stops counting when it ends."""
        try:
            async for item in stream:
                yield item
        finally:
            self.inflight.pop(key, None)

    def _default_prediction(self) -> float:
        return float(self.trail.get("default_prediction", DEFAULT_PREDICTION))

    async def record_routing_stats(self) -> dict[str, Any]:
        """Predicted remaining work for LeastWorkRouter (Ray's own stats, the KV-events
        endpoints, are kept beside it for a KV-aware router)."""
        if self.engine is None or getattr(self.engine, "_engine_client", None) is None:
            return {}
        client = self.engine._engine_client
        facts = ReplicaFacts(
            name=self.trail_name,
            load_path=self.load_path,
            max_num_seqs=self._decode_slots(client),
            engine_unfinished=client.get_num_unfinished_requests(),
            ready_s=self.ready_s if hasattr(self, "ready_s") else 0.0,
        )
        return {**self.engine.routing_stats(), **replica_stats(facts, self.inflight)}

    def _decode_slots(self, client: Any) -> int:
        """max_num_seqs as the user set it: vLLM's own holds the ranking lane's seats too."""
        return int(client.vllm_config.scheduler_config.max_num_seqs) - self.lane_seats


def _resolve_model_alias(llm_config: Any) -> None:
    """`model_source: smollm2` (or `tiny`) names the prepared local model, as in our own app's
    config; Ray would look it up on the Hugging Face hub. Ray caches the engine config it derived
    from the alias (in the driver, pickled along), so the cache is dropped."""
    from trail.serve.config import MODEL_ALIASES, resolve_model

    loading = llm_config.model_loading_config
    source = loading.model_source or loading.model_id
    if isinstance(source, str) and source in MODEL_ALIASES:
        loading.model_source = resolve_model(source)
        llm_config._engine_config = None
