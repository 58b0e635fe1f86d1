"""`create_app(config)`: the sandbox as a Starlette app (routes, guard, error shapes)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware

from rootfi_sandbox.admin import Admin
from rootfi_sandbox.api import Api
from rootfi_sandbox.config import SandboxConfig
from rootfi_sandbox.errors import ApiError, api_error_handler, http_error_handler
from rootfi_sandbox.guard import ApiGuard
from rootfi_sandbox.runtime import SandboxState


def create_app(config: SandboxConfig | None = None) -> Starlette:
    """A fresh sandbox app; its state lives in `app.state.sandbox` (a SandboxState).

    With `config.db_path` the SQLite file is opened (and its rows loaded) right here;
    unfinished async writes found there resume when the app starts serving.
    """
    state = SandboxState(config or SandboxConfig())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        state.resume()
        try:
            yield
        finally:
            state.shutdown()

    app = Starlette(
        routes=[*Api(state).routes(), *Admin(state).routes()],
        middleware=[Middleware(ApiGuard, state=state)],
        exception_handlers={ApiError: api_error_handler, HTTPException: http_error_handler},
        lifespan=lifespan,
    )
    app.state.sandbox = state
    return app
