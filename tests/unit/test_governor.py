from __future__ import annotations

import httpx

from rootfi_sync.governor import TokenBucket


class FakeClock:
    """A clock that only moves when the bucket sleeps."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


def test_paces_requests_to_the_configured_rate_after_the_burst() -> None:
    clock = FakeClock()
    bucket = TokenBucket(600, burst=10, clock=clock, sleep=clock.sleep)
    for _ in range(10 + 600):
        bucket.acquire()
    assert 59.5 <= clock.now <= 60.5


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
