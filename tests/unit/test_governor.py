from __future__ import annotations

import bisect

import httpx

from rootfi_sync.rootfi.governor import TokenBucket


class FakeClock:
    """A clock that only moves when the bucket sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_never_allows_more_than_the_budget_in_any_minute_yet_uses_nearly_all_of_it() -> None:
    clock = FakeClock()
    bucket = TokenBucket(600, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(1800):
        bucket.acquire()
        stamps.append(clock.now)
    busiest = max(bisect.bisect_left(stamps, t + 60) - i for i, t in enumerate(stamps))
    assert busiest <= 600
    assert 1800 / stamps[-1] * 60 >= 0.97 * 600


def test_pauses_everyone_until_retry_after_when_throttled() -> None:
    clock = FakeClock()
    bucket = TokenBucket(6000, burst=100, clock=clock, sleep=clock.sleep)
    bucket.observe(httpx.Response(429, headers={"Retry-After": "7"}))
    bucket.acquire()
    assert clock.now >= 7.0


def test_pauses_when_the_server_says_the_budget_is_spent() -> None:
    clock = FakeClock()
    bucket = TokenBucket(6000, burst=100, clock=clock, sleep=clock.sleep)
    bucket.observe(httpx.Response(200, headers={"X-RateLimit-Remaining": "0", "Retry-After": "2"}))
    bucket.acquire()
    assert clock.now >= 2.0


def test_a_zero_rate_means_no_pacing() -> None:
    clock = FakeClock()
    bucket = TokenBucket(0, clock=clock, sleep=clock.sleep)
    for _ in range(1000):
        bucket.acquire()
    assert clock.now == 0.0


def test_a_budget_under_one_a_second_is_still_paced() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1, clock=clock, sleep=clock.sleep)
    for _ in range(4):
        bucket.acquire()
    assert clock.now >= 3 * 60 - 1e-6  # one a minute after the first
