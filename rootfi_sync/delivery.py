"""Sending a batch of customers to RootFi, and finding out what a lost request did.

The rule that keeps delivery exactly-once: a customer that may already exist in RootFi
(its request got no answer) is looked up before it is sent again. Lookup lists the company's
customers updated since the attempt (minus a clock-skew margin) and matches them to payloads:

* Two records match when their fingerprints are equal: name, email, phone, currency and the
  address fields, compared after trimming, collapsing inner spaces and case-folding. Status and
  timestamps are left out because the platform may set its own.
* A record already given to a customer in the ledger is never adopted again.
* Customers with identical fingerprints are paired with records in order (lowest rootfi_id
  first) and never share one: with three identical customers in doubt and two records found,
  two are adopted and one is sent again.
"""

from __future__ import annotations

import time
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from rootfi_sync import errors
from rootfi_sync.client import RootFiClient
from rootfi_sync.ledger import Outcome, Status
from rootfi_sync.models import CustomerPayload
from rootfi_sync.transform import ADDRESS_FIELDS

KEY_FIELDS = ("name", "email", "phone", "currency_id")
KnownIds = Callable[[Iterable[str]], set[str]]
ACCEPTED_MARGIN = timedelta(seconds=2)  # the Date header is to the second


@dataclass(frozen=True, slots=True)
class Item:
    """One customer to send: its id in the source and its payload."""

    customer_id: str
    payload: CustomerPayload

    @property
    def payload_hash(self) -> str:
        return self.payload.content_hash()


class BatchIncomplete(errors.RootFiSyncError):
    """Some customers of a batch got no final answer; `outcomes` holds those that did.

    `resend_now` is False when what was sent may still be landing (an async write whose
    answer was lost, or whose records are not listed yet): looking now could miss them, so
    they wait for a later run instead of a retry in this one.
    """

    def __init__(
        self,
        message: str,
        outcomes: list[Outcome],
        pending: dict[str, Outcome],
        resend_now: bool = True,
    ) -> None:
        super().__init__(message)
        self.outcomes, self.pending, self.resend_now = outcomes, pending, resend_now

    def __reduce__(self) -> tuple[Any, ...]:
        return (BatchIncomplete, (str(self), self.outcomes, self.pending, self.resend_now))

    def merged(self, other: BatchIncomplete) -> BatchIncomplete:
        """Return one error holding both errors' outcomes and pending customers."""
        return BatchIncomplete(
            f"{self}; {other}", self.outcomes + other.outcomes, self.pending | other.pending,
            self.resend_now and other.resend_now,
        )  # fmt: skip


