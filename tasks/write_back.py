"""Write back: record intents and outcomes in the ledger, one statement a batch, fenced by
the run's leases."""

from __future__ import annotations

from datetime import timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE

from rootfi_sync import run
from rootfi_sync.ledger import Outcome
from rootfi_sync.lookup import Item


@task(name="record-intent", cache_policy=NO_CACHE, task_run_name="record-intent-{batch_no}")
def record_intent(items: list[Item], *, batch_no: int) -> list[Item]:
    """Mark the batch SENDING, before any request leaves; return the items this run may send
    (those whose lease it still holds)."""
    parts = run.current()
    intents = {i.customer_id: (i.payload_hash, i.keys) for i in items}
    held = parts.ledger.record_intent(intents, mode=parts.delivery.mode)
    parts.leases.release(i.customer_id for i in items if i.customer_id not in held)
    return [i for i in items if i.customer_id in held]


@task(name="record-outcomes", cache_policy=NO_CACHE, task_run_name="record-outcomes-{batch_no}")
def record_outcomes(
    outcomes: list[Outcome],
    *,
    batch_no: int,
    attempts: dict[str, int],
    max_attempts: int,
    requeue_seconds: float,
) -> list[Outcome]:
    """Write the batch's outcomes where this run still holds the lease; return those written
    (out of attempts: parked FAILED). `attempts` counts each customer's, this one included."""
    parts = run.current()
    written = parts.ledger.record_outcomes(
        outcomes,
        max_attempts=max_attempts,
        requeue=timedelta(seconds=requeue_seconds),
        attempts=attempts,
    )
    parts.leases.release(o.customer_id for o in outcomes)
    return written
