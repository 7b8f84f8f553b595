"""The ingress: the OpenAI HTTP API in front of the LLM replicas.

Requests are validated by vLLM's own protocol models and exception handlers (the same 400s as
`vllm serve`); the ingress adds what only it can do before a replica is chosen — auth and body
limits (trail/serve/guard.py), overload answers, the prompt prediction the router needs — then
forwards vLLM's request object through a streaming DeploymentHandle, whose RequestRouter picks
the replica. The replica answers through vLLM's serving classes (trail/serve/openai_layer.py);
its JSON or SSE goes back to the client as is. A vanished client cancels the handle call, which
aborts the request in its engine.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import pickle
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from http import HTTPStatus
from typing import Any

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator
from starlette.exceptions import HTTPException as StarletteHTTPException
from vllm.entrypoints.openai.chat_completion.protocol import ChatCompletionRequest
from vllm.entrypoints.openai.completion.protocol import CompletionRequest
from vllm.entrypoints.serve.exception_handling.handlers.http import http_exception_handler
from vllm.entrypoints.serve.exception_handling.register import init_exception_handler
from vllm.entrypoints.serve.tokenize.protocol import DetokenizeRequest, TokenizeRequest
from vllm.entrypoints.serve.utils.api_utils import validate_json_request

from trail.serve.capture import ServedCapture
from trail.serve.config import ServeConfig
from trail.serve.errors import OpenAIError, overloaded, replica_failed
from trail.serve.guard import Guard, configure
from trail.serve.prediction import InitialPredictor, watch_head
from trail.serve.protocol import Accepted, OpenAICall, Reply, Route
from trail.serve.records import read_record
from trail.serve.request_facts import (
    RequestFacts,
    TrailExtensions,
    chat_facts,
    completion_facts,
    drop_unknown_fields,
    trail_extensions,
)

logger = logging.getLogger("ray.serve")
api = FastAPI(title="TRAIL-serve", docs_url=None, redoc_url=None)
api.add_middleware(Guard)
init_exception_handler(api)  # vLLM's: validation, HTTP and engine errors as `vllm serve` has them
api.state.args = argparse.Namespace(log_error_stack=False)  # what those handlers read
# unknown routes and methods too (vllm serve leaves them as Starlette's {"detail": ...})
api.exception_handler(StarletteHTTPException)(http_exception_handler)
JSON_BODY = [Depends(validate_json_request)]
ERRORS = {s: {"description": HTTPStatus(s).phrase} for s in (400, 401, 404, 413, 429, 503)}
STREAMING = {200: {"content": {"text/event-stream": {}}}, **ERRORS}
# vllm_xargs.trail_return: the ingress's prediction of one choice's output tokens
PREDICTED_HEADER = "x-trail-predicted-tokens"


@api.exception_handler(OpenAIError)
async def _openai_error(_: Request, err: OpenAIError) -> JSONResponse:
    return err.response()


class Dispatch:
    """One call's trip through the handle, with the ingress's in-flight count kept honest."""

    def __init__(self, ingress: Ingress, gen: DeploymentResponseGenerator, replica: str) -> None:
        self.ingress, self.gen, self.replica = ingress, gen, replica
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            self.ingress.inflight -= 1
            self.gen.cancel()  # no-op when finished; aborts in the engine otherwise


@serve.ingress(api)
class Ingress:
    def __init__(self, llm: DeploymentHandle, config: dict[str, Any]) -> None:
        self.cfg = ServeConfig.model_validate(config)
        self.llm = llm.options(method_name="openai", stream=True)
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.cfg.engine.model)
        self.predictor = InitialPredictor(
            self.cfg.prompt_predictor_path, self._default_prediction()
        )
        configure(
            self.cfg.ingress.api_key or os.environ.get("TRAIL_API_KEY") or None,
            self.cfg.ingress.max_body_bytes,
        )
        self.inflight = 0
        # tokenizing a large prompt takes ~1 s per MB: off the event loop, one at a time (a fast
        # tokenizer is not safe for concurrent calls)
        self.tokenize_pool = ThreadPoolExecutor(1, thread_name_prefix="tokenize")
        self.name = serve.get_replica_context().replica_id.unique_id  # x-trail-ingress
        self.capture = ServedCapture.from_config(self.cfg, self.name)
        if self.cfg.prompt_watch and self.predictor.available:
            watch_head(self.predictor, self.cfg.prompt_watch, self.cfg.probe_watch_s)

    def _default_prediction(self) -> float:
        trail = self.cfg.engine.trail
        return trail.default_prediction if trail is not None else self.cfg.default_prediction

    # ---- routes -------------------------------------------------------------------------
    @api.get("/health")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/metrics", response_class=Response)
    async def metrics(self) -> Response:
        from trail.metrics import render_latest

        body, content_type = render_latest()
        return Response(body, media_type=content_type)

    @api.get("/v1/models", responses=ERRORS)
    async def models(self) -> Response:
        return await self._forward(OpenAICall("models"))

    @api.get("/v1/trail/requests/{request_id}", responses=ERRORS)
    async def trail_request(self, request_id: str) -> dict[str, Any]:
        return await read_record(self.cfg.redis_url, request_id)

    @api.post("/v1/chat/completions", dependencies=JSON_BODY, responses=STREAMING)
    async def chat(self, request: ChatCompletionRequest) -> Response:
        return await self._generate("chat", request, "chatcmpl", chat_facts)

    @api.post("/v1/completions", dependencies=JSON_BODY, responses=STREAMING)
    async def completions(self, request: CompletionRequest) -> Response:
        return await self._generate("completion", request, "cmpl", completion_facts)

    @api.post("/tokenize", dependencies=JSON_BODY, responses=ERRORS)
    async def tokenize(self, request: TokenizeRequest) -> Response:
        return await self._forward(OpenAICall("tokenize", request))

    @api.post("/detokenize", dependencies=JSON_BODY, responses=ERRORS)
    async def detokenize(self, request: DetokenizeRequest) -> Response:
        return await self._forward(OpenAICall("detokenize", request))

    # ---- generation ---------------------------------------------------------------------
    async def _generate(
        self,
        route: Route,
        request: Any,
        prefix: str,
        facts_of: Callable[[Any, Any, int], RequestFacts],
    ) -> Response:
        """Predict, attach TRAIL's scheduler inputs, forward. The engine sees a chat as
        `chatcmpl-<id>` and a completion's prompts as `cmpl-<id>-<i>` (vLLM's numbering); the
        first is the id of the record and capture."""
        ext = trail_extensions(request)
        drop_unknown_fields(request)
        if "request_id" not in request.model_fields_set:  # a client's own id is kept, as vLLM does
            request.request_id = uuid.uuid4().hex
        loop, max_len = asyncio.get_running_loop(), self.cfg.engine.max_model_len
        facts = await loop.run_in_executor(
            self.tokenize_pool, facts_of, request, self.tokenizer, max_len
        )
        base = f"{prefix}-{request.request_id}"
        prompts = range(max(facts.prompts, 1))
        engine_ids = (base,) if route == "chat" else tuple(f"{base}-{i}" for i in prompts)
        engine_id = engine_ids[0]
        trail, expected = await self._trail_args(engine_id, request, facts, ext)
        if ext.trail_return:  # the scheduler attaches its summary (trail/engine/report.py)
            trail["return"] = True
        request.vllm_xargs = {**ext.xargs, "trail": trail}  # -> SamplingParams.extra_args
        call = OpenAICall(
            route,
            request,
            request_id=engine_id,
            prompt_tokens=facts.prompt_tokens,
            predicted_tokens=expected * facts.choices,
            engine_ids=engine_ids,
            trail_return=ext.trail_return,
        )
        predicted = {PREDICTED_HEADER: f"{expected:.1f}"} if ext.trail_return else {}
        return await self._forward(call, engine_id, predicted)

    async def _trail_args(
        self, engine_id: str, request: Any, facts: RequestFacts, ext: TrailExtensions
    ) -> tuple[dict[str, Any], float]:
        """extra_args["trail"] for the scheduler (trail/engine/tracking.py) and the expected
        output length of one choice."""
        hint = ext.use_max_tokens  # max_tokens bounds the length
        routing_len = ext.true_len or (facts.max_tokens if request.ignore_eos and hint else None)
        cap = facts.max_tokens if hint else self.cfg.engine.max_model_len
        pred = await self.predictor.predict(facts.text, routing_len, cap)
        trail: dict[str, Any] = {"initial_pred": pred.expected}
        if not hint:
            trail["use_max_tokens"] = False
        if pred.dist is not None:
            trail["initial_dist"] = pred.dist
        if ext.true_len is not None:
            trail["true_len"] = ext.true_len
        if pred.version is not None:
            trail["prompt_version"] = pred.version
        if self.capture and pred.embedding is not None and self.capture.sampled(engine_id):
            self.capture.prompt(engine_id, pred.embedding, pred.version)
        return trail, pred.expected

    # ---- dispatch -----------------------------------------------------------------------
    async def _forward(
        self, call: OpenAICall, record_id: str | None = None, extra: dict[str, str] | None = None
    ) -> Response:
        """Send `call`; the answer's headers say who served it, plus `extra` (opt-in)."""
        dispatch = await self._dispatch(call)
        headers = {"x-trail-replica": dispatch.replica, "x-trail-ingress": self.name}
        headers.update(extra or {})
        if record_id:
            headers["x-trail-request-id"] = record_id
        try:
            first = await dispatch.gen.__anext__()
        except BaseException as err:
            dispatch.close()
            if isinstance(err, RayActorError):
                raise replica_failed(self.cfg.ingress.retry_after_s, err) from err
            raise
        if isinstance(first, Reply):
            dispatch.close()
            return JSONResponse(first.body, status_code=first.status, headers=headers)
        headers["cache-control"] = "no-cache"
        return StreamingResponse(
            self._relay(first, dispatch), media_type="text/event-stream", headers=headers
        )

    async def _dispatch(self, call: OpenAICall) -> Dispatch:
        """Admit and send; returns once a replica accepted (or raises 429/503 at once)."""
        if self.inflight >= self.cfg.ingress.max_inflight:
            raise overloaded(self.cfg.ingress.retry_after_s, "too many requests in flight")
        self.inflight += 1
        gen: DeploymentResponseGenerator | None = None
        try:
            gen = self.llm.remote(call)
            first: Accepted = await gen.__anext__()
        except (pickle.PicklingError, RecursionError):  # e.g. a 500-deep json_schema
            self.inflight -= 1
            raise OpenAIError(400, "request is nested too deeply to forward") from None
        except BackPressureError:
            self.inflight -= 1
            raise overloaded(self.cfg.ingress.retry_after_s, "replica queues full") from None
        except RayActorError as err:
            self.inflight -= 1
            raise replica_failed(self.cfg.ingress.retry_after_s, err) from err
        except BaseException:  # e.g. cancelled: the client left while we waited for a replica
            self.inflight -= 1
            if gen is not None:
                gen.cancel()
            raise
        return Dispatch(self, gen, first.replica)

    async def _relay(self, first: str, dispatch: Dispatch) -> AsyncIterator[str]:
        """vLLM's SSE events as the replica produced them; a replica lost mid-stream becomes
        a last error event (the headers are sent)."""
        try:
            yield first
            async for event in dispatch.gen:
                yield event
        except Exception as err:  # noqa: BLE001
            yield f"data: {json.dumps(self._stream_error(err).body())}\n\n"
        finally:
            dispatch.close()

    def _stream_error(self, err: Exception) -> OpenAIError:
        if isinstance(err, RayActorError):
            return replica_failed(self.cfg.ingress.retry_after_s, err)
        logger.exception("stream failed", exc_info=err)
        return OpenAIError(500, f"internal error: {type(err).__name__}")
