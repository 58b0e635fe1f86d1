"""Request pacing for one API key: a token bucket that also listens to RootFi's answers."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import httpx

from rootfi_sync.client import retry_after_seconds


def burst_for(per_minute: int) -> int:
    """Return the burst that keeps any 60-second window within `per_minute` requests."""
    return max(1, per_minute // 60)


class TokenBucket:
    """Allows `per_minute` requests in any 60 seconds, evenly, across one process's threads.

    The burst and the refill rate add up to the budget, so even a server that counts in
    fixed one-minute windows never sees more. It also pauses everyone when an answer says the
    budget is spent (a 429, or `X-RateLimit-Remaining: 0`) until the time the answer gives.
    """

    def __init__(
        self,
        per_minute: int,
        *,
        burst: int | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.capacity = float(burst if burst is not None else burst_for(per_minute))
        self.rate = max(0.0, per_minute - self.capacity) / 60.0 if per_minute > 0 else 0.0
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

    def wait_if_paused(self) -> None:
        """Block while an answer has paused sending."""
        while (wait := self._paused_until - self._clock()) > 0:
            self._sleep(wait)

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


class SharedRateLimit:
    """Paces every run and worker of a Prefect server through one global rate limit.

    The limit (created by `rootfi-sync setup`) has a slot decay, so Prefect hands out at most
    its budget a minute whichever process asks. Slots are taken `chunk` at a time (the
    limit's burst) and spent locally: one call to Prefect per chunk rather than per request,
    which keeps contention, and Prefect's growing back-off under contention, low. Pauses
    asked for by RootFi's answers stay local.
    """

    def __init__(self, name: str, local: TokenBucket, chunk: int = 1) -> None:
        self.name, self._local, self._chunk = name, local, max(1, chunk)
        self._stash = 0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        from prefect.concurrency.sync import rate_limit

        self._local.wait_if_paused()
        with self._lock:
            if self._stash == 0:
                rate_limit(self.name, occupy=self._chunk, strict=True)
                self._stash = self._chunk
            self._stash -= 1

    def observe(self, response: httpx.Response) -> None:
        self._local.observe(response)


def shared_limit_size(name: str) -> int | None:
    """Return the size (burst) of the current Prefect server's global limit, None if absent."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        return None
    return int(limit.limit) if limit.active and limit.slot_decay_per_second > 0 else None


def make_governor(per_minute: int, shared_name: str | None) -> TokenBucket | SharedRateLimit:
    """Return the shared Prefect rate limit if the server has it, else a local bucket."""
    local = TokenBucket(per_minute)
    size = shared_limit_size(shared_name) if per_minute > 0 and shared_name else None
    return SharedRateLimit(shared_name, local, chunk=size) if shared_name and size else local
