"""Load: send a batch to RootFi, with task-level retries and caching.

A retry is never blind: it starts from what the previous attempt learnt (outcomes known,
customers surely not sent, customers in doubt since when), looks the doubtful ones up in
RootFi first, and sends only what it did not find and may send (`rootfi_sync.decisions`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from prefect import runtime, task
from prefect.cache_policies import NO_CACHE
from prefect.context import TaskRunContext
from prefect.utilities.annotations import quote
from prefect.utilities.hashing import hash_objects

from rootfi_sync import errors, run
from rootfi_sync.delivery import RETRYABLE, BatchIncomplete
from rootfi_sync.ledger import Outcome, Status
from rootfi_sync.lookup import Item


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


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one attempt at a batch started from, and what it left for the next."""

    at: datetime
    items: list[Item]
    incomplete: BatchIncomplete


_previous: dict[str, Attempt] = {}  # task run id -> its last attempt, while a retry follows
_previous_lock = threading.Lock()


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
    delivery = run.current().delivery
    if (request.company_id, request.mode) != (delivery.company_id, delivery.mode):
        raise ValueError(  # the cache key would not say what is sent: a bug
            f"send request for company {request.company_id} ({request.mode}) given to the "
            f"run of company {delivery.company_id} ({delivery.mode})"
        )
    items = list(request.items)
    run_id = str(runtime.task_run.id)
    now = delivery.clock()
    with _previous_lock:
        previous = _previous.pop(run_id, None)
    known: list[Outcome] = []
    run_count = runtime.task_run.run_count or 1
    if run_count > 1:
        known, items = _resume(items, previous, now)
    try:
        return known + delivery.deliver(items, now, again=run_count > 1)
    except BatchIncomplete as exc:
        incomplete = BatchIncomplete(str(exc), known + exc.outcomes, exc.pending, exc.sent)
        context = TaskRunContext.get()
        # Kept only for a retry that will follow (is_transient): else nothing would take it.
        if context is not None and run_count <= context.task.retries and incomplete.retry_now:
            with _previous_lock:
                _previous[run_id] = Attempt(now, items, incomplete)
        raise incomplete from None


def _resume(
    items: Sequence[Item], previous: Attempt | None, now: datetime
) -> tuple[list[Outcome], list[Item]]:
    """Return what the previous attempt settled, and the items left, as it left them.

    `items` are the task's own; the previous attempt's, as it started, carry what the
    attempts before it learnt. Those it sent are looked up from then on; those it held back
    (a lookup that failed, a write still landing) are as they were. Without a record of it
    (it failed otherwise), every item may have been sent then.
    """
    if previous is None:
        return [], [i.sent_at(now) for i in items]
    at, incomplete = previous.at, previous.incomplete
    left = []
    for item in previous.items:
        outcome = incomplete.pending.get(item.customer_id)
        if outcome is None:
            continue
        if item.customer_id in incomplete.sent and outcome.status == Status.IN_DOUBT:
            item = item.sent_at(at)
        left.append(replace(item, sync_id=outcome.sync_id or item.sync_id))
    return list(incomplete.outcomes), left


@task(
    name="check-access",
    cache_policy=NO_CACHE,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=is_transient,
)
def check_access(company_id: int) -> None:
    """Fail before anything is sent when the key is refused or cannot reach the company."""
    seen = 0
    try:
        for company in run.current().client.iter_companies():
            if str(company.get("rootfi_id")) == str(company_id):
                return
            seen += 1
    except errors.AuthError as exc:
        raise errors.SettingsError(f"ROOTFI_API_KEY was refused by RootFi: {exc}") from None
    raise errors.SettingsError(
        f"ROOTFI_COMPANY_ID {company_id} is not among the {seen} companies this key can reach "
        "(GET /v3/core/companies lists them)"
    )
