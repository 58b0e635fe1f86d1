"""Finding out what a request that got no answer did: looking customers in doubt up in RootFi.

A lookup lists the company's customers updated since the customer's first unresolved attempt
(stamped on the database's clock, moved onto RootFi's by the skew measured from its `Date`
header, less a clock-skew margin) and matches them to what was sent:

* A record matches a customer when it is equal, on the fields ROOTFI_MATCH_FIELDS names, to
  any payload sent for that customer since its first unresolved attempt, values compared the
  way platforms rewrite them (`rootfi_sync.rootfi.matching`), and contradicting it on no other
  field.
* A record already given to a customer in the ledger is never adopted again.
* Customers matching the same records are paired with them in order (lowest rootfi_id first)
  and never share one: with three identical customers in doubt and two records found, two are
  adopted and one waits. A record left over that matches a customer who got one is a
  duplicate found in RootFi: reported with the customer, never dropped silently.

A customer held by an async write whose sync is known is not looked up (nor resent) before
RootFi says that sync ended: a sync that cannot be read is asked again later. One not found
once its settle time is over is resent only when nothing shows it was created (its sync
created nothing, or it never had one) and ROOTFI_RESEND_IN_DOUBT allows it; else it is
recorded as created with its id unknown, or parked FAILED for a person to look at.
Sending is `rootfi_sync.rootfi.delivery`'s.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol, TypeVar

from rootfi_sync import errors
from rootfi_sync.models import DEFAULT_MATCH_FIELDS, CustomerPayload
from rootfi_sync.outcomes import DUPLICATE, Outcome, Status
from rootfi_sync.rootfi.client import RootFiClient
from rootfi_sync.rootfi.decisions import (
    Event,
    Timing,
    Verdict,
    WriteCounts,
    pending,
    unfound,
    verdict,
    wait_left,
)
from rootfi_sync.rootfi.matching import match_records, signature
from rootfi_sync.settings import ResendPolicy

logger = logging.getLogger("rootfi_sync.rootfi.lookup")
PASSING = (errors.RateLimited, errors.ServerError, errors.TransportError)
UNREADABLE = (*PASSING, errors.Refused)  # a GET of a sync or its jobs that says nothing yet
FINAL = ("SUCCESS", "FAILED")


@dataclass(frozen=True, slots=True)
class Item:
    """One customer to send: its source id, its payload, and what the ledger knows of it."""

    customer_id: str
    payload: CustomerPayload
    doubt_since: datetime | None = None  # first unresolved attempt: lookups start here
    last_sent: datetime | None = None  # a resend waits the settle time after this
    sync_id: str | None = None  # the async write holding it, until that is final
    sent_keys: tuple[str, ...] = ()  # signatures of what was sent since `doubt_since`
    redriven: bool = False  # `rootfi-sync retry` (or a changed row) asked for it again
    last_mode: str | None = None  # the write mode of the last request (its settle time)

    @property
    def payload_hash(self) -> str:
        return self.payload.content_hash()

    @property
    def keys(self) -> tuple[str, ...]:
        """The signatures a lookup accepts: every payload sent before, and this one."""
        mine = signature(self.payload.to_api()).encode()
        return tuple(dict.fromkeys((*self.sent_keys, mine)))


class Doubt(Protocol):
    """A customer a lookup settles: an `Item`, or one whose source row is gone
    (`rootfi_sync.run.orphans`: what was sent is known by its signatures alone)."""

    @property
    def customer_id(self) -> str: ...
    @property
    def keys(self) -> tuple[str, ...]: ...
    @property
    def doubt_since(self) -> datetime | None: ...
    @property
    def last_sent(self) -> datetime | None: ...
    @property
    def sync_id(self) -> str | None: ...
    @property
    def redriven(self) -> bool: ...
    @property
    def last_mode(self) -> str | None: ...


D = TypeVar("D", bound=Doubt)


def synced(
    item: Doubt,
    record: Mapping[str, Any],
    sync_id: str | None = None,
    duplicates: tuple[str, ...] = (),
) -> Outcome:
    """Return the SYNCED outcome of an item from RootFi's record (and other records that
    match it as well: duplicates found in RootFi, reported in its error)."""
    platform_id = record.get("platform_id")
    error = None
    if duplicates:
        error = f"{DUPLICATE}: records {', '.join(duplicates)} match it as well"
    return Outcome(
        item.customer_id,
        Status.SYNCED,
        rootfi_id=str(record["rootfi_id"]),
        platform_id=str(platform_id) if platform_id is not None else None,
        sync_id=str(record.get("sync_id") or sync_id or "") or None,
        error=error,
        duplicates=duplicates,
    )


def all_pending(
    items: Iterable[Doubt], event: Event, error: str, timing: Timing, sync_id: str | None = None
) -> dict[str, Outcome]:
    """Return the pending outcome of each item after `event` (`error` says why)."""
    return {
        i.customer_id: pending(i.customer_id, event, error, timing, sync_id=sync_id) for i in items
    }


def job_reasons(jobs: Iterable[Mapping[str, Any]]) -> str:
    """Return what the FAILED jobs of a write say, each reason once (jobs name no record)."""
    return "; ".join(sorted({_job_message(j) for j in jobs if j.get("status") == "FAILED"}))


def _job_message(job: Mapping[str, Any]) -> str:
    error = job.get("error") or {}
    if not isinstance(error, Mapping):
        return str(error)
    where = f"{error['field']}: " if error.get("field") else ""
    return f"{where}{error.get('message') or 'job failed'}"


def refused_by_jobs(sync_id: str, jobs: Iterable[Mapping[str, Any]]) -> str:
    """Return the error of customers a write's platform refused, with every job's reason."""
    return f"refused by the platform (async write {sync_id}; its jobs say: {job_reasons(jobs)})"


@dataclass(frozen=True, slots=True)
class Lookup:
    """Looks up the customers in doubt of one company, in one write mode, through one client.

    `known` tells which RootFi ids the ledger already gives to customers (never adopted again);
    `fields` are ROOTFI_MATCH_FIELDS; `resend` is ROOTFI_RESEND_IN_DOUBT; `clock` is the
    database's, on which `doubt_since` was stamped: a window starts on RootFi's clock, moved by
    the skew measured between the two.
    """

    client: RootFiClient
    company_id: int
    mode: str
    known: Callable[[Iterable[str]], set[str]]
    timing: Timing = field(default_factory=Timing)
    fields: tuple[str, ...] = DEFAULT_MATCH_FIELDS
    resend: ResendPolicy = "after-settle"
    clock: Callable[[], datetime] | None = None

    def resolve(
        self, items: Sequence[D], now: datetime
    ) -> tuple[list[Outcome], dict[str, Outcome], list[D]]:
        """Settle the items in doubt; return (settled outcomes, pending outcomes, items to send).

        An item not in doubt is to send. One in doubt and not found waits until what was sent
        had time to land (the settle time), then is decided by `decisions.unfound`: sent
        again only when nothing shows it was created and the policy allows it.
        """
        doubtful = [i for i in items if i.doubt_since is not None]
        to_send = [i for i in items if i.doubt_since is None]
        held, ended = self._open_syncs(doubtful)
        doubtful = [i for i in doubtful if i.customer_id not in held]
        try:
            found, missing = self._since_first_attempt(doubtful)
        except PASSING as exc:
            return [], held | self._failed(doubtful, now, exc), to_send
        settled = [replace(o, adopted=True) for o in found]
        proofs = self._proofs(doubtful, missing, ended)
        for item in missing:
            # From the last moment a request may have left, in the mode it left in.
            settle = self.timing.after_sent(item.last_mode or self.mode)
            left = wait_left(item.last_sent, now, settle)
            if left > 0:
                error = "not found in RootFi yet; decided once what was sent had time to land"
                held[item.customer_id] = Outcome(
                    item.customer_id, Status.IN_DOUBT, sync_id=item.sync_id, wait=left, error=error
                )
                continue
            proof, refusal = proofs.get(item.sync_id or "", (None, ""))
            outcome = unfound(
                (item.customer_id, item.sync_id),
                proof,
                resend=self.resend,
                redriven=item.redriven,
                refusal=refusal,
            )
            if outcome is None:
                to_send.append(item)
            else:
                settled.append(outcome)
        return settled, held, to_send

    def find(self, items: Sequence[D], since: datetime) -> tuple[list[Outcome], list[D]]:
        """Match items to the records updated since `since`; return (adopted, not found)."""
        records = list(self.client.iter_customers(self.company_id, updated_since=since))
        taken = self.known(str(r.get("rootfi_id")) for r in records)
        found = match_records(items, records, taken, self.fields)
        adopted = [
            synced(i, found.records[cid], duplicates=found.duplicates.get(cid, ()))
            for i in items
            if (cid := i.customer_id) in found.records
        ]
        return adopted, [i for i in items if i.customer_id not in found.records]

    def _open_syncs(
        self, items: Sequence[Doubt]
    ) -> tuple[dict[str, Outcome], dict[str, dict[str, Any]]]:
        """Ask RootFi about the async writes holding these items; return (the items held by
        a write not known to have ended, the ended writes by sync id).

        A sync that cannot be read (404, 5xx, no answer) has not ended: only RootFi saying so
        ends it, and it is asked again later.
        """
        groups: dict[str, list[Doubt]] = defaultdict(list)
        for item in items:
            if item.sync_id:
                groups[item.sync_id].append(item)
        held: dict[str, Outcome] = {}
        ended: dict[str, dict[str, Any]] = {}
        for sync_id, group in groups.items():
            try:
                sync = self.client.get_sync(sync_id)
            except UNREADABLE as exc:
                error = f"async write {sync_id} could not be read ({exc}); asked again later"
                held |= all_pending(group, Event.ASYNC_OPEN, error, self.timing, sync_id)
                continue
            if sync.get("status") in FINAL:
                ended[sync_id] = sync
            else:
                error = f"async write {sync_id} not final yet: {sync.get('status')}"
                held |= all_pending(group, Event.ASYNC_OPEN, error, self.timing, sync_id)
        return held, ended

    def _proofs(
        self, looked_up: Sequence[Doubt], missing: Sequence[Doubt], ended: Mapping[str, Any]
    ) -> dict[str, tuple[Verdict, str]]:
        """Return, for each ended write holding a customer not found, what its counts prove
        about those customers, and the error of a refusal (the jobs' reasons, if read)."""
        proofs: dict[str, tuple[Verdict, str]] = {}
        for sync_id in {i.sync_id for i in missing if i.sync_id in ended}:
            assert sync_id is not None
            in_view = sum(1 for i in looked_up if i.sync_id == sync_id)
            lost = sum(1 for i in missing if i.sync_id == sync_id)
            proof = verdict(WriteCounts.of(ended[sync_id]), in_view, lost)
            refusal = f"refused by the platform (async write {sync_id})"
            if proof is Verdict.REFUSED:
                with suppress(*UNREADABLE):  # the count says refused; the reasons wait
                    refusal = refused_by_jobs(sync_id, self.client.iter_sync_jobs(sync_id))
            proofs[sync_id] = (proof, refusal)
        return proofs

    def _since_first_attempt(self, items: Sequence[D]) -> tuple[list[Outcome], list[D]]:
        """Look items up in RootFi; return (adopted outcomes, items not found)."""
        if not items:
            return [], []
        since = min(i.doubt_since for i in items if i.doubt_since is not None)
        return self.find(items, since - self._skew() - self.timing.skew)

    def _skew(self) -> timedelta:
        """Return how far the database's clock is ahead of RootFi's (its `Date`), measured
        now, and log it: 0 when either is unknown."""
        if self.clock is None:
            return timedelta(0)
        ours, theirs = self.clock(), self.client.server_now()
        if theirs is None:
            logger.warning("RootFi sent no Date header: lookup windows use the database's clock")
            return timedelta(0)
        skew = ours - theirs
        beyond = abs(skew) > self.timing.skew
        logger.log(
            logging.WARNING if beyond else logging.DEBUG,
            "the database's clock is %.1f s %s RootFi's%s",
            abs(skew.total_seconds()),
            "ahead of" if skew >= timedelta(0) else "behind",
            ": lookup windows are moved by it" if beyond else "",
        )
        return skew

    def _failed(self, items: Sequence[Doubt], now: datetime, exc: Exception) -> dict[str, Outcome]:
        return {
            i.customer_id: pending(
                i.customer_id,
                Event.LOOKUP_FAILED,
                f"lookup failed: {exc}",
                self.timing,
                mode=i.last_mode or self.mode,
                sync_id=i.sync_id,
                last_sent=i.last_sent,
                now=now,
            )
            for i in items
        }
