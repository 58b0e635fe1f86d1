"""A task retry starts from what the attempt before it learnt (tasks/load.py `_resume`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from rootfi_sync.delivery import BatchIncomplete
from rootfi_sync.lookup import Item
from rootfi_sync.models import CustomerPayload
from rootfi_sync.outcomes import Outcome, Status
from tasks.load import Attempt, _resume

EARLIER = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
AT = EARLIER + timedelta(hours=1)


def item(cid: str, **history: object) -> Item:
    return Item(cid, CustomerPayload(name=f"Customer {cid}"), **history)  # type: ignore[arg-type]


def test_a_retry_keeps_what_was_settled_and_resends_only_what_is_left() -> None:
    items = [
        item("done"),
        item("lost"),
        item("throttled"),
        item("held", doubt_since=EARLIER, last_sent=EARLIER),
    ]
    previous = BatchIncomplete(
        "x",
        [Outcome("done", Status.SYNCED, rootfi_id="1")],
        {
            "lost": Outcome("lost", Status.IN_DOUBT),  # sent, no answer
            "throttled": Outcome("throttled", Status.RETRY),  # never left
            "held": Outcome("held", Status.IN_DOUBT, wait=200),  # lookup failed: not sent
        },
        sent=frozenset({"lost", "throttled"}),
    )

    settled, left = _resume(items, Attempt(AT, items, previous), AT + timedelta(seconds=5))

    assert [o.customer_id for o in settled] == ["done"]
    by_id = {i.customer_id: i for i in left}
    assert set(by_id) == {"lost", "throttled", "held"}
    assert (by_id["lost"].doubt_since, by_id["lost"].last_sent) == (AT, AT)
    assert by_id["lost"].sent_keys == item("lost").keys  # looked up for what was sent
    assert by_id["throttled"].doubt_since is None  # surely not sent: sent now, no lookup
    assert (by_id["held"].doubt_since, by_id["held"].last_sent) == (EARLIER, EARLIER)


def test_a_retry_remembers_the_async_write_that_holds_a_customer() -> None:
    previous = BatchIncomplete("x", [], {"1": Outcome("1", Status.IN_DOUBT, sync_id="s-9")})

    _, left = _resume([item("1")], Attempt(AT, [item("1")], previous), AT)

    assert left[0].sync_id == "s-9"


def test_a_retry_starts_from_the_history_the_attempts_before_it_learnt() -> None:
    first = item("1").sent_at(EARLIER)  # as the second attempt started: sent by the first
    held_back = BatchIncomplete("x", [], {"1": Outcome("1", Status.IN_DOUBT, wait=60)})

    _, left = _resume([item("1")], Attempt(AT, [first], held_back), AT)

    assert (left[0].doubt_since, left[0].last_sent) == (EARLIER, EARLIER)  # not a fresh send


def test_a_retry_without_a_record_of_its_attempt_treats_everything_as_sent() -> None:
    _, left = _resume([item("1"), item("2")], None, AT)

    assert [(i.doubt_since, i.last_sent) for i in left] == [(AT, AT), (AT, AT)]
