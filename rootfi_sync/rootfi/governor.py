"""Request pacing for one API key: a token bucket that also listens to RootFi's answers."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from rootfi_sync.rootfi.client import retry_after_seconds

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient

Logger = logging.Logger | logging.LoggerAdapter[Any]


def pacing(per_minute: int, burst: int | None = None) -> tuple[int, float]:
    """Return the burst and the refill per second of a budget of `per_minute` requests.

    They add up to the budget (burst + 60 s of refill), so any 60-second window stays within
    it; a budget of 1 a minute refills at 1 a minute (2 in the very first minute).
    """
    burst = burst if burst is not None else max(1, per_minute // 60)
    return burst, max(per_minute - burst, 1) / 60.0


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
        self.per_minute = per_minute
        capacity, self.rate = pacing(per_minute, burst)
        self.capacity = float(capacity)
        self._tokens = self.capacity
        self._clock, self._sleep = clock, sleep
        self._stamp = clock()
        self._paused_until = 0.0
        self._lock = threading.Lock()

    def acquire(self) -> None:
        """Block until one request may be sent."""
        if self.per_minute <= 0:
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
    its budget a minute whichever process asks. Slots are taken `chunk` at a time and spent
    locally: one call to Prefect per chunk rather than per request.

    It reads the limit before asking for slots, and asks only once enough of them are free.
    A refused request is not free: Prefect stamps the limit's row without decaying its slots,
    so each refusal throws away the decay accrued since the last update (with Prefect's own
    `rate_limit()`, two runs left a third of the budget unused). A read changes nothing.
    Pauses asked for by RootFi's answers stay local.

    A server can report slots that never free up (PrefectHQ/prefect#20187: a limit whose
    slots do not decay, or are read undecayed). After `max_wait` seconds without a chunk the
    run stops asking and paces itself alone with its local bucket, and says so once.
    """

    def __init__(
        self,
        name: str,
        local: TokenBucket,
        chunk: int = 1,
        decay: float = 1.0,
        *,
        max_wait: float = 120.0,
        logger: Logger | None = None,
    ) -> None:
        self.name, self._local, self._chunk = name, local, max(1, chunk)
        self._slot_seconds = 1.0 / max(decay, 1e-6)
        self._max_wait = max_wait
        self._logger = logger or logging.getLogger(__name__)
        self._stash = 0
        self.alone = False  # True once the run gave up on the shared limit
        self._lock = threading.Lock()
        self._client: SyncPrefectClient | None = None  # one connection for the whole run

    def close(self) -> None:
        if self._client is not None:
            self._client.__exit__(None, None, None)
            self._client = None

    def acquire(self) -> None:
        self._local.wait_if_paused()
        with self._lock:
            if not self.alone and self._stash == 0:
                if self._take_chunk():
                    self._stash = self._chunk
                else:
                    self._go_alone()
            if not self.alone:
                self._stash -= 1
                return
        self._local.acquire()

    def _take_chunk(self) -> bool:
        """Take a chunk of slots; False when none came within `max_wait` seconds."""
        from prefect.client.orchestration import get_client

        if self._client is None:
            self._client = get_client(sync_client=True).__enter__()
        deadline = time.monotonic() + self._max_wait
        while True:
            limit = self._client.read_global_concurrency_limit_by_name(self.name)
            short = self._chunk - (limit.limit - limit.active_slots)  # active_slots is decayed
            if short <= 0:
                try:
                    self._client.increment_concurrency_slots([self.name], self._chunk, "rate_limit")
                    return True
                except httpx.HTTPStatusError as exc:
                    if exc.response.status_code != 423:  # 423 Locked: another run was first
                        raise
                short = 1
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            # Slots decay whole, from the row's last update: wait for the missing ones, then look.
            time.sleep(min(max(short, 1) * self._slot_seconds, left))

    def _go_alone(self) -> None:
        self.alone = True
        self._logger.warning(
            "shared rate limit %r: no free slot within %.0f s (ROOTFI_RATE_LIMIT_WAIT_SECONDS); "
            "its slots are not freeing up (a limit whose slots do not decay, or a server that "
            "reports them undecayed: PrefectHQ/prefect#20187). This run now paces itself alone, "
            "at %s requests a minute; RootFi's 429s still pause it.",
            self.name,
            self._max_wait,
            self._local.per_minute,
        )

    def observe(self, response: httpx.Response) -> None:
        self._local.observe(response)


def shared_limit_size(name: str) -> tuple[int, float] | None:
    """Return the size (burst) and slot decay of the server's global limit, None if absent."""
    from prefect.client.orchestration import get_client
    from prefect.exceptions import ObjectNotFound

    try:
        with get_client(sync_client=True) as client:
            limit = client.read_global_concurrency_limit_by_name(name)
    except ObjectNotFound:
        return None
    if not limit.active or limit.slot_decay_per_second <= 0:
        return None
    return int(limit.limit), float(limit.slot_decay_per_second)


def make_governor(
    per_minute: int,
    shared_name: str | None,
    *,
    max_wait: float = 120.0,
    logger: Logger | None = None,
) -> TokenBucket | SharedRateLimit:
    """Return the shared Prefect rate limit if the server has it, else a local bucket.

    `max_wait` bounds how long the shared limit is waited for before the run paces alone.
    """
    local = TokenBucket(per_minute)
    found = shared_limit_size(shared_name) if per_minute > 0 and shared_name else None
    if not shared_name or not found:
        return local
    size, decay = found
    return SharedRateLimit(
        shared_name, local, chunk=size, decay=decay, max_wait=max_wait, logger=logger
    )
