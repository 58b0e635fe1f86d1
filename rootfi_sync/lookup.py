"""Finding out what a request that got no answer did: looking customers in doubt up in RootFi.

A lookup lists the company's customers updated since the customer's first unresolved attempt
(stamped on the database's clock, moved onto RootFi's by the skew measured from its `Date`
header, less a clock-skew margin) and matches them to what was sent:

* A record matches a customer when its match key equals the key of any payload sent for that
  customer since its first unresolved attempt: name, email, phone, currency and the address
  fields, compared after trimming, collapsing inner spaces and case-folding. Status and
  timestamps are left out because the platform may set its own.
* A record already given to a customer in the ledger is never adopted again.
* Customers with identical keys are paired with records in order (lowest rootfi_id first) and
  never share one: with three identical customers in doubt and two records found, two are
  adopted and one waits.

A customer held by an async write whose sync is known is not looked up (nor resent) before
that sync is final. Sending is `rootfi_sync.delivery`'s.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from rootfi_sync import errors
from rootfi_sync.client import RootFiClient
from rootfi_sync.decisions import Event, Timing, pending, wait_left
from rootfi_sync.models import ADDRESS_FIELDS, CustomerPayload
from rootfi_sync.outcomes import Outcome, Status

logger = logging.getLogger("rootfi_sync.lookup")
KEY_FIELDS = ("name", "email", "phone", "currency_id")
PASSING = (errors.RateLimited, errors.ServerError, errors.TransportError)
FINAL = ("SUCCESS", "FAILED")


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


def match_key(record: Mapping[str, Any]) -> str:
    """Return a short digest of a record's fingerprint: what the ledger keeps of a payload sent."""
    text = json.dumps(fingerprint(record), separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass(frozen=True, slots=True)
class Item:
    """One customer to send: its source id, its payload, and what the ledger knows of it."""

    customer_id: str
    payload: CustomerPayload
    doubt_since: datetime | None = None  # first unresolved attempt: lookups start here
    last_sent: datetime | None = None  # a resend waits the settle time after this
    sync_id: str | None = None  # the async write holding it, until that is final
    sent_keys: tuple[str, ...] = ()  # match keys of what was sent since `doubt_since`
    last_mode: str | None = None  # the write mode of the last request (its settle time)

    @property
    def payload_hash(self) -> str:
        return self.payload.content_hash()

    @property
    def keys(self) -> tuple[str, ...]:
        """The match keys a lookup accepts: every payload sent before, and this one."""
        return tuple(dict.fromkeys((*self.sent_keys, match_key(self.payload.to_api()))))


def match_records(
    items: Sequence[Item], records: Iterable[Mapping[str, Any]], taken: set[str]
) -> dict[str, Mapping[str, Any]]:
    """Pair items with RootFi records of a key they sent; return customer_id -> record."""
    pool: dict[str, deque[Mapping[str, Any]]] = defaultdict(deque)
    for record in sorted(records, key=_rootfi_order):
        if str(record.get("rootfi_id")) not in taken:
            pool[match_key(record)].append(record)
    matched: dict[str, Mapping[str, Any]] = {}
    for item in items:
        for key in item.keys:
            if pool.get(key):
                matched[item.customer_id] = pool[key].popleft()
                break
    return matched


def _rootfi_order(record: Mapping[str, Any]) -> tuple[int, str]:
    value = str(record.get("rootfi_id"))
    return (int(value), "") if value.isdigit() else (0, value)


def synced(item: Item, record: Mapping[str, Any], sync_id: str | None = None) -> Outcome:
    """Return the SYNCED outcome of an item from RootFi's record."""
    platform_id = record.get("platform_id")
    return Outcome(
        item.customer_id,
        Status.SYNCED,
        rootfi_id=str(record["rootfi_id"]),
        platform_id=str(platform_id) if platform_id is not None else None,
        sync_id=str(record.get("sync_id") or sync_id or "") or None,
    )


def all_pending(
    items: Iterable[Item], event: Event, error: str, timing: Timing, sync_id: str | None = None
) -> dict[str, Outcome]:
    """Return the pending outcome of each item after `event` (`error` says why)."""
    return {
        i.customer_id: pending(i.customer_id, event, error, timing, sync_id=sync_id) for i in items
    }


@dataclass(frozen=True, slots=True)
class Lookup:
    """Looks up the customers in doubt of one company, in one write mode, through one client.

    `known` tells which RootFi ids the ledger already gives to customers (never adopted again);
    `clock` is the database's, on which `doubt_since` was stamped: a window starts on RootFi's
    clock, moved by the skew measured between the two.
    """

    client: RootFiClient
    company_id: int
    mode: str
    known: Callable[[Iterable[str]], set[str]]
    timing: Timing = field(default_factory=Timing)
    clock: Callable[[], datetime] | None = None

    def resolve(
        self, items: Sequence[Item], now: datetime
    ) -> tuple[list[Outcome], dict[str, Outcome], list[Item]]:
        """Settle the items in doubt; return (settled outcomes, pending outcomes, items to send).

        An item not in doubt is to send; one in doubt and not found is to send again once
        what was sent had time to land (the settle time), and pending until then.
        """
        doubtful = [i for i in items if i.doubt_since is not None]
        to_send = [i for i in items if i.doubt_since is None]
        held = self._open_syncs(doubtful)
        doubtful = [i for i in doubtful if i.customer_id not in held]
        try:
            found, missing = self._since_first_attempt(doubtful)
        except PASSING as exc:
            return [], held | self._failed(doubtful, now, exc), to_send
        for item in missing:
            # From the last moment a request may have left, in the mode it left in.
            left = wait_left(
                item.last_sent, now, self.timing.after_sent(item.last_mode or self.mode)
            )
            if left <= 0:
                to_send.append(item)
            else:
                error = "not found in RootFi yet; resent once what was sent had time to land"
                held[item.customer_id] = Outcome(
                    item.customer_id, Status.IN_DOUBT, sync_id=item.sync_id, wait=left, error=error
                )
        return [replace(o, adopted=True) for o in found], held, to_send

    def find(self, items: Sequence[Item], since: datetime) -> tuple[list[Outcome], list[Item]]:
        """Match items to the records updated since `since`; return (adopted, not found)."""
        records = list(self.client.iter_customers(self.company_id, updated_since=since))
        taken = self.known(str(r.get("rootfi_id")) for r in records)
        matched = match_records(items, records, taken)
        adopted = [synced(i, matched[i.customer_id]) for i in items if i.customer_id in matched]
        return adopted, [i for i in items if i.customer_id not in matched]

    def _open_syncs(self, items: Sequence[Item]) -> dict[str, Outcome]:
        """Ask RootFi about the async writes holding these items; return those not final."""
        groups: dict[str, list[Item]] = defaultdict(list)
        for item in items:
            if item.sync_id:
                groups[item.sync_id].append(item)
        held: dict[str, Outcome] = {}
        for sync_id, group in groups.items():
            try:
                state = self.client.get_sync(sync_id).get("status")
            except errors.Refused:  # RootFi no longer knows it: look the records up
                continue
            except PASSING as exc:
                state = f"unknown ({exc})"
            if state not in FINAL:
                error = f"async write {sync_id} not final yet: {state}"
                held |= all_pending(group, Event.ASYNC_OPEN, error, self.timing, sync_id)
        return held

    def _since_first_attempt(self, items: Sequence[Item]) -> tuple[list[Outcome], list[Item]]:
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

    def _failed(self, items: Sequence[Item], now: datetime, exc: Exception) -> dict[str, Outcome]:
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
