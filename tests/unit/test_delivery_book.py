"""What delivery asks of the ledger (`Book`) while it sends, with a recording fake: a request
leaves only for a customer the book vouches for right then, an async write's sync id is
handed to the book as soon as RootFi names it, and a resend after a lookup is stamped first.
Through the real client against an in-process RootFi app (httpx.MockTransport)."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from rootfi_sync.models import CustomerPayload
from rootfi_sync.outcomes import Status
from rootfi_sync.rootfi.delivery import BatchIncomplete
from rootfi_sync.rootfi.lookup import Item
from tests.unit.mock_delivery import mock_delivery

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class RecordingBook:
    """A ledger that holds `held` (None: everyone) and records what delivery asked of it."""

    held: set[str] | None = None
    vouched: list[list[str]] = field(default_factory=list)
    accepted_syncs: list[tuple[list[str], str]] = field(default_factory=list)
    stamped: list[dict[str, tuple[str, ...]]] = field(default_factory=list)

    def known(self, rootfi_ids: Iterable[str]) -> set[str]:
        return set()

    def vouch(self, customer_ids: Sequence[str]) -> tuple[set[str], datetime]:
        self.vouched.append(list(customer_ids))
        held = set(customer_ids) if self.held is None else self.held & set(customer_ids)
        return held, NOW

    def accepted(self, customer_ids: list[str], sync_id: str) -> None:
        self.accepted_syncs.append((list(customer_ids), sync_id))

    def stamp(self, keys: Mapping[str, tuple[str, ...]]) -> set[str]:
        self.stamped.append(dict(keys))
        return set(keys) if self.held is None else self.held & set(keys)

    def now(self) -> datetime:
        return NOW


@dataclass
class RootFi:
    """Creates what it is sent (one at a time, or as an async write `s-1` that has ended)."""

    posts: list[list[str]] = field(default_factory=list)
    records: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            body = json.loads(request.content)
            self.posts.append([r["name"] for r in body["data"]])
            made = [
                r | {"rootfi_id": str(1000 + len(self.records) + n)}
                for n, r in enumerate(body["data"])
            ]
            self.records += made
            if body["run_async"]:
                return httpx.Response(200, json={"data": [], "sync_id": "s-1"})
            return httpx.Response(200, json={"data": made, "sync_id": "s-0"})
        if "/core/syncs/" in request.url.path:
            n = len(self.records)
            sync = {"sync_id": "s-1", "status": "SUCCESS", "total_count": n, "success_count": n}
            return httpx.Response(200, json={"data": sync | {"failed_count": 0}})
        return httpx.Response(200, json={"data": self.records, "next": None})


ITEMS = [Item(str(n), CustomerPayload(name=f"Customer {n}", email=f"c{n}@x.org")) for n in range(3)]


def deliver(app: RootFi, book: RecordingBook, mode: str, items: list[Item] = ITEMS) -> Any:
    with mock_delivery(app, NOW, mode, book=book) as sender:
        try:
            return sender.deliver(items, NOW)
        except BatchIncomplete as exc:
            return exc


def test_single_mode_sends_only_for_the_customers_the_book_vouches_for_right_then() -> None:
    app, book = RootFi(), RecordingBook(held={"0", "2"})

    incomplete = deliver(app, book, "single")

    assert sorted(book.vouched) == [["0"], ["1"], ["2"]]  # asked before each request
    assert sorted(app.posts) == [["Customer 0"], ["Customer 2"]]  # nothing left for "1"
    assert isinstance(incomplete, BatchIncomplete)
    assert {o.customer_id for o in incomplete.outcomes} == {"0", "2"}
    assert incomplete.pending["1"].status == Status.RETRY


def test_an_async_write_leaves_whole_or_not_at_all_and_its_sync_is_booked_at_once() -> None:
    app, partly = RootFi(), RecordingBook(held={"0", "1"})
    incomplete = deliver(app, partly, "batch")
    assert app.posts == []  # one customer not vouched for: the write does not leave
    assert isinstance(incomplete, BatchIncomplete) and set(incomplete.pending) == {"0", "1", "2"}

    book = RecordingBook()
    outcomes = deliver(app, book, "batch")

    assert app.posts == [["Customer 0", "Customer 1", "Customer 2"]]
    assert book.accepted_syncs == [(["0", "1", "2"], "s-1")]  # named to the book at once
    assert [o.status for o in outcomes] == [Status.SYNCED] * 3


def test_a_customer_in_doubt_and_not_found_is_stamped_before_it_is_sent_again() -> None:
    app, book = RootFi(), RecordingBook()
    since = NOW - timedelta(hours=1)  # long past its settle time: not found means not created
    doubtful = [
        replace(i, doubt_since=since, last_sent=since, last_mode="single") for i in ITEMS[:1]
    ]

    outcomes = deliver(app, book, "single", doubtful)

    assert [list(s) for s in book.stamped] == [["0"]]  # its keys recorded before the resend
    assert app.posts == [["Customer 0"]]
    assert [o.status for o in outcomes] == [Status.SYNCED]


@pytest.mark.parametrize("mode", ["single", "batch"])
def test_a_book_that_holds_no_one_lets_nothing_leave(mode: str) -> None:
    app, book = RootFi(), RecordingBook(held=set())

    incomplete = deliver(app, book, mode)

    assert app.posts == [] and book.accepted_syncs == []
    assert isinstance(incomplete, BatchIncomplete)
    assert {o.status for o in incomplete.pending.values()} == {Status.RETRY}
