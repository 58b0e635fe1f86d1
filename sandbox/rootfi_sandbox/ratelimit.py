"""A fixed 60-second window per API key, as `X-RateLimit-*` headers and 429s.

A key's window opens with its first request and lasts 60 s; every request in it counts.
`X-RateLimit-Reset` is the Unix time (seconds, rounded up) when the window ends. With no
limit configured the headers are left out altogether.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

WINDOW_SECONDS = 60.0
Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether the request may go on, the headers to add, and how long to wait if not."""

    allowed: bool
    headers: Headers
    retry_after: int


class RateLimiter:
    """Counts requests per API key in fixed windows; `per_minute=None` means unlimited."""

    def __init__(self, per_minute: int | None) -> None:
        self.per_minute = per_minute
        self._windows: dict[bytes, tuple[float, int]] = {}

    def reset(self, per_minute: int | None) -> None:
        """Forget every window and apply a new limit."""
        self.per_minute = per_minute
        self._windows.clear()

    def check(self, key: bytes, now: float | None = None) -> Verdict | None:
        """Count one request of `key`; None when there is no limit."""
        limit = self.per_minute
        if limit is None:
            return None
        now = time.time() if now is None else now
        start, used = self._windows.get(key, (now, 0))
        if now >= start + WINDOW_SECONDS:
            start, used = now, 0
        used += 1
        self._windows[key] = (start, used)
        end = start + WINDOW_SECONDS
        headers = [
            (b"x-ratelimit-limit", str(limit).encode()),
            (b"x-ratelimit-remaining", str(max(0, limit - used)).encode()),
            (b"x-ratelimit-reset", str(math.ceil(end)).encode()),
        ]
        retry_after = max(1, math.ceil(end - now))
        return Verdict(used <= limit, headers, retry_after)
