"""Following async writes on few requests: when to ask about a sync first, and one listing
for the records of several writes that ended.

`SyncPace` learns how long RootFi takes per record from the syncs it saw end (their own
start and end times), so the first GET of a sync is made when it may have ended, not at once.

`SharedListing` finds the created records of several ended writes with one customer listing
(group commit): the first write to ask leads a round and waits for the writes still followed,
and for those still to come while the run claims batches (`expecting`; not while it waits on
its batches in flight, `paused`), to end and join it: at most `wait` seconds, and no longer
once none is left or coming. It then lists the customers once, from the earliest of their
windows, and matches every member's customers together (`rootfi_sync.rootfi.lookup.Lookup.find`):
records are paired with customers one to one across the writes, as within one. A write joins
a round only once its sync said it ended, and a round lists only after its members joined, so
the listing covers each member's window and records as a listing of its own would. A listing
that fails fails every member (each keeps its customers in doubt with its sync id).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from rootfi_sync.outcomes import Outcome


class _Customer(Protocol):
    @property
    def customer_id(self) -> str: ...


T = TypeVar("T", bound=_Customer)
Find = Callable[[Sequence[T], datetime], tuple[list[Outcome], list[T]]]


def sync_seconds(sync: Mapping[str, Any]) -> float | None:
    """Return how long an ended sync took by its own clock (start to end; None: not told)."""
    start = sync.get("start_time") or sync.get("rootfi_created_at")
    end = sync.get("end_time") or sync.get("rootfi_updated_at")
    if not isinstance(start, str) or not isinstance(end, str):
        return None
    try:
        seconds = (datetime.fromisoformat(end) - datetime.fromisoformat(start)).total_seconds()
    except (ValueError, TypeError):  # not ISO 8601, or one naive and one aware
        return None
    return seconds if seconds >= 0 else None


@dataclass(slots=True)
class SyncPace:
    """How long RootFi took per record in the last sync seen ended; when to ask a new one.

    `first_wait(n, floor)` is the wait before the first GET of a write of `n` records: that
    pace times `n`, with a margin of `MARGIN`, at least `floor` and at most `ceiling` seconds;
    `floor` while no ended sync told its times.
    """

    ceiling: float = 30.0
    per_record: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    MARGIN = 1.25

    def first_wait(self, n: int, floor: float) -> float:
        """Return how long to wait before the first GET of a sync of `n` records."""
        with self._lock:
            if self.per_record is None:
                return floor
            return min(max(self.ceiling, floor), max(floor, self.per_record * n * self.MARGIN))

    def saw_end(self, sync: Mapping[str, Any], n: int) -> None:
        """Learn from a sync of `n` records that said it ended."""
        seconds = sync_seconds(sync)
        if seconds is not None and n > 0:
            with self._lock:
                self.per_record = seconds / n


@dataclass(slots=True)
class _Round(Generic[T]):
    items: list[T] = field(default_factory=list)
    since: datetime | None = None
    done: threading.Event = field(default_factory=threading.Event)
    adopted: dict[str, Outcome] = field(default_factory=dict)
    error: BaseException | None = None

    def join(self, items: Sequence[T], since: datetime) -> None:
        self.items += items
        self.since = since if self.since is None else min(self.since, since)

    def share(self, items: Sequence[T]) -> tuple[list[Outcome], list[T]]:
        """Return a member's part: its adopted outcomes and its customers not found."""
        if self.error is not None:
            raise self.error
        adopted = [self.adopted[i.customer_id] for i in items if i.customer_id in self.adopted]
        return adopted, [i for i in items if i.customer_id not in self.adopted]


class Ticket:
    """A write being followed: it may still join a round (until it joins, or gives up)."""

    __slots__ = ("joined",)

    def __init__(self) -> None:
        self.joined = False


class SharedListing(Generic[T]):
    """One customer listing for the records of several ended async writes (module docstring).

    `wait` is the longest a round waits for writes followed, or still to come, to join it.
    """

    def __init__(self, wait: float = 3.0) -> None:
        self.wait = wait
        self._cond = threading.Condition()
        self._open: _Round[T] | None = None  # the round taking members now
        self._followed = 0  # writes accepted whose sync has not ended (nor been given up) yet
        self._coming = 0  # blocks (`expecting`) that may start more writes...
        self._paused = 0  # ...less those waiting now on writes that ended (`paused`)

    @contextmanager
    def expecting(self) -> Iterator[None]:
        """Let rounds wait (up to `wait`) for writes not started yet, while the block runs
        (a run claiming batches): without it a round waits only for the writes followed."""
        with self._cond:
            self._coming += 1
        try:
            yield
        finally:
            with self._cond:
                self._coming -= 1
                self._cond.notify_all()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Start no write while the block runs (a run waiting for a batch in flight to end,
        which may be waiting in a round): rounds stop waiting for writes not started yet."""
        with self._cond:
            self._paused += 1
            self._cond.notify_all()
        try:
            yield
        finally:
            with self._cond:
                self._paused -= 1

    def _more_may_join(self) -> bool:
        return self._followed > 0 or self._coming > self._paused

    @contextmanager
    def following(self) -> Iterator[Ticket]:
        """Count a write as followed (one that may join a round soon) for the block."""
        ticket = Ticket()
        with self._cond:
            self._followed += 1
        try:
            yield ticket
        finally:
            with self._cond:
                if not ticket.joined:
                    self._leave(ticket)

    def _leave(self, ticket: Ticket) -> None:
        ticket.joined = True
        self._followed -= 1
        self._cond.notify_all()

    def find(
        self, ticket: Ticket, items: Sequence[T], since: datetime, find: Find[T]
    ) -> tuple[list[Outcome], list[T]]:
        """Return (adopted, not found) for `items`, whose write ended, listed since `since`
        (with other writes' customers, by one `find`, when they end in time to join)."""
        with self._cond:
            if not ticket.joined:
                self._leave(ticket)
            leads = self._open is None
            current = self._open if self._open is not None else _Round[T]()
            self._open = current
            current.join(items, since)
            if leads:
                deadline = time.monotonic() + self.wait
                while self._more_may_join() and (left := deadline - time.monotonic()) > 0:
                    self._cond.wait(left)
                self._open = None  # later writes start the next round
        if not leads:
            current.done.wait()
            return current.share(items)
        try:
            assert current.since is not None
            adopted, _ = find(current.items, current.since)
            current.adopted = {o.customer_id: o for o in adopted}
        except BaseException as exc:  # every member meets it, as a listing of its own would
            current.error = exc
        finally:
            current.done.set()
        return current.share(items)
