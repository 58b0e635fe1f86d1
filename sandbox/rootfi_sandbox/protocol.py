"""uvicorn's h11 protocol, plus a way for the app to drop a connection without answering.

The protocol puts its transport into each request's ASGI `scope["state"]` (the per-request
copy uvicorn makes of the lifespan state), under TRANSPORT_KEY. A lost-answer fault aborts
that transport: the client sees the connection close with no HTTP response at all.
"""

from __future__ import annotations

import asyncio

from uvicorn.protocols.http.h11_impl import H11Protocol

TRANSPORT_KEY = "rootfi_sandbox.transport"


class SandboxH11Protocol(H11Protocol):
    """H11Protocol whose requests can reach their own transport."""

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        self.app_state = {**self.app_state, TRANSPORT_KEY: transport}
