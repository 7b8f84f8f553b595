"""OpenAI-style errors: `{"error": {"message", "type", "param", "code"}}` with a 4xx/5xx status."""

from __future__ import annotations

from typing import Any

from fastapi.responses import JSONResponse
from pydantic import ValidationError


class OpenAIError(Exception):
    """Raised anywhere in the ingress; one handler turns it into the OpenAI error body."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        param: str | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param
        self.code = code
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers)


def from_validation_error(err: ValidationError) -> OpenAIError:
    """The first pydantic complaint, named by its field path (what a client needs to fix)."""
    first = err.errors()[0]
    param = ".".join(str(p) for p in first.get("loc", ()) if not _union_member(p)) or None
    kind = first.get("type", "")
    code = "unknown_parameter" if kind == "extra_forbidden" else "invalid_value"
    if kind == "missing":
        code = "missing_required_parameter"
    message = f"{param}: {first.get('msg', 'invalid')}" if param else first.get("msg", "invalid")
    return OpenAIError(400, message, param=param, code=code)


def _union_member(part: int | str) -> bool:
    """pydantic names the member of a union that failed (`prompt.str`, `stop.list[str]`): not
    part of the client's field path."""
    return isinstance(part, str) and (part in {"str", "int", "float", "bool"} or "[" in part)


def overloaded(retry_after_s: int, why: str) -> OpenAIError:
    return OpenAIError(
        429,
        f"server overloaded ({why}); retry later",
        type="rate_limit_error",
        code="overloaded",
        headers={"Retry-After": str(retry_after_s)},
    )


def replica_failed(retry_after_s: int, err: BaseException) -> OpenAIError:
    """A replica died or became unreachable under this request: not retried by the server
    (tokens may already have been generated and streamed); the client may retry."""
    return OpenAIError(
        503,
        f"the replica serving this request failed ({type(err).__name__}); retry later",
        type="server_error",
        code="replica_unavailable",
        headers={"Retry-After": str(retry_after_s)},
    )
