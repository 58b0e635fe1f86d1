"""Extract: find the customers to sync and lease them to this run."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from prefect import task
from prefect.cache_policies import NO_CACHE

from rootfi_sync.lease import LeaseKeeper
from rootfi_sync.ledger import Candidate, Ledger


@dataclass(slots=True)
class Claimed:
    """One page of candidates: those this run holds now, and how many another run held."""

    candidates: list[Candidate] = field(default_factory=list)
    seen: int = 0
    last_id: Any = None


@task(name="claim-batch", cache_policy=NO_CACHE, task_run_name="claim-batch-{batch_no}")
def claim_batch(
    ledger: Ledger,
    leases: LeaseKeeper | None,
    *,
    batch_no: int,
    after: Any,
    limit: int,
    only: list[Any] | None = None,
) -> Claimed:
    """Return the next page of customers to sync, leased to this run (read only without
    `leases`: a dry run)."""
    page = ledger.candidates(ledger.now(), after=after, limit=limit, only=only or ())
    if leases is None:
        return Claimed(page.candidates, seen=len(page.candidates), last_id=page.last_id)
    since = time.monotonic()
    won = ledger.claim(page.candidates, timedelta(seconds=leases.lease))
    leases.hold((c.customer_id for c in won), since)
    return Claimed(won, seen=len(page.candidates), last_id=page.last_id)


@task(name="count-pending", cache_policy=NO_CACHE)
def count_pending(ledger: Ledger, only: list[Any] | None = None) -> int:
    """Return how many customers this run may have to look at (for progress)."""
    return ledger.count_pending(ledger.now(), only or ())
