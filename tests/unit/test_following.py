"""Following async writes on few requests, through the real client and Delivery against a small
RootFi app (httpx.MockTransport) that keeps several syncs: one customer listing for the writes
that end together, the first GET of a sync when it may have ended, jobs only when needed."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from rootfi_sync.models import CustomerPayload
from rootfi_sync.outcomes import Outcome, Status
from rootfi_sync.rootfi.delivery import BatchIncomplete, Delivery
from rootfi_sync.rootfi.following import SharedListing, SyncPace, sync_seconds
from rootfi_sync.rootfi.lookup import Item
from tests.unit.mock_delivery import mock_delivery
from tests.waiting import wait_until

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


@dataclass
class RootFi:
    """Async writes, each its own sync, which ends `seconds` after it was taken (and says
    so in its start and end times); refuses emails at refused.example; lists the records it
    created unless `hidden`, and fails that listing when `list_fails`; counts requests."""

    seconds: float = 0.0
    list_fails: bool = False
    hidden: bool = False
    asked: Counter[str] = field(default_factory=Counter)
    records: list[dict[str, Any]] = field(default_factory=list)
    syncs: dict[str, list[str]] = field(default_factory=dict)  # sync id: its jobs' states
    taken: dict[str, datetime] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            return self._answer(request)

    def _answer(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST":
            self.asked["create"] += 1
            return self._write(json.loads(request.content)["data"])
        if path.endswith("/jobs"):
            self.asked["sync_jobs"] += 1
            states = self.syncs[path.split("/")[-2]]
            error = {"message": "Platform rejected the customer", "field": "email"}
            jobs = [{"status": s, "error": error if s == "FAILED" else None} for s in states]
            return httpx.Response(200, json={"data": jobs, "next": None})
        if "/core/syncs/" in path:
            self.asked["sync"] += 1
            return httpx.Response(200, json={"data": self._sync(path.split("/")[-1])})
        self.asked["list_customers"] += 1
        if self.list_fails:
            return httpx.Response(500, json={"error": {"message": "down"}})
        return httpx.Response(200, json={"data": [] if self.hidden else self.records})

    def _sync(self, sync_id: str) -> dict[str, Any]:
        states, start = self.syncs[sync_id], self.taken[sync_id]
        end = start + timedelta(seconds=self.seconds)
        failed = states.count("FAILED")
        ended = datetime.now(UTC) >= end
        return {
            "sync_id": sync_id,
            "status": ("FAILED" if failed else "SUCCESS") if ended else "RUNNING",
            "total_count": len(states),
            "success_count": len(states) - failed,
            "failed_count": failed,
            "start_time": start.isoformat(),
            "end_time": (end if ended else datetime.now(UTC)).isoformat(),
        }

    def _write(self, data: list[dict[str, Any]]) -> httpx.Response:
        sync_id = f"s-{len(self.syncs) + 1}"
        self.syncs[sync_id], self.taken[sync_id] = [], datetime.now(UTC)
        for record in data:
            refused = record["email"].endswith("@refused.example")
            self.syncs[sync_id].append("FAILED" if refused else "SUCCESS")
            if not refused:
                self.records.append(record | {"rootfi_id": 1000 + len(self.records)})
        return httpx.Response(200, json={"data": [], "sync_id": sync_id})


def customer(n: int, domain: str = "x.org", name: str | None = None) -> Item:
    payload = CustomerPayload(name=name or f"Customer {n}", email=f"c{n}@{domain}")
    return Item(str(n), payload)


def delivery(app: RootFi, wait: float = 10.0, poll_interval: float = 0.0) -> Any:
    return mock_delivery(app, NOW, poll_interval=poll_interval, listing=SharedListing(wait))


def outcomes(sender: Delivery, items: list[Item]) -> list[Outcome]:
    try:
        return sender.deliver(items, NOW)
    except BatchIncomplete as exc:
        return exc.outcomes + list(exc.pending.values())


def deliver_together(sender: Delivery, app: RootFi, *batches: list[Item]) -> dict[str, Outcome]:
    """Deliver the batches on threads of their own while the run may start more writes, and
    stop expecting more once every batch's write was accepted: each write ends while the
    others are followed."""
    with ThreadPoolExecutor(len(batches)) as sends:
        with sender.listing.expecting():
            futures = [sends.submit(outcomes, sender, batch) for batch in batches]
            wait_until(lambda: app.asked["create"] == len(batches), "every write accepted")
        done = [o for f in futures for o in f.result()]
    return {o.customer_id: o for o in done}


def test_two_writes_that_end_together_find_their_records_with_one_listing() -> None:
    app = RootFi()
    with delivery(app) as sender:
        done = deliver_together(sender, app, [customer(1), customer(2)], [customer(3)])

    assert {o.status for o in done.values()} == {Status.SYNCED}
    assert done["1"].sync_id == done["2"].sync_id != done["3"].sync_id  # each its own write's
    assert app.asked == {"create": 2, "sync": 2, "list_customers": 1}
    assert sorted(str(o.rootfi_id) for o in done.values()) == ["1000", "1001", "1002"]


def test_identical_customers_of_two_writes_listed_together_get_one_record_each() -> None:
    app = RootFi()
    twin = "Ann Twin"
    first = [Item("1", CustomerPayload(name=twin, email="ann@x.org"))]
    second = [Item("2", CustomerPayload(name=twin, email="ann@x.org"))]
    with delivery(app) as sender:
        done = deliver_together(sender, app, first, second)

    assert {o.rootfi_id for o in done.values()} == {"1000", "1001"}
    assert all(o.status == Status.SYNCED and not o.duplicates for o in done.values())


def test_a_shared_listing_that_fails_leaves_each_write_in_doubt_with_its_own_sync() -> None:
    app = RootFi(list_fails=True)
    with delivery(app) as sender:
        done = deliver_together(sender, app, [customer(1)], [customer(2)])

    assert {o.status for o in done.values()} == {Status.IN_DOUBT}
    assert {done["1"].sync_id, done["2"].sync_id} == {"s-1", "s-2"}
    assert app.asked["create"] == 2  # nothing sent again


def test_a_write_whose_sync_reports_failures_still_lists_its_jobs() -> None:
    app = RootFi()
    with delivery(app) as sender:
        sent = [customer(1), customer(2, "refused.example")]
        done = {o.customer_id: o for o in outcomes(sender, sent)}

    assert (done["1"].status, done["2"].status) == (Status.SYNCED, Status.FAILED)
    assert "email: Platform rejected the customer" in (done["2"].error or "")
    assert app.asked["sync_jobs"] == 1


def test_a_sync_that_says_it_created_every_record_needs_no_jobs_for_one_not_found() -> None:
    app = RootFi(hidden=True)  # created, but no listing shows it: its record is unknown
    with delivery(app) as sender:
        done = outcomes(sender, [customer(1)])

    assert [(o.status, o.sync_id) for o in done] == [(Status.CREATED_UNKNOWN, "s-1")]
    assert app.asked["sync_jobs"] == 0


def test_a_round_with_no_other_write_followed_nor_expected_lists_at_once() -> None:
    app = RootFi()
    with delivery(app, wait=30.0) as sender:
        started = time.monotonic()
        done = outcomes(sender, [customer(1)])
    assert [o.status for o in done] == [Status.SYNCED]
    assert time.monotonic() - started < 10  # not the round's 30 s


def test_a_round_stops_waiting_for_writes_to_come_once_the_run_waits_for_its_batches() -> None:
    app = RootFi()
    with (
        delivery(app, wait=30.0) as sender,
        sender.listing.expecting(),
        ThreadPoolExecutor(1) as sends,
    ):
        future = sends.submit(outcomes, sender, [customer(1)])
        wait_until(lambda: app.asked["sync"] == 1, "the write ended")
        with sender.listing.paused():  # the run blocks on its window of batches
            done = future.result(timeout=10)
    assert [o.status for o in done] == [Status.SYNCED]


def test_the_first_get_of_a_sync_waits_as_long_as_the_last_one_took_per_record() -> None:
    pace = SyncPace(ceiling=30.0)
    assert pace.first_wait(100, 0.25) == 0.25  # nothing learnt yet
    ended = {"start_time": "2026-12-01T12:00:00.000Z", "end_time": "2026-12-01T12:00:02.000Z"}
    pace.saw_end(ended, 100)
    assert pace.first_wait(100, 0.25) == pytest.approx(2.5)  # 2 s, and a quarter more
    assert pace.first_wait(50, 0.25) == pytest.approx(1.25)
    assert pace.first_wait(10_000, 0.25) == 30.0
    pace.saw_end({"status": "SUCCESS"}, 100)  # no times told: what was learnt stays
    assert pace.first_wait(100, 0.25) == pytest.approx(2.5)


@pytest.mark.parametrize(
    ("sync", "seconds"),
    [
        ({"start_time": "2026-12-01T12:00:00Z", "end_time": "2026-12-01T12:00:01.5Z"}, 1.5),
        ({"rootfi_created_at": "2026-12-01T12:00:00Z", "rootfi_updated_at": "x"}, None),
        ({"start_time": "2026-12-01T12:00:02Z", "end_time": "2026-12-01T12:00:00Z"}, None),
        ({"start_time": "2026-12-01T12:00:00", "end_time": "2026-12-01T12:00:01Z"}, None),
        ({}, None),
    ],
)
def test_a_syncs_own_duration_is_read_from_its_times_or_not_at_all(
    sync: dict[str, Any], seconds: float | None
) -> None:
    assert sync_seconds(sync) == seconds


def test_once_a_sync_said_how_long_it_took_the_next_writes_ask_about_theirs_once() -> None:
    app = RootFi(seconds=0.2)
    with delivery(app, poll_interval=0.05) as sender:
        outcomes(sender, [customer(1)])  # asked at 0.05 s, then every 1.5 times longer
        first = app.asked["sync"]
        for n in (2, 3):
            assert [o.status for o in outcomes(sender, [customer(n)])] == [Status.SYNCED]
    assert first > 1
    assert app.asked["sync"] - first == 2  # asked when it may have ended: 0.25 s after
