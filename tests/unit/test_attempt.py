"""One attempt at a batch (tasks/load.py `attempt`), with a fake ledger and delivery: what it
writes for a retry to resume from is written only when a retry will follow."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from rootfi_sync.delivery import BatchIncomplete
from rootfi_sync.lookup import Item
from rootfi_sync.models import CustomerPayload
from rootfi_sync.outcomes import Outcome, Status
from tasks.load import attempt

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class FakeLedger:
    def __init__(self) -> None:
        self.settled: list[list[Outcome]] = []

    def record_settled(self, outcomes: list[Outcome]) -> None:
        self.settled.append(list(outcomes))

    def resume(self, customer_ids: list[str]) -> dict[str, Any]:
        return {}  # what the attempts before left: nothing this run still holds


def parts_raising(incomplete: BatchIncomplete) -> Any:
    def deliver(items: Any, now: datetime) -> list[Outcome]:
        raise incomplete

    return SimpleNamespace(
        ledger=FakeLedger(), delivery=SimpleNamespace(deliver=deliver, clock=lambda: NOW)
    )


ITEMS = [Item(cid, CustomerPayload(name=f"Customer {cid}")) for cid in ("a", "b")]
REFUSED = Outcome("a", Status.FAILED, error="refused by RootFi")


@pytest.mark.parametrize(("wait", "settled"), [(0.0, 1), (300.0, 0)])
def test_what_an_attempt_settled_is_written_only_when_a_retry_will_follow(
    wait: float, settled: int
) -> None:
    # With a customer waiting its settle time no retry follows (is_transient says no): the
    # flow records the outcomes once. Before the review fix they were written here as well,
    # and the refusal appeared twice in `last_error`.
    waiting = Outcome("b", Status.IN_DOUBT, error="no answer", wait=wait)
    parts = parts_raising(BatchIncomplete("1 of 2 pending", [REFUSED], {"b": waiting}))

    with pytest.raises(BatchIncomplete):
        attempt(parts, ITEMS, run_count=1, retries=2)

    assert len(parts.ledger.settled) == settled


def test_the_last_attempt_writes_nothing_for_a_retry() -> None:
    waiting = Outcome("b", Status.RETRY, error="429")
    parts = parts_raising(BatchIncomplete("1 of 2 pending", [REFUSED], {"b": waiting}))

    with pytest.raises(BatchIncomplete):
        attempt(parts, ITEMS, run_count=3, retries=2)

    assert parts.ledger.settled == []
