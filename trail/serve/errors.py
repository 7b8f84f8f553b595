"""The ingress's own errors, in vLLM's error shape: `{"error": {"message", "type", "param",
"code"}}` with `code` the HTTP status and `type` its phrase, as `vllm serve`'s handlers answer.

Validation and generation errors come from vLLM's own handlers; these are the ones only the
ingress can raise: overload (429), a failed replica or store (503), a too-large body (413), an
unknown record (404).
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from fastapi.responses import JSONResponse


class OpenAIError(Exception):
    """Raised anywhere in the ingress; one handler turns it into the error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        param: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.param = param
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        kind = HTTPStatus(self.status).phrase  # as vLLM's own handlers name it
        return {
            "error": {
                "message": self.message,
                "type": kind,
                "param": self.param,
                "code": self.status,
            }
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def overloaded(retry_after_s: int, why: str) -> OpenAIError:
    return OpenAIError(
        429,
        f"server overloaded ({why}); retry later",
        headers={"Retry-After": str(retry_after_s)},
    )


def replica_failed(retry_after_s: int, err: BaseException) -> OpenAIError:
    """A replica died or became unreachable under this request: not retried by the server
    (tokens may already have been generated and streamed); the client may retry."""
    return OpenAIError(
        503,
        f"the replica serving this request failed ({type(err).__name__}); retry later",
        headers={"Retry-After": str(retry_after_s)},
    )
