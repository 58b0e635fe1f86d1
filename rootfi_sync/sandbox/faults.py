"""Fault injection for `POST /v3/ecommerce/customers`: which fault (if any) hits a request,
and the "response" that drops the connection instead of answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Literal

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from rootfi_sync.sandbox.config import Faults
from rootfi_sync.sandbox.protocol import TRANSPORT_KEY

Fault = Literal["429", "500", "lost", "slow"]


class FaultInjector:
    """The running faults and the one `random.Random(seed)` that draws them.

    Each create request draws four numbers (429, 500, lost, slow, in that order) while any
    rate is non-zero, so a seed gives the same sequence of faults for the same requests.
    """

    def __init__(self, faults: Faults) -> None:
        self.current = faults
        self._rng = random.Random(faults.seed)

    def set(self, faults: Faults) -> None:
        """Replace the running faults and re-seed."""
        self.current = faults
        self._rng = random.Random(faults.seed)

    def decide(self) -> Fault | None:
        """The fault for one create request, or None."""
        faults = self.current
        if not faults.any_create_fault:
            return None
        draw = self._rng.random
        r429, r500, rlost, rslow = draw(), draw(), draw(), draw()
        if r429 < faults.error_429_rate:
            return "429"
        if r500 < faults.error_500_rate:
            return "500"
        if rlost < faults.lost_answer_rate:
            return "lost"
        if rslow < faults.slow_answer_rate:
            return "slow"
        return None


class DroppedAnswer(Response):
    """Close the TCP connection with no HTTP response (needs SandboxH11Protocol)."""

    def __init__(self) -> None:
        super().__init__(status_code=599)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        transport = scope.get("state", {}).get(TRANSPORT_KEY)
        if transport is None:
            raise RuntimeError(
                "a lost-answer fault needs the sandbox's protocol: run it with SandboxServer "
                "or serve() (uvicorn http=SandboxH11Protocol)"
            )
        transport.abort()
        # Wait until the server has seen the connection go, so it does not try to answer.
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(5):
                while (await receive())["type"] != "http.disconnect":
                    pass
