"""Request pacing for one API key: a token bucket that also listens to RootFi's answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from rootfi_sync.client import retry_after_seconds


class TokenBucket:
    """Allows `per_minute` requests a minute, evenly, across the threads of one process.

    It also pauses everyone when an answer says the budget is spent (a 429, or
    `X-RateLimit-Remaining: 0`) until the time the answer gives.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate = per_minute / 60.0
        self.capacity = float(burst if burst is not None else max(1, per_minute // 10))
        self._tokens = self.capacity
        self._clock, self._sleep = clock, sleep
        self._stamp = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until one request may be sent."""
        if self.rate <= 0:
            return
        while True:
            with self._lock:
                wait = self._take()
            if wait <= 0:
                return
            self._sleep(wait)

    def _take(self) -> float:
        now = self._clock()
        if now < self._paused_until:
            return self._paused_until - now
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now
        if self._tokens >= 1 - 1e-9:  # float rounding must not leave a sliver forever
            self._tokens = max(0.0, self._tokens - 1)
            return 0.0
        return max((1 - self._tokens) / self.rate, 1e-3)

    def observe(self, response: httpx.Response) -> None:
        """Pause after a 429 or an exhausted budget, until the server says to resume."""
        remaining = response.headers.get("x-ratelimit-remaining")
        if response.status_code != 429 and remaining not in ("0", "0.0"):
            return
        wait = retry_after_seconds(response)
        if wait is None:
            wait = 1.0
        with self._lock:
            self._tokens = 0.0
            self._paused_until = max(self._paused_until, self._clock() + wait)
