"""Sending a batch of customers to RootFi: one request each, or async writes followed to
their end (split while RootFi refuses one whole).

The rule that keeps delivery exactly-once: a customer that may already exist in RootFi is
looked up before it is sent again (`rootfi_sync.rootfi.lookup`), and resent only once what was
sent had time to land (the rules, and their timings, are in `rootfi_sync.rootfi.decisions`). A
customer held by an async write whose sync is known is never resent before that sync is final;
the sync id is recorded as soon as RootFi names it, so later runs ask RootFi about it.

Delivery reads and writes no database: what it must ask the ledger while it sends is the
`Book` protocol (a run's ledger, bound by `rootfi_sync.run.parts.RunBook`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from rootfi_sync import errors
from rootfi_sync.models import DEFAULT_MATCH_FIELDS
from rootfi_sync.outcomes import Outcome, Status
from rootfi_sync.rootfi.client import RootFiClient
from rootfi_sync.rootfi.decisions import (
    TRANSIENT,
    Event,
    Timing,
    Verdict,
    WriteCounts,
    created_unknown,
    pending,
    retry_in_run,
    verdict,
)
from rootfi_sync.rootfi.following import SharedListing, SyncPace, Ticket
from rootfi_sync.rootfi.lookup import (
    FINAL,
    PASSING,
    UNREADABLE,
    Item,
    Lookup,
    all_pending,
    job_reasons,
    refused_by_jobs,
    synced,
)
from rootfi_sync.settings import ResendPolicy

ACCEPTED_MARGIN = timedelta(seconds=2)  # the Date header is to the second
POLL_FIRST = 0.25
"""Seconds between the first and second GET of an async write's sync (the first waits until
the sync may have ended: `following.SyncPace`, at least this); each wait is POLL_GROWTH times
the one before, up to POLL_MAX."""
POLL_GROWTH = 1.5
POLL_MAX = 5.0


class BatchIncomplete(errors.RootFiSyncError):
    """Some customers of a batch got no final answer; `outcomes` holds those that did.

    `pending` holds the others with how long each must wait; a retry in the same run is worth
    it only when one of them may be tried now (`retry_now`). A retry starts from what the
    ledger holds of each customer (`tasks.load.resume`), not from this error.
    """

    def __init__(self, message: str, outcomes: list[Outcome], pending: dict[str, Outcome]) -> None:
        super().__init__(message)
        self.outcomes, self.pending = outcomes, pending

    def __reduce__(self) -> tuple[Any, ...]:
        return (BatchIncomplete, (str(self), self.outcomes, self.pending))

    @property
    def retry_now(self) -> bool:
        return retry_in_run(self.pending.values())

    def merged(self, other: BatchIncomplete) -> BatchIncomplete:
        """Return one error holding both errors' outcomes and pending customers."""
        outcomes, pending = self.outcomes + other.outcomes, self.pending | other.pending
        return BatchIncomplete(f"{self}; {other}", outcomes, pending)


class Book(Protocol):
    """What delivery asks of the ledger while it sends."""

    def known(self, rootfi_ids: Iterable[str]) -> set[str]:
        """Return which of these RootFi ids the ledger already gives to customers."""
        ...

    def vouch(self, customer_ids: Sequence[str]) -> tuple[set[str], datetime]:
        """Return the customers whose lease the database vouches for now, and its clock: asked
        right before each POST (nothing leaves for one it does not)."""
        ...

    def accepted(self, customer_ids: list[str], sync_id: str) -> None:
        """Record the sync id of an async write holding these customers, once RootFi names it."""
        ...

    def stamp(self, keys: Mapping[str, tuple[str, ...]]) -> set[str]:
        """Record the match keys of customers about to be sent again; return those still held."""
        ...

    def now(self) -> datetime:
        """The ledger's clock: settle times are counted on it, as attempts are stamped."""
        ...


@dataclass(frozen=True, slots=True)
class FreeBook:
    """A `Book` with no ledger behind it: it knows no record, vouches for every customer and
    keeps nothing. For a delivery that is not part of a run (tests, benchmarks)."""

    clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    def known(self, rootfi_ids: Iterable[str]) -> set[str]:
        return set()

    def vouch(self, customer_ids: Sequence[str]) -> tuple[set[str], datetime]:
        return set(customer_ids), self.clock()

    def accepted(self, customer_ids: list[str], sync_id: str) -> None:
        return None

    def stamp(self, keys: Mapping[str, tuple[str, ...]]) -> set[str]:
        return set(keys)

    def now(self) -> datetime:
        return self.clock()


