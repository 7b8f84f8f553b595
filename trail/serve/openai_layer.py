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
from collections.abc import AsyncIterator, Callable
from contextlib import aclosing
from typing import Any

from trail.serve.protocol import OpenAICall, Reply

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


async def answer(state: Any, call: OpenAICall) -> AsyncIterator[Reply | str]:
    """One call through vLLM's handler: a Reply (response or error, with its status), or the
    handler's SSE strings as it yields them. An exception the handler raises becomes the error
    response vLLM's own exception handlers would have sent."""
    from pydantic import BaseModel
    from vllm.entrypoints.serve.engine.protocol import ErrorResponse
    from vllm.entrypoints.serve.exception_handling.error_response import create_error_response

    try:
        result = await HANDLERS[call.route](state, call)
    except Exception as exc:  # noqa: BLE001 - vLLM maps each kind to its status
        result = create_error_response(exc)
    if isinstance(result, ErrorResponse):
        yield Reply(int(result.error.code), result.model_dump())
    elif isinstance(result, BaseModel):
        yield Reply(200, result.model_dump())
    else:
        async with aclosing(result):
            async for event in result:
                yield event
