"""Load: send a batch to RootFi, with task-level retries and caching.

A retry is never blind: it starts from what the ledger holds (`resume`: outcomes the attempts
before it recorded, when a request for each customer may last have left and in which mode),
not from this process's memory, so a retry anywhere behaves the same. It looks the doubtful
ones up in RootFi first, and sends only what it did not find and may send
(`rootfi_sync.rootfi.decisions`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import Any

from prefect import runtime, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.utilities.annotations import quote
from prefect.utilities.hashing import hash_objects

from rootfi_sync import errors, run
from rootfi_sync.ledger import Ledger, Outcome, Status
from rootfi_sync.outcomes import FINAL_STATES
from rootfi_sync.rootfi.decisions import Event, pending
from rootfi_sync.rootfi.delivery import RETRYABLE, BatchIncomplete
from rootfi_sync.rootfi.lookup import Item
from rootfi_sync.run import fanout


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what a later attempt in this run can move on; never 4xx or 401/403.

    Customers in doubt wait their settle time, which is usually longer than a run's retries:
    a batch holding only those is left to a later run (see BatchIncomplete.retry_now).
    """
    try:
        state.result()
    except BatchIncomplete as exc:
        return exc.retry_now
    except RETRYABLE:
        return True
    except Exception:
        return False
    return False


@dataclass(frozen=True, slots=True)
class SendRequest:
    """One batch to send: to which API, for which company, in which write mode, and what."""

    base_url: str
    company_id: int
    mode: str
    batch_no: int  # names the task run; not part of the cache key
    items: tuple[Item, ...]


def send_key(request: SendRequest) -> str | None:
    """The send cache's key, and all of it: the API, the company, the mode and each customer's
    payload fingerprint (not the run, nor the batch's number). None (no cache) when a customer's
    ledger state requires a lookup (in doubt, or held by an async write): only RootFi may say
    what became of it, never an answer kept from before."""
    if any(i.doubt_since is not None or i.sync_id for i in request.items):
        return None
    return hash_objects(
        request.base_url,
        request.company_id,
        request.mode,
        [(i.customer_id, i.payload_hash) for i in request.items],
    )


def sent_batch_key(context: TaskRunContext, parameters: dict[str, Any]) -> str | None:
    """`send_key` of the task's request (handed in as is, or in Prefect's `quote`)."""
    request = parameters["request"]
    return send_key(request.unquote() if isinstance(request, quote) else request)


@task(
    name="send-batch",
    task_run_name="send-batch-{request.batch_no}",
    retry_condition_fn=is_transient,
    retry_jitter_factor=0.5,
    cache_key_fn=sent_batch_key,
    cache_expiration=timedelta(hours=6),
    persist_result=True,
    cache_result_in_memory=False,  # persisted for the cache; memory stays flat over a run
)
def send_batch(request: SendRequest) -> list[Outcome]:
    """Return each customer's outcome; raise BatchIncomplete while some got no answer."""
    parts = run.current()
    delivery = parts.delivery
    if (request.company_id, request.mode) != (delivery.company_id, delivery.mode):
        raise ValueError(  # the cache key would not say what is sent: a bug
            f"send request for company {request.company_id} ({request.mode}) given to the "
            f"run of company {delivery.company_id} ({delivery.mode})"
        )
    context = TaskRunContext.get()
    retries = context.task.retries if context is not None else 0
    return attempt(parts, request.items, runtime.task_run.run_count or 1, retries)


def attempt(
    parts: run.RunParts, items: Sequence[Item], run_count: int, retries: int
) -> list[Outcome]:
    """Make attempt `run_count` (of 1 + `retries`) at a batch; return each item's outcome.

    A retry starts from what the ledger holds (`resume`). Raises BatchIncomplete while some
    got no answer, after writing what this attempt settled when a retry may follow.
    """
    known: list[Outcome] = []
    if run_count > 1:
        known, items = resume(parts.ledger, items)
    try:
        return known + parts.delivery.deliver(items, parts.ledger.now())
    except BatchIncomplete as exc:
        outcomes = exc.outcomes
        if run_count <= retries:
            # What a retry resumes from, in the ledger, not memory (a retry follows when one
            # customer may be tried now, and takes the whole batch). What is written here is
            # marked recorded, so the flow's write does not add it to the history again.
            written = parts.ledger.record_settled([*outcomes, *exc.pending.values()])
            outcomes = [
                replace(o, recorded=True) if o.customer_id in written else o for o in outcomes
            ]
        raise BatchIncomplete(str(exc), known + outcomes, exc.pending) from None


def resume(ledger: Ledger, items: Sequence[Item]) -> tuple[list[Outcome], list[Item]]:
    """Return what the attempts before this retry settled, and the items left, each with the
    history the ledger holds of it (whatever process ran those attempts).

    An item left is looked up before it is sent again when a request for it may have left
    (`attempted_at`, which the attempt before wrote: `Ledger.record_settled`), and waits from
    the last moment one may have left. One whose lease this run no longer holds is not sent
    (another run may have it).
    """
    rows = ledger.resume([i.customer_id for i in items])
    known: list[Outcome] = []
    left: list[Item] = []
    for item in items:
        row = rows.get(item.customer_id)
        if row is None:
            known.append(pending(item.customer_id, Event.NOT_SENT, "not sent: lease not held"))
        elif row.status in FINAL_STATES:
            known.append(_recorded(row))
        else:
            left.append(_as_held(item, row))
    return known, left


def _recorded(row: Any) -> Outcome:
    """The outcome an earlier attempt recorded (`Ledger.record_settled`)."""
    error = row.last_error.splitlines()[-1].partition(" ")[2] if row.last_error else None
    return Outcome(
        row.customer_id,
        Status(row.status),
        rootfi_id=row.rootfi_id,
        platform_id=row.platform_id,
        sync_id=row.sync_id,
        error=error if row.status == Status.FAILED else None,
        recorded=True,
    )


def _as_held(item: Item, row: Any) -> Item:
    """The item with the ledger's history of it; in doubt only if a request may have left."""
    sent = row.attempted_at is not None
    return replace(
        item,
        doubt_since=row.doubt_since if sent or item.doubt_since else None,
        last_sent=row.attempted_at,
        last_mode=row.attempt_mode,
        sync_id=row.sync_id,
        sent_keys=tuple(row.sent_keys.split()) if row.sent_keys else (),
    )


@task(
    name="check-access",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=is_transient,
)
def check_access(company_id: int, configured: int | None = None) -> None:
    """Fail before anything is sent when the key is refused or cannot reach the company
    (`configured`: ROOTFI_COMPANY_ID, named in the message when it is that company)."""
    if company_id not in fanout.reachable(run.current().client, [company_id]):
        raise errors.SettingsError(fanout.not_reached(company_id, configured))
