"""A `Delivery` of company 1089 (batch mode unless told) against an in-process RootFi app (an httpx
`MockTransport`), with no ledger behind it (`FreeBook`) and the clock stopped at `now`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import httpx
from pydantic import SecretStr

from rootfi_sync.rootfi.client import RootFiClient
from rootfi_sync.rootfi.decisions import Timing
from rootfi_sync.rootfi.delivery import Delivery, FreeBook


@contextmanager
def mock_delivery(
    app: Callable[[httpx.Request], httpx.Response],
    now: datetime,
    mode: str = "batch",
    **options: Any,
) -> Iterator[Delivery]:
    """Yield the delivery; `options` are `Delivery`'s other fields (no ledger, timings of a
    settled write and no pause between polls unless given)."""
    transport = httpx.MockTransport(app)
    with (
        RootFiClient("http://127.0.0.1:1/v3", SecretStr("k"), transport=transport) as client,
        ThreadPoolExecutor(1) as pool,
    ):
        defaults: dict[str, Any] = {
            "book": FreeBook(clock=lambda: now),
            "timing": Timing(async_settle=900, sync_poll=60, skew=timedelta(0)),
            "poll_interval": 0.0,
        }
        yield Delivery(client, 1089, mode, pool, **(defaults | options))
