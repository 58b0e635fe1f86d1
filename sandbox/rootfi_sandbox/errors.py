"""RootFi-shaped errors: `{"error": {"message", "code", "field"}}` with an HTTP status.

`field` is always a string, as the SDK's `RootFiApiResponseErrorType` declares: `""` when no
field is to blame (a 401, a 429, a 500, an unknown route).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

INVALID_REQUEST = "INVALID_REQUEST"
VALIDATION_ERROR = "VALIDATION_ERROR"


class ApiError(Exception):
    """Raised by handlers; rendered as the RootFi error body with `status`."""

    def __init__(self, status: int, code: str, message: str, field: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field

    def body(self) -> dict[str, Any]:
        """The `error` object (also what a FAILED job carries)."""
        return {"message": self.message, "code": self.code, "field": self.field}


def invalid(message: str, field: str = "") -> ApiError:
    """A 400 INVALID_REQUEST (a malformed body, envelope or query parameter)."""
    return ApiError(400, INVALID_REQUEST, message, field)


def json_object(raw: bytes) -> dict[str, Any]:
    """`raw` parsed as a JSON object; anything else is a 400 INVALID_REQUEST."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise invalid("The request body is not valid JSON") from None
    if not isinstance(body, dict):
        raise invalid("The request body must be a JSON object")
    return body


def json_response(
    content: Any, status: int = 200, headers: Mapping[str, str] | None = None
) -> Response:
    """A compact JSON answer (cheaper than JSONResponse's options, same bytes)."""
    body = json.dumps(content, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status, headers, media_type="application/json")


def error_response(error: ApiError, headers: Mapping[str, str] | None = None) -> Response:
    """Render an ApiError."""
    return json_response({"error": error.body()}, error.status, headers)


async def api_error_handler(request: Request, exc: Exception) -> Response:
    """Starlette exception handler for ApiError."""
    assert isinstance(exc, ApiError)
    return error_response(exc)


_HTTP_CODES = {404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


async def http_error_handler(request: Request, exc: Exception) -> Response:
    """Routing errors (unknown path, wrong method) in the RootFi error shape."""
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "HTTP_ERROR")
    error = ApiError(exc.status_code, code, f"{request.method} {request.url.path}: {exc.detail}")
    return error_response(error, exc.headers)
