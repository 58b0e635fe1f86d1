"""Write back: record intents and outcomes in the ledger, one statement a batch."""

from __future__ import annotations

from datetime import timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE

from rootfi_sync.delivery import Item
from rootfi_sync.ledger import Ledger, Outcome, utcnow


@task(name="record-intent", cache_policy=NO_CACHE, task_run_name="record-intent-{batch_no}")
def record_intent(ledger: Ledger, items: list[Item], *, batch_no: int) -> None:
    """Mark the batch SENDING with its payload hashes, before any request leaves."""
    ledger.record_intent({i.customer_id: i.payload_hash for i in items}, utcnow())


@task(name="record-outcomes", cache_policy=NO_CACHE, task_run_name="record-outcomes-{batch_no}")
def record_outcomes(
    ledger: Ledger, outcomes: list[Outcome], *, batch_no: int, max_attempts: int,
    requeue_seconds: float, attempts: dict[str, int],
) -> list[Outcome]:  # fmt: skip
    """Write the batch's outcomes; return them as written (out of attempts: parked FAILED)."""
    return ledger.record_outcomes(
        outcomes, utcnow(), max_attempts=max_attempts,
        requeue=timedelta(seconds=requeue_seconds), attempts=attempts,
    )  # fmt: skip
