"""Prefect's send cache, across runs: the same payloads are answered from it, others are sent.

The task reaches the run's delivery through `run.current()`; here that is a stand-in that
counts what it is asked to deliver (no database, no HTTP), so only the cache is under test.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from prefect import flow

from rootfi_sync import run
from rootfi_sync.models import CustomerPayload
from rootfi_sync.outcomes import Outcome, Status
from rootfi_sync.rootfi.delivery import Item
from tasks.load import SendRequest, send_batch

pytestmark = pytest.mark.usefixtures("prefect_server")


@dataclass
class CountingDelivery:
    company_id: int = 1089
    mode: str = "single"
    delivered: list[list[str]] = field(default_factory=list)

    def deliver(self, items: Sequence[Item], now: datetime) -> list[Outcome]:
        self.delivered.append([i.payload.name for i in items])
        created = f"{len(self.delivered)}-"  # each delivery creates records of its own
        return [
            Outcome(i.customer_id, Status.SYNCED, rootfi_id=created + i.customer_id) for i in items
        ]


class Clock:
    """The run's ledger as the task uses it here: only its clock."""

    def now(self) -> datetime:
        return datetime.now(UTC)


@flow(name="send-cache-test")
def one_run(delivery: Any, request: SendRequest) -> list[Outcome]:
    parts: Any = run.RunParts(Clock(), None, None, delivery)  # type: ignore[arg-type]
    with run.current_run(parts):  # a run of which the task uses only the delivery and clock
        return send_batch(request)


def request(api: str, batch_no: int, *names: str) -> SendRequest:
    items = tuple(Item(str(n), CustomerPayload(name=name)) for n, name in enumerate(names))
    return SendRequest(api, 1089, "single", batch_no, items)


def test_a_later_run_with_the_same_payloads_hits_the_cache_and_other_payloads_do_not() -> None:
    api = f"https://{uuid.uuid4().hex}.example/v3"  # a key no other test shares
    delivery = CountingDelivery()

    first = one_run(delivery, request(api, 1, "Ada", "Bo"))
    second = one_run(delivery, request(api, 4, "Ada", "Bo"))  # another run, another batch number
    third = one_run(delivery, request(api, 1, "Ada", "Bob"))  # one payload changed

    assert delivery.delivered == [["Ada", "Bo"], ["Ada", "Bob"]]
    assert second == first and third != first


def test_a_customer_whose_ledger_state_needs_a_lookup_is_never_answered_from_the_cache() -> None:
    api = f"https://{uuid.uuid4().hex}.example/v3"
    delivery = CountingDelivery()
    first = one_run(delivery, request(api, 1, "Ada", "Bo"))
    # The ledger now says Bo is in doubt (its outcome was never written, say): only a lookup
    # (the delivery) may say what became of it, not an answer kept from before.
    fresh = request(api, 1, "Ada", "Bo")
    since = datetime.now(UTC) - timedelta(minutes=1)
    doubtful = (fresh.items[0], replace(fresh.items[1], doubt_since=since, last_sent=since))

    second = one_run(delivery, replace(fresh, items=doubtful))

    assert delivery.delivered == [["Ada", "Bo"], ["Ada", "Bo"]]
    assert second != first
