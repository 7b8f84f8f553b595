"""vLLM's own OpenAI layer inside a replica: the chat, completion, tokenize and models handlers
of `vllm serve` (`vllm.entrypoints.openai`), on this replica's AsyncLLM with the TRAIL
scheduler underneath — as Ray Serve LLM runs them inside its replicas.

Why not our own: every vLLM feature (n, logprobs, structured outputs, tools, ...) would be one
more thing to re-implement and keep in sync. What stays ours is around it: the ingress (auth,
limits, overload answers, prompt prediction, routing) and `TrackedEngine`, the one place every
generation passes through on its way to the engine (online-learning capture and labels).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from trail.serve.protocol import OpenAICall, Reply
from trail.serve.tracked_engine import TrackedEngine

ServingCall = Callable[[Any, OpenAICall], Any]


def frontend_args(model: str, served_model_name: str, extra: list[str]) -> argparse.Namespace:
    """`vllm serve`'s own argument parser and defaults, plus the deployment's extra flags
    (e.g. `--enable-auto-tool-choice --tool-call-parser hermes`)."""
    from vllm.entrypoints.launchers.cli_args import make_arg_parser, validate_parsed_serve_args
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    argv = ["--model", model, "--served-model-name", served_model_name, *extra]
    args = make_arg_parser(FlexibleArgumentParser()).parse_args(argv)
    validate_parsed_serve_args(args)
    return args


async def build_state(engine_client: Any, args: argparse.Namespace) -> Any:
    """The serving objects `vllm serve` would hold in its app.state."""
    from starlette.datastructures import State
    from vllm.entrypoints.launchers.api_server.app_state import init_app_state

    state = State()
    tasks = await engine_client.get_supported_tasks()
    await init_app_state(engine_client, state, args, tasks)
    return state


async def _chat(state: Any, call: OpenAICall) -> Any:
    return await state.openai_serving_chat.create_chat_completion(call.request, None)


async def _completion(state: Any, call: OpenAICall) -> Any:
    return await state.openai_serving_completion.create_completion(call.request, None)


async def _tokenize(state: Any, call: OpenAICall) -> Any:
    return await state.serving_tokenization.create_tokenize(call.request, None)


async def _detokenize(state: Any, call: OpenAICall) -> Any:
    return await state.serving_tokenization.create_detokenize(call.request, None)


async def _models(state: Any, call: OpenAICall) -> Any:
    return await state.openai_serving_models.show_available_models()


HANDLERS: dict[str, ServingCall] = {
    "chat": _chat,
    "completion": _completion,
    "tokenize": _tokenize,
    "detokenize": _detokenize,
    "models": _models,
}


async def answer(
    state: Any, call: OpenAICall, engine: TrackedEngine | None = None
) -> AsyncIterator[Reply | str]:
    """One call through vLLM's handler: a Reply (response or error, with its status), or the
    handler's SSE strings as it yields them. An exception the handler raises becomes the error
    response vLLM's own exception handlers would have sent. With `call.trail_return`, the
    prediction summaries `engine` took out of the outputs ride the answer (`TrailField`)."""
    from pydantic import BaseModel
    from vllm.entrypoints.serve.engine.protocol import ErrorResponse
    from vllm.entrypoints.serve.exception_handling.error_response import create_error_response

    field = TrailField(engine, call) if call.trail_return and engine is not None else None
    try:
        result = await HANDLERS[call.route](state, call)
    except Exception as exc:  # noqa: BLE001 - vLLM maps each kind to its status
        result = create_error_response(exc)
    try:
        if isinstance(result, ErrorResponse):
            yield Reply(int(result.error.code), result.model_dump())
        elif isinstance(result, BaseModel):
            body = result.model_dump()
            yield Reply(200, field.add_to(body) if field else body)
        else:
            async with aclosing(result):
                async for event in result:
                    if field is not None:
                        for extra in field.before_done(event):
                            yield extra
                    yield event
    finally:
        if field is not None:
            field.take()  # whatever the answer did not use is not kept


DONE = "data: [DONE]\n\n"


class TrailField:
    """One call's prediction summaries, as the `trail` field of vLLM's answer: in a whole
    body, or as one extra SSE chunk before `data: [DONE]` shaped like OpenAI's usage chunk
    (the stream's id, object, created and model; no choices).

    `trail.sequences` lists one summary per engine sequence that brought one (trail/engine/
    report.py has the fields), in the call's engine id order: one for a chat with n = 1,
    one per prompt for a completion of several prompts. For n > 1 each choice is an engine
    request of its own: streamed, each brings its summary; not streamed, vLLM keeps only the
    last finished choice's. A sequence a stop string ended brings none (vLLM's frontend stops
    it and aborts it in the engine)."""

    def __init__(self, engine: TrackedEngine, call: OpenAICall) -> None:
        self.engine, self.call = engine, call
        self.head: dict[str, Any] | None = None  # the stream's first chunk's id, object, ...

    def take(self) -> dict[str, Any]:
        return {"sequences": self.engine.take_reports(self.call.engine_ids)}

    def add_to(self, body: dict[str, Any]) -> dict[str, Any]:
        return {**body, "trail": self.take()}

    def before_done(self, event: str) -> list[str]:
        """The trail chunk to send before `event` if it is the stream's last; notes the
        stream's head from its first chunk."""
        if event == DONE:
            if self.head is None:  # an error before any chunk: nothing to attach to
                return []
            chunk = {**self.head, "choices": [], "trail": self.take()}
            return [f"data: {json.dumps(chunk)}\n\n"]
        if self.head is None and event.startswith("data: {"):
            first = json.loads(event[len("data: ") :])
            if "id" in first:
                keys = ("id", "object", "created", "model")
                self.head = {k: first[k] for k in keys if k in first}
        return []
