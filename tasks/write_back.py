"""Write back: record intents and outcomes in the ledger, one statement a batch, fenced by
the run's leases."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from prefect import task
from prefect.cache_policies import NO_CACHE
from prefect.futures import PrefectFuture

from rootfi_sync import run
from rootfi_sync.ledger import Outcome
from rootfi_sync.rootfi.lookup import Item
from rootfi_sync.run.window import outcomes_of_send


@task(name="record-intent", cache_policy=NO_CACHE, task_run_name="record-intent-{batch_no}")
def record_intent(items: list[Item], *, batch_no: int) -> list[Item]:
    """Mark the batch SENDING, before any request leaves; return the items this run may send
    (those whose lease it still holds)."""
    parts = run.current()
    intents = {i.customer_id: (i.payload_hash, i.keys) for i in items}
    held = parts.ledger.record_intent(intents, mode=parts.delivery.mode)
    parts.leases.release(i.customer_id for i in items if i.customer_id not in held)
    return [i for i in items if i.customer_id in held]


@dataclass(frozen=True, slots=True)
class ToRecord:
    """A batch whose send was started: what recording its end needs besides the send."""

    batch_no: int
    items: list[Item]  # those sent (their intent recorded)
    rejects: list[Outcome]  # rows refused before sending (FAILED)
    attempts: dict[str, int]  # each customer's attempts, this one included


@dataclass(frozen=True, slots=True)
class Recorded:
    """What record-outcomes made of one batch's send: the outcomes it gave (`sent`), those
    written (where the run still held the lease; parked FAILED when out of attempts; rejects
    left out: they are counted when built), the error that must stop the run, and its time."""

    sent: list[Outcome]
    written: list[Outcome]
    stop: BaseException | None
    seconds: float


@task(
    name="record-outcomes", cache_policy=NO_CACHE, task_run_name="record-outcomes-{batch.batch_no}"
)
def record_outcomes(
    send: PrefectFuture[list[Outcome]] | None,
    *,
    batch: ToRecord,
    max_attempts: int,
    requeue_seconds: float,
) -> Recorded:
    """Write the batch's outcomes where this run still holds the lease; return what was written.

    `send` is the send task's future, or None when nothing was sent. What it ended with (its
    outcomes, or what it raised once its retries ran out) is read here: the caller hands the
    future in quoted and waits for it through `allow_failure`, since Prefect would otherwise
    walk the hundred outcomes it resolves a parameter to (a quarter of single mode's task
    threads, bench/RESULTS.md).
    """
    started = time.perf_counter()
    sent = None if send is None else send.result(raise_on_failure=False)
    outcomes, stop = outcomes_of_send(batch.items, sent)
    parts = run.current()
    written = parts.ledger.record_outcomes(
        batch.rejects + outcomes,
        max_attempts=max_attempts,
        requeue=timedelta(seconds=requeue_seconds),
        attempts=batch.attempts,
    )
    parts.leases.release(o.customer_id for o in batch.rejects + outcomes)
    rejected = {o.customer_id for o in batch.rejects}
    kept = [o for o in written if o.customer_id not in rejected]
    return Recorded(outcomes, kept, stop, time.perf_counter() - started)
