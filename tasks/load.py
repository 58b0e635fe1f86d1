"""Load: send a batch to RootFi, with task-level retries and caching.

A retry is never blind: every attempt after the first looks the batch up in RootFi first
and sends only what it did not find (see `rootfi_sync.delivery`).
"""

from __future__ import annotations

from concurrent.futures import Executor
from datetime import datetime, timedelta
from typing import Any

from prefect import runtime, task
from prefect.cache_policies import INPUTS, NO_CACHE

from rootfi_sync import errors
from rootfi_sync.client import RootFiClient
from rootfi_sync.delivery import AsyncOptions, BatchIncomplete, Item, deliver
from rootfi_sync.ledger import Ledger, Outcome

RETRYABLE = (BatchIncomplete, errors.RateLimited, errors.ServerError, errors.TransportError)


def is_transient(task: Any, task_run: Any, state: Any) -> bool:
    """Retry only what a later attempt can fix: no answer, 429, 5xx; never 4xx or 401/403.

    An async write that may still be landing is not retried in this run (see BatchIncomplete).
    """
    try:
        state.result()
    except BatchIncomplete as exc:
        return exc.resend_now
    except RETRYABLE:
        return True
    except Exception:
        return False
    return False


# The key is the API, the company and the exact payloads, not the run: a re-run that meets a
# batch whose request already succeeded gets the recorded outcomes back instead of resending.
SENT_BATCHES = (
    INPUTS - "client" - "ledger" - "pool" - "batch_no" - "attempted_at" - "doubtful" - "options"
)


@task(
    name="send-batch",
    task_run_name="send-batch-{batch_no}",
    retry_condition_fn=is_transient,
    retry_jitter_factor=0.5,
    cache_policy=SENT_BATCHES,
    cache_expiration=timedelta(hours=6),
    persist_result=True,
    cache_result_in_memory=False,  # persisted for the cache; memory stays flat over a run
)
def send_batch(
    client: RootFiClient, ledger: Ledger, company_id: int, items: list[Item], *, base_url: str,
    mode: str, batch_no: int, attempted_at: datetime, doubtful: dict[str, datetime],
    options: AsyncOptions, pool: Executor,
) -> list[Outcome]:  # fmt: skip
    """Return each customer's outcome; raise BatchIncomplete while some got no answer."""
    if (runtime.task_run.run_count or 1) > 1:  # the last attempt may have created some
        doubtful = {i.customer_id: attempted_at for i in items}
    return deliver(
        client, company_id, items, mode=mode, attempted_at=attempted_at, doubtful=doubtful,
        known=ledger.known_rootfi_ids, pool=pool, options=options,
    )  # fmt: skip


@task(name="check-access", cache_policy=NO_CACHE, retries=2, retry_delay_seconds=2,
      retry_condition_fn=is_transient)  # fmt: skip
def check_access(client: RootFiClient, company_id: int) -> None:
    """Fail before anything is sent when the key is refused or cannot reach the company."""
    try:
        companies = client.list_companies()
    except errors.AuthError as exc:
        raise errors.SettingsError(f"ROOTFI_API_KEY was refused by RootFi: {exc}") from None
    known = {str(c.get("rootfi_id")) for c in companies}
    if str(company_id) not in known:
        raise errors.SettingsError(
            f"ROOTFI_COMPANY_ID {company_id} is not a company this key can reach "
            f"(it reaches: {', '.join(sorted(known)) or 'none'})"
        )
