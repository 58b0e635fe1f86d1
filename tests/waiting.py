"""Waiting in a test for something to be true, with a deadline, instead of a fixed sleep.

A fixed sleep guesses how long a thing takes: too short on a loaded machine (the test
flakes), too long everywhere else (the suite crawls). These poll the condition itself: the
ledger's leases or settle times as the rows record them, the records the sandbox stores.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TypeVar

import httpx
import sqlalchemy as sa
from rootfi_sandbox import SandboxServer

from rootfi_sync.ledger.db import make_engine
from rootfi_sync.ledger.tables import ledger
from rootfi_sync.outcomes import FINAL_STATES

T = TypeVar("T")
POLL_SECONDS = 0.05


def wait_until(condition: Callable[[], T], what: str, timeout: float = 60.0) -> T:
    """Return the first true value of `condition()`, asked every POLL_SECONDS; fail saying
    `what` was awaited when `timeout` seconds pass first."""
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout:.0f} s for {what}: {value!r}")
        time.sleep(POLL_SECONDS)
    return value


def _moment(url: str, query: sa.Select[tuple[datetime | None]]) -> datetime | None:
    """The one time `query` reads from the ledger at `url`, as aware UTC (or None)."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            moment: datetime | None = conn.execute(query).scalar()
    finally:
        engine.dispose()
    if moment is not None and moment.tzinfo is None:  # SQLite's max()/min() of stored text
        moment = datetime.fromisoformat(str(moment)).replace(tzinfo=UTC)
    return moment


def _newest(url: str, column: sa.Column[datetime]) -> datetime | None:
    return _moment(url, sa.select(sa.func.max(column)))


def _past(moment: datetime | None) -> bool:
    return moment is None or moment < datetime.now(UTC)


def leases_run_out(url: str, then: float = 0.0, timeout: float = 60.0) -> None:
    """Wait until no ledger row at `url` holds a lease any more (every lease has run out), and
    `then` seconds more (e.g. the timeout of a request a dead run may have sent last)."""
    more = timedelta(seconds=then)

    def over() -> bool:
        end = _newest(url, ledger.c.lease_expires_at)
        return end is None or _past(end + more)

    wait_until(over, f"every lease to run out, and {then} s more", timeout)


def newest_attempt(url: str) -> datetime | None:
    """When the ledger at `url` last recorded an attempt (an intent: a send leaving)."""
    return _newest(url, ledger.c.attempted_at)


def next_due(url: str) -> datetime | None:
    """When the ledger at `url` next lets a run take a customer that is not final (None: none
    waits)."""
    c = ledger.c
    return _moment(
        url, sa.select(sa.func.min(c.next_attempt_at)).where(c.status.not_in(FINAL_STATES))
    )


def passed(moment: datetime | None, what: str, timeout: float = 60.0) -> None:
    """Wait until `moment` (UTC; None: at once) is past: a time the test read from the ledger
    before, e.g. an attempt's settle time, which a later run must not move on."""
    wait_until(lambda: _past(moment), what, timeout)


def attempts_older_than(url: str, seconds: float, timeout: float = 60.0) -> None:
    """Wait until the newest attempt in the ledger at `url` is `seconds` old (e.g. what it
    sent had its settle time to land)."""
    age = timedelta(seconds=seconds)

    def old_enough() -> bool:
        newest = newest_attempt(url)
        return newest is None or _past(newest + age)

    wait_until(old_enough, f"the newest attempt to be {seconds} s old", timeout)


def stored(sandbox: SandboxServer, company: int, count: int, timeout: float = 60.0) -> None:
    """Wait until the sandbox stores `count` customers of `company` (late records landed)."""
    wait_until(
        lambda: len(sandbox.admin.customers(company)) >= count,
        f"{count} customers stored in the sandbox",
        timeout,
    )


def sync_ended(sandbox: SandboxServer, sync_id: str, api_key: str, timeout: float = 60.0) -> None:
    """Wait until the sandbox says the async write `sync_id` ended (SUCCESS or FAILED)."""

    def status() -> bool:  # a sync not readable yet (404, a GET fault) has not ended
        answer = httpx.get(
            f"{sandbox.api_url}/core/syncs/{sync_id}", headers={"api_key": api_key}, timeout=10
        )
        ok = answer.status_code == 200
        return ok and answer.json()["data"]["status"] in ("SUCCESS", "FAILED")

    wait_until(status, f"the async write {sync_id} to end", timeout)
