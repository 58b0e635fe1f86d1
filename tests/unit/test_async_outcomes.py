"""What an async write's end proves, through the real client against a small RootFi app
(httpx.MockTransport): jobs name no record, platforms store records in their own form, and a
sync may not be readable at once. Nothing is attributed by position; nothing created is
FAILED or sent again."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from rootfi_sync.models import Address, CustomerPayload
from rootfi_sync.outcomes import Outcome, Status
from rootfi_sync.rootfi.delivery import BatchIncomplete
from rootfi_sync.rootfi.lookup import Item
from tests.unit.mock_delivery import mock_delivery

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
Store = Callable[[dict[str, Any]], dict[str, Any]]


def as_sent(record: dict[str, Any]) -> dict[str, Any]:
    return record


def like_shopify(record: dict[str, Any]) -> dict[str, Any]:
    """E.164 phones, ISO-2 countries, lower-case emails (what a normalizing platform keeps)."""
    stored = dict(record, email=record["email"].lower())
    stored["phone"] = "+1" + "".join(ch for ch in record["phone"] if ch.isdigit())[-10:]
    stored["address"] = {"country": "BR", "city": record["address"]["city"]}
    return stored


@dataclass
class RootFi:
    """One async write's worth of RootFi: records it refuses (by email domain), how it stores
    what it creates, the order of the jobs, and how many sync GETs answer 404 first."""

    store: Store = as_sent
    failures_first: bool = False
    unreadable_gets: int = 0
    creates: int = 0
    job_listings: int = 0
    records: list[dict[str, Any]] = field(default_factory=list)
    jobs: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if request.method == "POST":
            return self._write(json.loads(request.content)["data"])
        if path.endswith("/jobs"):
            self.job_listings += 1
            return httpx.Response(200, json={"data": self.jobs, "next": None})
        if "/core/syncs/" in path:
            if self.unreadable_gets > 0:
                self.unreadable_gets -= 1
                return httpx.Response(404, json={"error": {"message": "no such sync"}})
            failed = sum(1 for j in self.jobs if j["status"] == "FAILED")
            status = "FAILED" if failed else "SUCCESS"
            counts = {"total_count": len(self.jobs), "failed_count": failed}
            sync = {"sync_id": "s-1", "status": status, **counts}
            return httpx.Response(
                200, json={"data": sync | {"success_count": len(self.jobs) - failed}}
            )
        return httpx.Response(200, json={"data": self.records, "next": None})

    def _write(self, data: list[dict[str, Any]]) -> httpx.Response:
        self.creates += 1
        for record in data:
            if record["email"].endswith("@refused.example"):
                error = {"message": "Platform rejected the customer", "field": "email"}
                self.jobs.append({"rootfi_id": len(self.jobs), "status": "FAILED", "error": error})
                continue
            rootfi_id = 1000 + len(self.records)
            self.records.append(self.store(record) | {"rootfi_id": rootfi_id})
            self.jobs.append({"rootfi_id": len(self.jobs), "status": "SUCCESS", "error": None})
        if self.failures_first:
            self.jobs.sort(key=lambda j: j["status"] != "FAILED")
        return httpx.Response(200, json={"data": {"sync_id": "s-1"}, "sync_id": "s-1"})


def customer(n: int, domain: str = "x.org") -> Item:
    payload = CustomerPayload(
        name=f"Customer {n}",
        email=f"Customer.{n}@{domain}",
        phone=f"555-010-{n:04d}",
        address=Address(city="Recife", country="BRA"),
    )
    return Item(str(n), payload)


def delivery(app: RootFi, **options: Any) -> Any:
    return mock_delivery(app, NOW, **options)


def outcomes_of(app: RootFi, items: list[Item], **options: Any) -> dict[str, Outcome]:
    with delivery(app, **options) as sender:
        try:
            outcomes = sender.deliver(items, NOW)
        except BatchIncomplete as exc:
            outcomes = exc.outcomes + list(exc.pending.values())
    return {o.customer_id: o for o in outcomes}


def by_status(outcomes: dict[str, Outcome]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for cid, o in outcomes.items():
        found.setdefault(str(o.status), set()).add(cid)
    return found


@pytest.mark.parametrize("failures_first", [False, True], ids=["jobs-in-order", "failures-first"])
def test_jobs_failures_first_make_no_created_customer_failed(failures_first: bool) -> None:
    items = [customer(n) for n in range(1, 61)] + [
        customer(n, "refused.example") for n in (61, 62, 63)
    ]
    app = RootFi(failures_first=failures_first)

    outcomes = by_status(outcomes_of(app, items))

    assert outcomes == {"SYNCED": {str(n) for n in range(1, 61)}, "FAILED": {"61", "62", "63"}}


def test_the_refused_customers_carry_the_jobs_errors_since_no_job_says_whose_it_is() -> None:
    items = [customer(1), customer(2, "refused.example")]
    outcomes = outcomes_of(RootFi(failures_first=True), items)
    assert "email: Platform rejected the customer" in (outcomes["2"].error or "")


def test_records_the_platform_stored_in_its_own_form_are_all_found() -> None:
    items = [customer(n) for n in range(1, 21)]
    app = RootFi(store=like_shopify)

    outcomes = outcomes_of(app, items)

    assert by_status(outcomes) == {"SYNCED": {str(n) for n in range(1, 21)}}
    assert {o.rootfi_id for o in outcomes.values()} == {str(1000 + n) for n in range(20)}
    assert app.job_listings == 0  # every record found: the jobs have nothing to add


def test_a_created_customer_whose_record_cannot_be_identified_is_created_with_its_id_unknown() -> (
    None
):
    items = [customer(1), customer(2)]
    app = RootFi(store=lambda r: r | {"name": r["name"].upper() + " (Shop)"})

    outcomes = outcomes_of(app, items)

    assert by_status(outcomes) == {"CREATED_UNKNOWN": {"1", "2"}}
    assert {o.sync_id for o in outcomes.values()} == {"s-1"}
    assert app.creates == 1


def test_when_counts_cannot_say_who_was_created_the_customers_stay_in_doubt_with_the_sync() -> None:
    renamed = {"Customer 3"}

    def store(record: dict[str, Any]) -> dict[str, Any]:
        return record | ({"name": "Someone Else"} if record["name"] in renamed else {})

    items = [customer(1), customer(2, "refused.example"), customer(3)]
    outcomes = outcomes_of(RootFi(store=store), items)

    assert outcomes["1"].status == Status.SYNCED
    assert {outcomes[c].status for c in ("2", "3")} == {Status.IN_DOUBT}
    assert {outcomes[c].sync_id for c in ("2", "3")} == {"s-1"}
    assert outcomes["3"].wait == 900  # looked up again after the async settle time


def test_a_sync_not_readable_at_first_is_asked_again_until_it_says_it_ended() -> None:
    app = RootFi(unreadable_gets=3)
    outcomes = outcomes_of(app, [customer(1), customer(2)])
    assert by_status(outcomes) == {"SYNCED": {"1", "2"}}


def test_a_sync_never_readable_keeps_its_customers_in_doubt_with_its_id() -> None:
    app = RootFi(unreadable_gets=10**6)
    outcomes = outcomes_of(app, [customer(1)], poll_timeout=0.01)
    assert (outcomes["1"].status, outcomes["1"].sync_id) == (Status.IN_DOUBT, "s-1")


def test_a_later_lookup_never_resends_a_customer_whose_sync_answers_404() -> None:
    app = RootFi(unreadable_gets=1)
    earlier = NOW - timedelta(hours=1)
    held = Item("1", customer(1).payload, doubt_since=earlier, last_sent=earlier, sync_id="s-9")

    outcomes = outcomes_of(app, [held])

    assert (outcomes["1"].status, outcomes["1"].sync_id) == (Status.IN_DOUBT, "s-9")
    assert app.creates == 0


def test_a_runs_counts_and_attention_list_name_created_unknown_and_duplicates() -> None:
    from rootfi_sync.run.report import RunSummary

    summary = RunSummary(company_id=1089)
    summary.add_outcomes(
        [
            Outcome("1", Status.CREATED_UNKNOWN, sync_id="s-1"),
            Outcome("2", Status.SYNCED, rootfi_id="7", duplicates=("9",)),
            Outcome("3", Status.SYNCED, rootfi_id="8"),
        ],
        {},
    )

    counts = summary.counts()
    assert (counts["created_unknown"], counts["duplicates_found"], counts["synced"]) == (1, 1, 2)
    assert [(a["customer_id"], a["sync_id"], a["rootfi_ids"]) for a in summary.attention] == [
        ("1", "s-1", ""),
        ("2", "", "7, 9"),
    ]
