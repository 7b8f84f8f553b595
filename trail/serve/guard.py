"""What the ingress checks before FastAPI reads a request: the API key (vLLM's own
AuthenticationMiddleware, so a 401 looks exactly like `vllm serve --api-key`'s) and the body
size (ours: 413 before a huge body is held in memory or parsed).

A pure ASGI middleware on the ingress app. Its settings are process-wide because Ray Serve
builds the app when the ingress class is defined, before a replica knows its config; each
ingress replica is its own process and calls `configure` once.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any

from trail.serve.errors import OpenAIError

Scope = MutableMapping[str, Any]


@dataclass
class GuardSettings:
    api_key: str | None = None
    max_body_bytes: int = 1 << 20


SETTINGS = GuardSettings()


def configure(api_key: str | None, max_body_bytes: int) -> None:
    SETTINGS.api_key, SETTINGS.max_body_bytes = api_key, max_body_bytes


def body_too_large(limit: int) -> OpenAIError:
    return OpenAIError(413, f"request body exceeds {limit} bytes")


class Guard:
    def __init__(self, app: Any) -> None:
        self.app = app
        self._auth: tuple[str, Any] | None = None  # (key, vLLM's middleware for that key)

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        key = SETTINGS.api_key
        if key is None:
            await self._limit_body(scope, receive, send)
            return
        if self._auth is None or self._auth[0] != key:
            from vllm.entrypoints.serve.middleware.authenticate import AuthenticationMiddleware

            self._auth = (key, AuthenticationMiddleware(self._limit_body, [key]))
        await self._auth[1](scope, receive, send)

    async def _limit_body(self, scope: Scope, receive: Any, send: Any) -> None:
        """Read the whole body up to the limit (413 past it, declared or streamed), then hand
        it on as one message."""
        limit = SETTINGS.max_body_bytes
        declared = dict(scope.get("headers") or []).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > limit:
            await body_too_large(limit).response()(scope, receive, send)
            return
        parts, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client left
                return
            parts.append(message.get("body", b""))
            size += len(parts[-1])
            if size > limit:
                await body_too_large(limit).response()(scope, receive, send)
                return
            more = message.get("more_body", False)
        body, replayed = b"".join(parts), False

        async def replay() -> dict[str, Any]:
            nonlocal replayed
            if replayed:
                return await receive()  # after the body: wait for the disconnect
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)
