"""The ASGI layer in front of `/v3`: latency, the `api_key` check, the rate limit and counts.

Plain ASGI (no BaseHTTPMiddleware) to keep the hot path cheap. `/_sandbox` is not guarded.
"""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from rootfi_sandbox.errors import ApiError, error_response
from rootfi_sandbox.runtime import SandboxState


def request_kind(method: str, path: str) -> str:
    """Name what a `/v3` request asks for: create, list_customers, sync, sync_jobs, companies,
    or other (any other path, a job by id included)."""
    parts = path.split("/")[2:]  # after "/v3"
    if parts == ["ecommerce", "customers"]:
        return "create" if method == "POST" else "list_customers"
    if parts[:2] == ["core", "syncs"] and len(parts) == 3 and parts[2] != "jobs":
        return "sync"
    if parts[:2] == ["core", "syncs"] and len(parts) == 4 and parts[3] == "jobs":
        return "sync_jobs"
    if parts[:2] == ["core", "companies"]:
        return "companies"
    return "other"


def _api_key(headers: list[tuple[bytes, bytes]]) -> bytes | None:
    for name, value in headers:
        if name == b"api_key":
            return value
    return None


class ApiGuard:
    """Guards every path under /v3 (see module docstring)."""

    def __init__(self, app: ASGIApp, state: SandboxState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not (path.startswith("/v3/") or path == "/v3"):
            await self.app(scope, receive, send)
            return
        state = self.state
        latency = state.faults.current.latency_seconds
        if latency > 0:
            await state.pause(latency)
        status: int | None = None
        extra: list[tuple[bytes, bytes]] = []

        async def send_counted(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                if extra:
                    message = {**message, "headers": [*message.get("headers", ()), *extra]}
            await send(message)

        try:
            await self._guarded(scope, receive, send_counted, extra)
        finally:
            state.counters.record(status, request_kind(scope["method"], path))

    async def _guarded(
        self, scope: Scope, receive: Receive, send: Send, extra: list[tuple[bytes, bytes]]
    ) -> None:
        key = _api_key(scope["headers"])
        if key is None or key not in self.state.api_keys:
            error = ApiError(401, "UNAUTHORIZED", "Missing or invalid api_key header")
            await error_response(error)(scope, receive, send)
            return
        verdict = self.state.limiter.check(key)
        if verdict is not None:
            extra.extend(verdict.headers)
            if not verdict.allowed:
                message = f"Rate limit of {self.state.limiter.per_minute} requests/min exceeded"
                error = ApiError(429, "RATE_LIMITED", message)
                headers = {"Retry-After": str(verdict.retry_after)}
                await error_response(error, headers)(scope, receive, send)
                return
        await self.app(scope, receive, send)
