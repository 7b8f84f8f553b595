"""The ingress: OpenAI HTTP API in front of the LLM replicas.

It validates and tokenizes, predicts the output length (the router needs it before routing),
dispatches through a streaming DeploymentHandle (whose RequestRouter picks the replica), and
turns a vanished client into a cancelled handle call, which aborts the request in its engine.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from ray import serve
from ray.exceptions import RayActorError
from ray.serve.exceptions import BackPressureError
from ray.serve.handle import DeploymentHandle, DeploymentResponseGenerator
from starlette.exceptions import HTTPException as StarletteHTTPException

from trail.serve.capture import ServedCapture
from trail.serve.config import ServeConfig
from trail.serve.errors import OpenAIError, overloaded, replica_failed
from trail.serve.openapi import (
    ChatCompletion,
    Completion,
    DocumentedAPI,
    Health,
    ModelList,
    route_doc,
)
from trail.serve.prediction import InitialPredictor, watch_head
from trail.serve.protocol import Chunk, EngineRequest
from trail.serve.records import read_record
from trail.serve.schemas import (
    ChatCompletionRequest,
    CompletionRequest,
    SamplingFields,
    chat_chunk,
    chat_response,
    completion_response,
    models_response,
    usage,
)
from trail.serve.validation import (
    Prepared,
    check_bearer,
    check_model,
    parse_body,
    prepare_chat,
    prepare_completion,
    read_body,
    sampling_kwargs,
)

logger = logging.getLogger("ray.serve")
api = DocumentedAPI(
    title="TRAIL-serve",
    docs_url=None,
    redoc_url=None,
    body_models=(ChatCompletionRequest, CompletionRequest),
)
CHAT_ERRORS = (400, 401, 404, 413, 429, 503)


@api.exception_handler(OpenAIError)
async def _openai_error(_: Request, err: OpenAIError) -> JSONResponse:
    return err.response()


@api.exception_handler(StarletteHTTPException)
async def _http_error(_: Request, err: StarletteHTTPException) -> JSONResponse:
    code = "not_found" if err.status_code == 404 else None
    return OpenAIError(err.status_code, str(err.detail), code=code).response()


@api.exception_handler(Exception)
async def _unexpected(_: Request, err: Exception) -> JSONResponse:
    """Engine or replica failures still answer in the OpenAI shape (and get logged)."""
    logger.exception("request failed", exc_info=err)
    return OpenAIError(500, f"internal error: {type(err).__name__}", type="server_error").response()


class Dispatch:
    """One request's trip through the handle, with the ingress's in-flight count kept honest."""

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
        self.llm = llm.options(method_name="generate", stream=True)
        from transformers import AutoTokenizer

        self.tokenizer = AutoTokenizer.from_pretrained(self.cfg.engine.model)
        self.predictor = InitialPredictor(
            self.cfg.prompt_predictor_path, self._default_prediction()
        )
        self.api_key = self.cfg.ingress.api_key or os.environ.get("TRAIL_API_KEY") or None
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
    @api.get("/health", **route_doc(Health))
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @api.get("/metrics", **route_doc(text=True))
    async def metrics(self) -> Response:
        from trail.metrics import render_latest

        body, content_type = render_latest()
        return Response(body, media_type=content_type)

    @api.get("/v1/models", **route_doc(ModelList, errors=(401,)))
    async def models(self, request: Request) -> dict[str, Any]:
        self._authorize(request)
        return models_response(self.cfg.served_model_name)

    @api.get("/v1/trail/requests/{request_id}", **route_doc(errors=(401, 404, 503)))
    async def trail_request(self, request_id: str, request: Request) -> dict[str, Any]:
        self._authorize(request)
        return await read_record(self.cfg.redis_url, request_id)

    @api.post(
        "/v1/chat/completions",
        **route_doc(ChatCompletion, body=ChatCompletionRequest, errors=CHAT_ERRORS, stream=True),
    )
    async def chat(self, request: Request) -> Response:
        self._authorize(request)
        req = parse_body(await self._body(request), ChatCompletionRequest)
        check_model(req, self.cfg.served_model_name)
        prepared = await self._prepare(prepare_chat, req)
        rid = f"chatcmpl-{uuid.uuid4().hex}"
        dispatch = await self._dispatch(rid, req, prepared)
        if req.stream:
            return self._sse(rid, dispatch, self._chat_events(rid, req, prepared, dispatch))
        text, finish, n = await self._collect(dispatch)
        body = chat_response(rid, req.model, text, finish, usage(len(prepared.prompt_token_ids), n))
        return JSONResponse(body, headers=self._headers(rid, dispatch))

    @api.post(
        "/v1/completions",
        **route_doc(Completion, body=CompletionRequest, errors=CHAT_ERRORS, stream=True),
    )
    async def completions(self, request: Request) -> Response:
        self._authorize(request)
        req = parse_body(await self._body(request), CompletionRequest)
        check_model(req, self.cfg.served_model_name)
        prepared = await self._prepare(prepare_completion, req)
        rid = f"cmpl-{uuid.uuid4().hex}"
        dispatch = await self._dispatch(rid, req, prepared)
        if req.stream:
            return self._sse(rid, dispatch, self._completion_events(rid, req, prepared, dispatch))
        text, finish, n = await self._collect(dispatch)
        use = usage(len(prepared.prompt_token_ids), n)
        body = completion_response(rid, req.model, text, finish, use)
        return JSONResponse(body, headers=self._headers(rid, dispatch))

    # ---- dispatch -----------------------------------------------------------------------
    def _authorize(self, request: Request) -> None:
        check_bearer(request.headers.get("authorization"), self.api_key)

    async def _body(self, request: Request) -> bytes:
        return await read_body(request, self.cfg.ingress.max_body_bytes)

    async def _prepare(self, prepare: Callable[..., Prepared], req: Any) -> Prepared:
        loop, max_len = asyncio.get_running_loop(), self.cfg.engine.max_model_len
        return await loop.run_in_executor(self.tokenize_pool, prepare, req, self.tokenizer, max_len)

    async def _dispatch(self, rid: str, req: SamplingFields, prepared: Prepared) -> Dispatch:
        """Admit, predict, send; returns once a replica accepted (or raises 429 at once)."""
        if self.inflight >= self.cfg.ingress.max_inflight:
            raise overloaded(self.cfg.ingress.retry_after_s, "too many requests in flight")
        self.inflight += 1
        gen: DeploymentResponseGenerator | None = None
        try:
            engine_req = await self._engine_request(rid, req, prepared)
            gen = self.llm.remote(engine_req)
            first: Chunk = await gen.__anext__()
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

    async def _engine_request(
        self, rid: str, req: SamplingFields, prepared: Prepared
    ) -> EngineRequest:
        true_len = req.trail.true_len if req.trail else None
        hint = req.trail.use_max_tokens if req.trail else True  # max_tokens bounds the length
        routing_len = true_len or (prepared.max_tokens if req.ignore_eos and hint else None)
        cap = prepared.max_tokens if hint else self.cfg.engine.max_model_len
        pred = await self.predictor.predict(prepared.predictor_text, routing_len, cap)
        trail: dict[str, Any] = {"initial_pred": pred.expected}
        if not hint:
            trail["use_max_tokens"] = False
        if pred.dist is not None:
            trail["initial_dist"] = pred.dist
        if true_len is not None:
            trail["true_len"] = true_len
        if pred.version is not None:
            trail["prompt_version"] = pred.version
        if self.capture and pred.embedding is not None and self.capture.sampled(rid):
            self.capture.prompt(rid, pred.embedding, pred.version)
        return EngineRequest(
            request_id=rid,
            prompt_token_ids=prepared.prompt_token_ids,
            sampling=sampling_kwargs(req, prepared.max_tokens),
            trail=trail,
            predicted_tokens=pred.expected,
        )

    async def _collect(self, dispatch: Dispatch) -> tuple[str, str | None, int]:
        parts: list[str] = []
        finish, n = None, 0
        try:
            async for chunk in dispatch.gen:
                parts.append(chunk.text)
                finish, n = chunk.finish_reason or finish, chunk.completion_tokens
        except RayActorError as err:
            raise replica_failed(self.cfg.ingress.retry_after_s, err) from err
        finally:
            dispatch.close()
        return "".join(parts), finish, n

    def _stream_error(self, rid: str, err: Exception) -> OpenAIError:
        if isinstance(err, RayActorError):
            return replica_failed(self.cfg.ingress.retry_after_s, err)
        logger.exception("stream %s failed", rid, exc_info=err)
        return OpenAIError(500, f"internal error: {type(err).__name__}", type="server_error")

    def _headers(self, rid: str, dispatch: Dispatch) -> dict[str, str]:
        return {
            "x-trail-request-id": rid,
            "x-trail-replica": dispatch.replica,
            "x-trail-ingress": self.name,
        }

    def _sse(self, rid: str, dispatch: Dispatch, events: AsyncIterator[dict[str, Any]]) -> Response:
        async def body() -> AsyncIterator[str]:
            try:
                async for event in events:
                    yield f"data: {json.dumps(event)}\n\n"
                yield "data: [DONE]\n\n"
            except Exception as err:  # headers are sent: the error becomes the last event
                yield f"data: {json.dumps(self._stream_error(rid, err).body())}\n\n"
            finally:
                dispatch.close()

        headers = {**self._headers(rid, dispatch), "cache-control": "no-cache"}
        return StreamingResponse(body(), media_type="text/event-stream", headers=headers)

    async def _chat_events(
        self, rid: str, req: ChatCompletionRequest, prepared: Prepared, dispatch: Dispatch
    ) -> AsyncIterator[dict[str, Any]]:
        # the role rides on the first output, as in vLLM's server: clients such as `vllm bench
        # serve` stamp TTFT at the first chunk with choices
        n, role = 0, {"role": "assistant"}
        async for chunk in dispatch.gen:
            n = chunk.completion_tokens
            if chunk.text or chunk.finish_reason:
                delta = {"content": chunk.text} if chunk.text else {}
                yield chat_chunk(rid, req.model, {**role, **delta}, chunk.finish_reason)
                role = {}
        if req.wants_usage_in_stream():
            yield chat_chunk(rid, req.model, {}, None, usage(len(prepared.prompt_token_ids), n))

    async def _completion_events(
        self, rid: str, req: CompletionRequest, prepared: Prepared, dispatch: Dispatch
    ) -> AsyncIterator[dict[str, Any]]:
        n = 0
        async for chunk in dispatch.gen:
            n = chunk.completion_tokens
            if chunk.text or chunk.finish_reason:
                yield completion_response(rid, req.model, chunk.text, chunk.finish_reason, None)
        if req.wants_usage_in_stream():
            use = usage(len(prepared.prompt_token_ids), n)
            yield completion_response(rid, req.model, "", None, use, chunk=True)
