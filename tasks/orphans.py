"""Orphans: customers in doubt whose source row was deleted, looked up and settled
(`rootfi_sync.run.orphans`); nothing is ever sent for them."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE

from rootfi_sync import run
from rootfi_sync.ledger import Outcome
from rootfi_sync.run.orphans import Orphan, settle


@dataclass(slots=True)
class Settled:
    """One page of orphans: the outcomes written (where this run held the lease), how many
    never-sent ones were dropped, the customer id to go on after (None: no page left), and
    whether no page follows (`ended`)."""

    written: list[Outcome] = field(default_factory=list)
    forgotten: int = 0
    last_id: str | None = None
    ended: bool = False


@task(name="settle-orphans", cache_policy=NO_CACHE, task_run_name="settle-orphans-{page_no}")
def settle_orphans(
    page_no: int, *, after: str | None, limit: int, requeue_seconds: float
) -> Settled:
    """Claim the next page of customers whose source row is gone, look up those a request
    may have left for, and record what became of them; return what was written."""
    parts = run.current()
    ledger = parts.ledger
    now = ledger.now()
    page = ledger.orphans(now, after=after, limit=limit)
    forgotten = ledger.forget_unsent(page.unsent, now)
    won = ledger.claim(page.candidates, timedelta(seconds=parts.leases.lease), now)
    if not won:  # none in doubt, or another run holds them: nothing to look up
        return Settled([], forgotten, page.last_id, page.ended)
    ids = [c.customer_id for c in won]
    parts.leases.hold(ids)
    try:
        outcomes = settle(parts.delivery.lookup, [Orphan.of(c) for c in won], ledger.now())
        # No attempt is made (nothing is sent): none counts against ROOTFI_MAX_ATTEMPTS.
        requeue = timedelta(seconds=requeue_seconds)
        written = ledger.record_outcomes(outcomes, max_attempts=1, requeue=requeue, attempts={})
    finally:
        parts.leases.release(ids)
    return Settled(written, forgotten, page.last_id, page.ended)
