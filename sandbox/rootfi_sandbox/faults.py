"""Fault injection for `/v3`: which fault (if any) hits a create or a GET, the error answers
they give, and the "response" that drops the connection instead of answering.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from typing import Literal, TypeVar

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from rootfi_sandbox.config import Faults
from rootfi_sandbox.errors import ApiError, error_response
from rootfi_sandbox.protocol import TRANSPORT_KEY

Fault = Literal["429", "500", "lost", "slow"]
GetFault = Literal["429", "500", "lost"]
K = TypeVar("K", bound=str)


class FaultInjector:
    """The running faults and their dice: `random.Random(seed)` for creates and
    `random.Random(seed + 1)` for GETs.

    Each create request draws four numbers (429, 500, lost, slow, in that order) while any
    create rate is non-zero, each GET three (429, 500, lost) while any GET rate is; the two
    dice are apart, so a seed gives the same sequence of create faults for the same creates
    however many GETs come in between.
    """

    def __init__(self, faults: Faults) -> None:
        self.set(faults)

    def set(self, faults: Faults) -> None:
        """Replace the running faults and re-seed both dice."""
        self.current = faults
        self._rng = random.Random(faults.seed)
        self._get_rng = random.Random(faults.get_seed)

    def decide(self) -> Fault | None:
        """The fault for one create request, or None."""
        faults = self.current
        if not faults.any_create_fault:
            return None
        return _first(
            self._rng,
            [
                ("429", faults.error_429_rate),
                ("500", faults.error_500_rate),
                ("lost", faults.lost_answer_rate),
                ("slow", faults.slow_answer_rate),
            ],
        )

    def decide_get(self) -> GetFault | None:
        """The fault for one GET request, or None."""
        faults = self.current
        if not faults.any_get_fault:
            return None
        return _first(
            self._get_rng,
            [
                ("429", faults.get_error_429_rate),
                ("500", faults.get_error_500_rate),
                ("lost", faults.get_lost_answer_rate),
            ],
        )


def _first(rng: random.Random, rates: list[tuple[K, float]]) -> K | None:
    """Draw once for each kind of fault, in order (so a seed replays the same faults), and
    return the first whose draw falls under its rate, or None."""
    draws = [rng.random() for _ in rates]
    return next(
        (kind for (kind, rate), draw in zip(rates, draws, strict=True) if draw < rate), None
    )


def fault_response(fault: GetFault) -> Response:
    """What a 429, 500 or lost-answer fault answers (the same for creates and GETs)."""
    if fault == "429":
        error = ApiError(429, "RATE_LIMITED", "Too many requests (sandbox fault)")
        return error_response(error, {"Retry-After": "1"})
    if fault == "500":
        return error_response(ApiError(500, "INTERNAL_SERVER_ERROR", "Internal error"))
    return DroppedAnswer()


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