def _norm(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return " ".join(str(value).split()).casefold()


def fingerprint(record: Mapping[str, Any]) -> tuple[str | None, ...]:
    """Return the fields that identify a customer record, normalised for comparison."""
    address = record.get("address")
    address = address if isinstance(address, Mapping) else {}
    return tuple(_norm(record.get(f)) for f in KEY_FIELDS) + tuple(
        _norm(address.get(f)) for f in ADDRESS_FIELDS
    )


def _rootfi_order(record: Mapping[str, Any]) -> tuple[int, str]:
    value = str(record.get("rootfi_id"))
    return (int(value), "") if value.isdigit() else (0, value)


def match_records(
    items: Sequence[Item], records: Iterable[Mapping[str, Any]], taken: set[str]
) -> dict[str, Mapping[str, Any]]:
    """Pair items with RootFi records of the same fingerprint; return customer_id -> record."""
    pool: dict[tuple[str | None, ...], deque[Mapping[str, Any]]] = defaultdict(deque)
    for record in sorted(records, key=_rootfi_order):
        if str(record.get("rootfi_id")) not in taken:
            pool[fingerprint(record)].append(record)
    matched: dict[str, Mapping[str, Any]] = {}
    for item in items:
        candidates = pool.get(fingerprint(item.payload.to_api()))
        if candidates:
            matched[item.customer_id] = candidates.popleft()
    return matched


def synced(item: Item, record: Mapping[str, Any], sync_id: str | None = None) -> Outcome:
    """Return the SYNCED outcome of an item from RootFi's record."""
    platform_id = record.get("platform_id")
    return Outcome(
        item.customer_id, Status.SYNCED, rootfi_id=str(record["rootfi_id"]),
        platform_id=str(platform_id) if platform_id is not None else None,
        sync_id=str(record.get("sync_id") or sync_id or "") or None,
    )  # fmt: skip


def reconcile(
    client: RootFiClient, company_id: int, items: Sequence[Item], since: datetime, known: KnownIds
) -> tuple[list[Outcome], list[Item]]:
    """Look items up in RootFi; return (adopted outcomes, items still to send)."""
    if not items:
        return [], []
    records = list(client.iter_customers(company_id, updated_since=since))
    taken = known(str(r.get("rootfi_id")) for r in records)
    matched = match_records(items, records, taken)
    adopted = [synced(i, matched[i.customer_id]) for i in items if i.customer_id in matched]
    return adopted, [i for i in items if i.customer_id not in matched]


def refusal(item: Item, exc: errors.HTTPStatusError | str) -> Outcome:
    """Return the FAILED outcome of a customer RootFi or its platform refused."""
    if isinstance(exc, str):
        message = exc
    else:
        where = f"{exc.field}: " if exc.field else ""
        message = f"refused by RootFi ({exc.status_code} {exc.code or ''}): {where}{exc.reason}"
    return Outcome(item.customer_id, Status.FAILED, error=message)


def unanswered(item: Item, exc: Exception) -> Outcome:
    """Return the pending outcome of a customer whose request got no final answer."""
    status = Status.IN_DOUBT if getattr(exc, "sent", True) else Status.RETRY
    return Outcome(item.customer_id, status, error=str(exc))


def _send_one(client: RootFiClient, company_id: int, item: Item) -> Outcome | Exception:
    try:
        return synced(item, client.create_customer(company_id, item.payload.to_api()))
    except errors.AuthError:
        raise
    except errors.Refused as exc:
        return refusal(item, exc)
    except (errors.RateLimited, errors.ServerError, errors.TransportError) as exc:
        return exc


def send_single(
    client: RootFiClient, company_id: int, items: Sequence[Item], pool: Executor
) -> list[Outcome]:
    """Create each customer with its own synchronous request, through the run's `pool`.

    The pool is shared by the run's batches, so batches that overlap still keep at most its
    size (ROOTFI_CONCURRENCY) in flight.
    """
    results = list(pool.map(lambda i: _send_one(client, company_id, i), items))
    done = [r for r in results if isinstance(r, Outcome)]
    pending = {
        i.customer_id: unanswered(i, r) for i, r in zip(items, results, strict=True)
        if isinstance(r, Exception)
    }  # fmt: skip
    if pending:
        first = next(iter(pending.values())).error
        raise BatchIncomplete(
            f"{len(pending)} of {len(items)} got no answer ({first})", done, pending
        )
    return done


@dataclass(frozen=True, slots=True)
class AsyncOptions:
    """How long to follow an async write, and how far back to look for its records."""

    poll_timeout: float = 300.0
    poll_interval: float = 0.25
    skew: timedelta = timedelta(minutes=2)


def send_async(
    client: RootFiClient, company_id: int, items: Sequence[Item], *, since: datetime,
    known: KnownIds, options: AsyncOptions,
) -> list[Outcome]:  # fmt: skip
    """Create the batch in one async write, splitting it while RootFi refuses it whole."""
    try:
        sync_id, accepted_at = client.create_customers_async(
            company_id, [i.payload.to_api() for i in items]
        )
    except errors.AuthError:
        raise
    except errors.Refused as exc:
        if len(items) == 1:
            return [refusal(items[0], exc)]
        return _bisect(client, company_id, items, since=since, known=known, options=options)
    except (errors.RateLimited, errors.ServerError, errors.TransportError) as exc:
        pending = {i.customer_id: unanswered(i, exc) for i in items}
        landing = any(o.status == Status.IN_DOUBT for o in pending.values())
        raise BatchIncomplete(
            f"async write of {len(items)} got no answer ({exc})", [], pending, not landing
        ) from exc
    # RootFi's own clock when it took the write bounds the records tightly; else ours, less skew.
    since = accepted_at - ACCEPTED_MARGIN if accepted_at else since - options.skew
    return _collect(client, company_id, items, sync_id, since=since, known=known, options=options)


def _bisect(
    client: RootFiClient, company_id: int, items: Sequence[Item], **kwargs: Any
) -> list[Outcome]:
    """Send each half on its own, so one bad record cannot hold back the others."""
    half, outcomes, incomplete = len(items) // 2, [], None
    for part in (items[:half], items[half:]):
        try:
            outcomes += send_async(client, company_id, part, **kwargs)
        except BatchIncomplete as exc:
            incomplete = exc if incomplete is None else incomplete.merged(exc)
    if incomplete is not None:
        raise BatchIncomplete(
            str(incomplete), outcomes + incomplete.outcomes, incomplete.pending,
            incomplete.resend_now,
        )  # fmt: skip
    return outcomes


def _wait_for_sync(client: RootFiClient, sync_id: str, options: AsyncOptions) -> dict[str, Any]:
    deadline, delay = time.monotonic() + options.poll_timeout, options.poll_interval
    while True:
        sync = client.get_sync(sync_id)
        if sync.get("status") in ("SUCCESS", "FAILED") or time.monotonic() > deadline:
            return sync
        time.sleep(delay)
        delay = min(delay * 1.5, 5.0)


def _collect(
    client: RootFiClient, company_id: int, items: Sequence[Item], sync_id: str, *,
    since: datetime, known: KnownIds, options: AsyncOptions,
) -> list[Outcome]:  # fmt: skip
    """Follow an async write to its end; learn each created record's id from the list."""
    sync = _wait_for_sync(client, sync_id, options)
    jobs = (
        list(client.iter_sync_jobs(sync_id)) if sync.get("status") in ("SUCCESS", "FAILED") else []
    )
    job_errors = _job_errors(jobs, items)
    outcomes = [refusal(i, job_errors[i.customer_id]) for i in items if i.customer_id in job_errors]
    rest = [i for i in items if i.customer_id not in job_errors]
    adopted, missing = reconcile(client, company_id, rest, since, known)
    outcomes += [replace(o, sync_id=sync_id) for o in adopted]
    if sync.get("status") == "FAILED" and len(jobs) != len(items):
        reason = "; ".join(sorted({_job_message(j) for j in jobs if j.get("status") == "FAILED"}))
        outcomes += [refusal(i, f"async write {sync_id} failed: {reason}") for i in missing]
        return outcomes
    if missing:
        state = sync.get("status")
        error = errors.TransportError(
            f"async write {sync_id} ended {state} but records are missing"
        )
        pending = {i.customer_id: unanswered(i, error) for i in missing}
        raise BatchIncomplete(
            f"{len(missing)} of {len(items)} not found after sync {sync_id}", outcomes, pending,
            resend_now=False,
        )  # fmt: skip
    return outcomes


def _job_message(job: Mapping[str, Any]) -> str:
    error = job.get("error") or {}
    if not isinstance(error, Mapping):
        return str(error)
    field = f"{error['field']}: " if error.get("field") else ""
    return f"{field}{error.get('message') or 'job failed'}"


def _job_errors(jobs: Sequence[Mapping[str, Any]], items: Sequence[Item]) -> dict[str, str]:
    """Return customer_id -> platform error, when jobs line up one-to-one with items."""
    if len(jobs) != len(items):
        return {}
    return {
        item.customer_id: f"refused by the platform: {_job_message(job)}"
        for item, job in zip(items, jobs, strict=True)
        if job.get("status") == "FAILED"
    }


def deliver(
    client: RootFiClient, company_id: int, items: Sequence[Item], *, mode: str,
    attempted_at: datetime, doubtful: Mapping[str, datetime], known: KnownIds, pool: Executor,
    options: AsyncOptions = AsyncOptions(),
) -> list[Outcome]:  # fmt: skip
    """Look up the doubtful items, then send the rest; return every item's outcome.

    `doubtful` maps the customers that may already exist to the time of their last attempt.
    Raises BatchIncomplete (carrying the outcomes known so far) when some got no answer.
    """
    in_doubt = [i for i in items if i.customer_id in doubtful]
    adopted: list[Outcome] = []
    if in_doubt:
        since = min(doubtful[i.customer_id] for i in in_doubt) - options.skew
        found_now, _ = reconcile(client, company_id, in_doubt, since, known)
        adopted = [replace(o, adopted=True) for o in found_now]
        found = {o.customer_id for o in adopted}
        items = [i for i in items if i.customer_id not in found]
    try:
        if not items:
            return adopted
        if mode == "single":
            return adopted + send_single(client, company_id, items, pool)
        return adopted + send_async(
            client, company_id, items, since=attempted_at, known=known, options=options
        )
    except BatchIncomplete as exc:
        raise BatchIncomplete(
            str(exc), adopted + exc.outcomes, exc.pending, exc.resend_now
        ) from None
