"""Timestamps as RootFi writes them (`2024-01-22T05:07:31.465Z`) and as it reads them."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)


def now_ms() -> int:
    """Milliseconds since the epoch."""
    return time.time_ns() // 1_000_000


def iso_from_ms(ms: int) -> str:
    """ISO 8601 UTC with milliseconds and a Z, the year in four digits (`strftime('%Y')`
    does not pad years below 1000 on every platform)."""
    moment = _EPOCH + ms * _ONE_MS
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"


def parse_iso(text: str) -> datetime:
    """Parse ISO 8601 (a trailing Z is accepted; no offset means UTC). Raises ValueError."""
    if not isinstance(text, str) or not text:
        raise ValueError("not an ISO 8601 string")
    moment = datetime.fromisoformat(text)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def ms_from_iso(text: str) -> int:
    """Milliseconds since the epoch of an ISO 8601 string. Raises ValueError."""
    return (parse_iso(text) - _EPOCH) // _ONE_MS