RETRYABLE = (BatchIncomplete, *PASSING)
"""What a send task may be retried for, and what leaves its batch to a later run (not a stop)."""


def refusal(item: Item, exc: errors.HTTPStatusError | str) -> Outcome:
    """Return the FAILED outcome of a customer RootFi or its platform refused."""
    if isinstance(exc, str):
        message = exc
    else:
        where = f"{exc.field}: " if exc.field else ""
        message = f"refused by RootFi ({exc.status_code} {exc.code or ''}): {where}{exc.reason}"
    return Outcome(item.customer_id, Status.FAILED, error=message)


@dataclass(slots=True)
class Delivery:
    """Delivers batches of one company in one write mode, through one client.

    `book` is what it asks the ledger while it sends (`Book`); `stop_splitting(sent, refused)`
    is the circuit breaker, asked while a batch refused whole is split; `match_fields` and
    `resend` are ROOTFI_MATCH_FIELDS and ROOTFI_RESEND_IN_DOUBT. `listing` finds the records
    of the writes that end about the same time with one customer listing, and `pace` says when
    to ask about a sync first (`rootfi_sync.rootfi.following`): both are shared by the run's
    batches.
    """

    client: RootFiClient
    company_id: int
    mode: str
    pool: Executor
    book: Book = FreeBook()
    timing: Timing = field(default_factory=Timing)
    stop_splitting: Callable[[int, int], bool] = lambda _sent, _refused: False
    poll_timeout: float = 300.0
    poll_interval: float = POLL_FIRST
    match_fields: tuple[str, ...] = DEFAULT_MATCH_FIELDS
    resend: ResendPolicy = "after-settle"
    listing: SharedListing[Item] = field(default_factory=SharedListing)
    pace: SyncPace = field(default_factory=SyncPace)

    @property
    def lookup(self) -> Lookup:
        """How this delivery looks customers in doubt up."""
        return Lookup(
            self.client,
            self.company_id,
            self.mode,
            self.book.known,
            self.timing,
            self.match_fields,
            self.resend,
            clock=self.book.now,
        )

    def deliver(self, items: Sequence[Item], now: datetime) -> list[Outcome]:
        """Settle what is in doubt, then send the rest; return every item's outcome.

        What is about to be sent again (in doubt and not found) has its match keys recorded
        first (`Book.stamp`), and only what this run still holds is sent.
        Raises BatchIncomplete (carrying the outcomes known so far) when some got no answer.
        """
        done, waiting, to_send = self.lookup.resolve(items, now)
        keys = {i.customer_id: i.keys for i in to_send if i.doubt_since is not None}
        held = self.book.stamp(keys) if keys else set()
        allowed = [i for i in to_send if i.customer_id in held or i.customer_id not in keys]
        waiting |= {
            cid: pending(cid, Event.NOT_SENT, "not sent: lease not held")
            for cid in keys
            if cid not in held
        }
        try:
            done += self._send(allowed, now) if allowed else []
        except BatchIncomplete as exc:
            raise BatchIncomplete(str(exc), done + exc.outcomes, waiting | exc.pending) from None
        if waiting:
            first = next(iter(waiting.values())).error
            message = f"{len(waiting)} of {len(items)} pending ({first})"
            raise BatchIncomplete(message, done, waiting)
        return done

    def _send(self, items: Sequence[Item], now: datetime) -> list[Outcome]:
        if self.mode == "single":
            return self._send_single(items)
        return self._send_async(items, since=now, split=_Split())

    def _send_single(self, items: Sequence[Item]) -> list[Outcome]:
        """Create each customer with its own synchronous request, through the run's pool.

        The pool is shared by the run's batches, so batches that overlap still keep at most its
        size (ROOTFI_CONCURRENCY) in flight. The database vouches for the lease right before
        each request leaves (`vouch`).
        """
        done, waiting = _separate(list(self.pool.map(self._send_one, items)))
        if waiting:
            first = next(iter(waiting.values())).error
            raise BatchIncomplete(
                f"{len(waiting)} of {len(items)} got no answer ({first})", done, waiting
            )
        return done

    def _send_one(self, item: Item) -> Outcome:
        left: list[datetime] = []

        def vouched() -> bool:
            held, now = self.book.vouch([item.customer_id])
            left.append(now)
            return bool(held)

        try:
            record = self.client.create_customer(
                self.company_id, item.payload.to_api(), before_send=vouched
            )
            return synced(item, record)
        except errors.LeaseLost:
            return pending(item.customer_id, Event.NOT_SENT, "not sent: lease not held")
        except errors.AuthError:
            raise
        except errors.Refused as exc:
            return refusal(item, exc)
        except PASSING as exc:
            event = Event.NO_ANSWER if exc.sent else Event.NOT_SENT
            outcome = pending(item.customer_id, event, str(exc), self.timing)
            return replace(outcome, sent_at=left[-1]) if exc.sent and left else outcome

    def _send_async(
        self, items: Sequence[Item], *, since: datetime, split: _Split
    ) -> list[Outcome]:
        """Create the batch in one async write, splitting it while RootFi refuses it whole."""
        ids, left = [i.customer_id for i in items], list[datetime]()

        def vouched() -> bool:  # the whole write, or none of it
            held, now = self.book.vouch(ids)
            left.append(now)
            return len(held) == len(ids)

        try:
            sync_id, accepted_at = self.client.create_customers_async(
                self.company_id, [i.payload.to_api() for i in items], before_send=vouched
            )
        except errors.LeaseLost as exc:
            waiting = all_pending(items, Event.NOT_SENT, f"not sent: {exc}", self.timing)
            raise BatchIncomplete(
                f"async write of {len(items)} not sent ({exc})", [], waiting
            ) from None
        except errors.AuthError:
            raise
        except errors.Refused as exc:
            if len(items) == 1:
                split.add(refused=1)
                return [refusal(items[0], exc)]
            return self._bisect(items, since=since, split=split)
        except PASSING as exc:
            event = Event.ASYNC_LOST if exc.sent else Event.NOT_SENT
            waiting = _sent_at(all_pending(items, event, str(exc), self.timing), left)
            raise BatchIncomplete(
                f"async write of {len(items)} got no answer ({exc})", [], waiting
            ) from exc
        split.add(sent=len(items))
        self.book.accepted([i.customer_id for i in items], sync_id)
        # RootFi's own clock when it took the write bounds the records tightly; else ours.
        since = accepted_at - ACCEPTED_MARGIN if accepted_at else since - self.timing.skew
        with self.listing.following() as ticket:
            try:
                return self._collect(items, sync_id, since=since, ticket=ticket)
            except BatchIncomplete as exc:
                pending_ = _sent_at(exc.pending, left)
                raise BatchIncomplete(str(exc), exc.outcomes, pending_) from None
            except UNREADABLE as exc:  # a follow-up GET failed: the write is known; ask later
                error = f"async write {sync_id}: could not follow it ({exc})"
                waiting = all_pending(items, Event.ASYNC_OPEN, error, self.timing, sync_id)
                raise BatchIncomplete(error, [], _sent_at(waiting, left)) from exc

    def _bisect(self, items: Sequence[Item], *, since: datetime, split: _Split) -> list[Outcome]:
        """Send each half on its own, so one bad record cannot hold back the others.

        The circuit breaker is asked before each half: when the run (what it has recorded, and
        this batch's split so far) has had too much refused, what is left is not sent.
        """
        half, outcomes, incomplete = len(items) // 2, [], None
        for part in (items[:half], items[half:]):
            if self.stop_splitting(split.sent + split.refused, split.refused):
                error = "not sent: the circuit breaker opened while a refused batch was split"
                outcomes += [pending(i.customer_id, Event.HELD_BACK, error) for i in part]
                continue
            try:
                outcomes += self._send_async(part, since=since, split=split)
            except BatchIncomplete as exc:
                incomplete = exc if incomplete is None else incomplete.merged(exc)
        outcomes, waiting = _separate(outcomes)
        if incomplete is not None or waiting:
            extra = incomplete or BatchIncomplete("split", [], {})
            raise BatchIncomplete(str(extra), outcomes + extra.outcomes, waiting | extra.pending)
        return outcomes

    def _wait_for_sync(self, sync_id: str, n: int) -> dict[str, Any] | None:
        """Poll the sync of `n` records until it ends or `poll_timeout` passes; return it as
        last read (None: never readable). The first GET waits until the sync may have ended
        (`pace`: how long the last one took per record; at least `poll_interval`); a GET
        that fails (a sync not readable yet: 404, 5xx) is asked again."""
        deadline, delay = time.monotonic() + self.poll_timeout, self.poll_interval
        time.sleep(self.pace.first_wait(n, self.poll_interval))
        sync: dict[str, Any] | None = None
        while True:
            with suppress(*UNREADABLE):  # not readable yet (404, 5xx): asked again
                sync = self.client.get_sync(sync_id)
            if sync and sync.get("status") in FINAL:
                self.pace.saw_end(sync, n)
                return sync
            if time.monotonic() > deadline:
                return sync
            time.sleep(delay)
            delay = min(delay * POLL_GROWTH, POLL_MAX)

    def _collect(
        self, items: Sequence[Item], sync_id: str, *, since: datetime, ticket: Ticket
    ) -> list[Outcome]:
        """Follow an async write to its end, then find its records by lookup (one listing
        with the other writes that ended meanwhile: `listing`).

        Jobs name no record: the customers not found are FAILED with the jobs' errors only
        when they are as many as the FAILED jobs; created with their id unknown when every
        record was created; else in doubt, with the sync id (`decisions.verdict`). The jobs
        are listed only for customers not found, and only when the sync itself does not say
        that it created every record.
        """
        sync = self._wait_for_sync(sync_id, len(items))
        state = sync.get("status") if sync else "unreadable"
        if sync is None or state not in FINAL:
            error = f"async write {sync_id} still {state} after {self.poll_timeout:g} s"
            waiting = all_pending(items, Event.ASYNC_OPEN, error, self.timing, sync_id)
            raise BatchIncomplete(error, [], waiting)
        adopted, missing = self.listing.find(ticket, items, since, self.lookup.find)
        outcomes = [replace(o, sync_id=sync_id) for o in adopted]
        if not missing:  # every record found: its jobs have nothing more to say
            return outcomes
        counts = WriteCounts.of(sync)
        every_one = counts.failed == 0 and counts.success == counts.total > 0
        jobs = [] if every_one else list(self.client.iter_sync_jobs(sync_id))
        counts = WriteCounts.of(sync, jobs)
        proof = verdict(counts, len(items), len(missing))
        if proof is Verdict.NOTHING_CREATED:  # RootFi says it created none of them
            error = f"async write {sync_id} ended {state} creating nothing: {job_reasons(jobs)}"
            return outcomes + [refusal(i, error) for i in missing]
        if proof is Verdict.REFUSED:
            error = refused_by_jobs(sync_id, jobs)
            return outcomes + [refusal(i, error) for i in missing]
        if proof is Verdict.CREATED:  # proof of creation is final: never sent again
            return outcomes + [created_unknown(i.customer_id, sync_id) for i in missing]
        error = (
            f"async write {sync_id} ended {state}: {len(missing)} of {len(items)} not found, "
            f"{'some' if counts.failed is None else counts.failed} refused; RootFi does not say "
            "which is which"
        )
        waiting = all_pending(missing, Event.ASYNC_UNSURE, error, self.timing, sync_id)
        raise BatchIncomplete(f"{len(missing)} of {len(items)}: {error}", outcomes, waiting)


@dataclass(slots=True)
class _Split:
    """What one batch's split has sent and had refused so far: not yet in the run's counts,
    which take the batch when its outcomes are recorded (so nothing is counted twice)."""

    sent: int = 0
    refused: int = 0

    def add(self, sent: int = 0, refused: int = 0) -> None:
        self.sent, self.refused = self.sent + sent, self.refused + refused


def _sent_at(pending: dict[str, Outcome], left: list[datetime]) -> dict[str, Outcome]:
    """Return the pending outcomes, those in doubt stamped with when their request left (the
    last moment the database vouched for it: `left`, empty when it never left)."""
    if not left:
        return pending
    return {
        cid: replace(o, sent_at=left[-1]) if o.status == Status.IN_DOUBT and not o.sent_at else o
        for cid, o in pending.items()
    }


def _separate(outcomes: list[Outcome]) -> tuple[list[Outcome], dict[str, Outcome]]:
    final = [o for o in outcomes if o.status not in TRANSIENT]
    return final, {o.customer_id: o for o in outcomes if o.status in TRANSIENT}
