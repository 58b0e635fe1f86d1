"""Extract: find the customers to sync and lease them to this run."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE

from rootfi_sync import run
from rootfi_sync.ledger import KEY_MAX, Candidate, Page


@dataclass(slots=True)
class Claimed:
    """One page: the candidates this run holds now; `seen` also counts those another run
    held and the rows skipped for a key the ledger cannot hold; `ended`: no page follows."""

    candidates: list[Candidate] = field(default_factory=list)
    seen: int = 0
    last_id: Any = None
    ended: bool = False


@task(name="claim-batch", cache_policy=NO_CACHE, task_run_name="claim-batch-{batch_no}")
def claim_batch(
    batch_no: int, *, after: Any, limit: int, only: list[Any] | None = None, lease: bool = True
) -> Claimed:
    """Return the next page of customers to sync, leased to this run (read only without
    `lease`: a dry run)."""
    parts = run.current()
    ledger = parts.ledger
    now = ledger.now()
    page = ledger.candidates(now, after=after, limit=limit, only=only or ())
    _warn_about_keys(page, ledger.source.c.id.name)
    seen = len(page.candidates) + page.invalid_keys
    if not lease:
        return Claimed(page.candidates, seen, page.last_id, page.ended)
    won = ledger.claim(page.candidates, timedelta(seconds=parts.leases.lease), now)
    parts.leases.hold(c.customer_id for c in won)
    return Claimed(won, seen, page.last_id, page.ended)


def _warn_about_keys(page: Page, column: str) -> None:
    """Log the rows skipped for their key and the asked-for ids that cannot be keys."""
    logger = get_run_logger()
    if page.invalid_keys:
        logger.warning(
            "skipped %s source row(s) whose key column %r is NULL or longer than %s "
            "characters: no ledger row can record them; give each row a key",
            page.invalid_keys,
            column,
            KEY_MAX,
        )
    if page.unknown_ids:
        logger.warning(
            "no customer can have the id(s) %s: they are not values of key column %r's type",
            ", ".join(map(repr, page.unknown_ids)),
            column,
        )


@task(name="count-pending", cache_policy=NO_CACHE)
def count_pending(only: list[Any] | None = None) -> int:
    """Return how many customers this run may have to look at (for progress)."""
    ledger = run.current().ledger
    return ledger.count_pending(ledger.now(), only or ())
