"""One attempt at a batch (tasks/load.py `attempt`), with a fake ledger and delivery: what it
writes for a retry to resume from is written once, and never again by the flow."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace
from typing import Any

import pytest

from rootfi_sync.ledger.statements import outcome_params
from rootfi_sync.models import CustomerPayload
from rootfi_sync.outcomes import Outcome, Status
from rootfi_sync.rootfi.delivery import BatchIncomplete
from rootfi_sync.rootfi.lookup import Item
from tasks.load import attempt

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)


class FakeLedger:
    def __init__(self) -> None:
        self.settled: list[list[Outcome]] = []

    def record_settled(self, outcomes: list[Outcome]) -> set[str]:
        self.settled.append(list(outcomes))
        return {o.customer_id for o in outcomes if o.status in (Status.SYNCED, Status.FAILED)}

    def now(self) -> datetime:
        return NOW

    def resume(self, customer_ids: list[str]) -> dict[str, Any]:
        return {}  # what the attempts before left: nothing this run still holds


def parts_raising(incomplete: BatchIncomplete) -> Any:
    def deliver(items: Any, now: datetime) -> list[Outcome]:
        raise incomplete

    return SimpleNamespace(ledger=FakeLedger(), delivery=SimpleNamespace(deliver=deliver))


ITEMS = [Item(cid, CustomerPayload(name=f"Customer {cid}")) for cid in ("a", "b")]
REFUSED = Outcome("a", Status.FAILED, error="refused by RootFi")


@pytest.mark.parametrize("wait", [0.0, 300.0])
def test_what_an_attempt_settled_is_written_for_a_retry_and_marked_recorded(wait: float) -> None:
    # A retry may follow (the batch holds one customer that may be tried now, or, with `wait`
    # 300, another batch's customer would make it): what this attempt settled is in the ledger
    # for it, and marked recorded so the flow's write adds no second line to `last_error`
    # (before the review fix the refusal appeared twice).
    waiting = Outcome("b", Status.IN_DOUBT, error="no answer", wait=wait)
    parts = parts_raising(BatchIncomplete("1 of 2 pending", [REFUSED], {"b": waiting}))

    with pytest.raises(BatchIncomplete) as caught:
        attempt(parts, ITEMS, run_count=1, retries=2)

    assert [[o.customer_id for o in written] for written in parts.ledger.settled] == [["a", "b"]]
    assert [(o.customer_id, o.recorded) for o in caught.value.outcomes] == [("a", True)]
    assert outcome_params(caught.value.outcomes[0], NOW, None)["b_error"] is None


def test_the_last_attempt_writes_nothing_for_a_retry() -> None:
    waiting = Outcome("b", Status.RETRY, error="429")
    parts = parts_raising(BatchIncomplete("1 of 2 pending", [REFUSED], {"b": waiting}))

    with pytest.raises(BatchIncomplete) as caught:
        attempt(parts, ITEMS, run_count=3, retries=2)

    assert parts.ledger.settled == []
    assert not caught.value.outcomes[0].recorded  # the flow writes it, with its history
