"""Every delivery rule of `rootfi_sync.rootfi.decisions`: what happened -> next state, and when."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from rootfi_sync.outcomes import Outcome, Status
from rootfi_sync.rootfi.decisions import (
    LATER_RUN,
    Event,
    Timing,
    Verdict,
    WriteCounts,
    fresh_send,
    next_attempt_at,
    park,
    pending,
    retry_in_run,
    unfound,
    verdict,
    wait_left,
)

NOW = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
TIMING = Timing(sync_settle=300, async_settle=900, sync_poll=60, skew=timedelta(minutes=2))


@pytest.mark.parametrize(
    ("event", "status", "wait"),
    [
        (Event.NOT_SENT, Status.RETRY, 0),  # 429, no connection: RootFi holds nothing
        (Event.HELD_BACK, Status.RETRY, LATER_RUN),  # the breaker opened: not in this run
        (Event.NO_ANSWER, Status.IN_DOUBT, 300),  # a lost synchronous create may still land
        (Event.ASYNC_LOST, Status.IN_DOUBT, 900),  # an async write with no sync id back
        (Event.ASYNC_OPEN, Status.IN_DOUBT, 60),  # its sync is known: ask again soon
        (Event.ASYNC_UNSURE, Status.IN_DOUBT, 900),  # sync ended; which were created is unknown
    ],
)
def test_each_event_leads_to_its_state_and_wait(event: Event, status: Status, wait: float) -> None:
    outcome = pending("7", event, "why", TIMING)

    assert (outcome.status, outcome.wait, outcome.error) == (status, wait, "why")


def test_a_failed_lookup_waits_only_what_is_left_of_the_last_attempts_settle_time() -> None:
    sent = NOW - timedelta(seconds=100)
    single = pending("7", Event.LOOKUP_FAILED, "x", TIMING, mode="single", last_sent=sent, now=NOW)
    batch = pending("7", Event.LOOKUP_FAILED, "x", TIMING, mode="batch", last_sent=sent, now=NOW)

    assert (single.status, single.wait, batch.wait) == (Status.IN_DOUBT, 200, 800)


def test_a_pending_async_write_keeps_its_sync_id() -> None:
    assert pending("7", Event.ASYNC_OPEN, "x", TIMING, sync_id="s-1").sync_id == "s-1"


@pytest.mark.parametrize(
    ("last_sent", "left"),
    [
        (None, 0.0),
        (NOW, 300.0),
        (NOW - timedelta(seconds=299), 1.0),
        (NOW - timedelta(hours=1), 0.0),
    ],
)
def test_a_resend_waits_the_settle_time_after_the_last_attempt(
    last_sent: datetime | None, left: float
) -> None:
    assert wait_left(last_sent, NOW, TIMING.settle("single")) == pytest.approx(left)


@pytest.mark.parametrize(
    ("outcomes", "retry"),
    [
        ([Outcome("1", Status.RETRY)], True),  # surely not sent: try again now
        ([Outcome("1", Status.IN_DOUBT, wait=300)], False),  # may land: a later run looks
        ([Outcome("1", Status.IN_DOUBT, wait=300), Outcome("2", Status.RETRY)], True),
        ([Outcome("1", Status.IN_DOUBT, wait=0)], True),  # settle time 0: look up now
        ([Outcome("1", Status.SYNCED)], False),
        ([], False),
    ],
)
def test_a_task_retry_happens_only_when_something_may_be_tried_now(
    outcomes: list[Outcome], retry: bool
) -> None:
    assert retry_in_run(outcomes) is retry


def test_customers_still_pending_after_their_last_attempt_are_parked_with_the_reason() -> None:
    outcomes = [
        Outcome("1", Status.IN_DOUBT, error="no answer"),
        Outcome("2", Status.RETRY, error="429"),
        Outcome("3", Status.IN_DOUBT, error="no answer"),
        Outcome("4", Status.SYNCED, rootfi_id="9"),
    ]

    parked = park(outcomes, {"1": 5, "2": 5, "3": 4, "4": 5}, max_attempts=5)

    assert [(o.status, o.parked) for o in parked] == [
        (Status.FAILED, True),
        (Status.FAILED, True),
        (Status.IN_DOUBT, False),
        (Status.SYNCED, False),
    ]
    assert parked[0].error == "gave up after 5 attempts: no answer"


@pytest.mark.parametrize(
    ("outcome", "attempts", "after"),
    [
        (Outcome("1", Status.SYNCED), 1, None),
        (Outcome("1", Status.FAILED), 1, None),
        (Outcome("1", Status.RETRY), 1, timedelta(seconds=10)),  # the requeue delay
        (Outcome("1", Status.RETRY), 3, timedelta(seconds=40)),  # doubled per attempt made
        (Outcome("1", Status.IN_DOUBT, wait=300), 1, timedelta(seconds=300)),  # settle wins
        (Outcome("1", Status.IN_DOUBT, wait=5), 4, timedelta(seconds=80)),  # backoff wins
        (Outcome("1", Status.RETRY), 40, timedelta(seconds=10 * 2**10)),  # capped doubling
    ],
)
def test_a_later_run_takes_a_pending_customer_after_its_settle_time_or_backoff(
    outcome: Outcome, attempts: int, after: timedelta | None
) -> None:
    expected = None if after is None else NOW + after
    assert next_attempt_at(outcome, NOW, attempts, timedelta(seconds=10)) == expected


@pytest.mark.parametrize(
    ("attempts", "ever_sent", "fresh"),
    [(0, True, True), (0, False, False), (2, True, False)],
)
def test_a_customer_redriven_after_being_sent_bypasses_the_send_cache(
    attempts: int, ever_sent: bool, fresh: bool
) -> None:
    assert fresh_send(attempts, ever_sent) is fresh


def test_what_the_breaker_held_back_is_not_retried_in_this_run() -> None:
    held = pending("7", Event.HELD_BACK, "breaker", TIMING)

    assert not retry_in_run([held])
    assert next_attempt_at(held, NOW, 1, timedelta(minutes=5)) == NOW + timedelta(minutes=5)


@pytest.mark.parametrize(
    ("counts", "in_view", "missing", "expected"),
    [
        (WriteCounts(63, 60, 3), 63, 3, Verdict.REFUSED),  # as many left as refused
        (WriteCounts(63, 60, 3), 63, 5, Verdict.UNSURE),  # 2 created, 3 refused: which?
        (WriteCounts(63, 60, 3), 40, 3, Verdict.UNSURE),  # part of the write: cannot count
        (WriteCounts(10, 10, 0), 10, 4, Verdict.CREATED),  # SUCCESS for every record
        (WriteCounts(10, 0, 10), 10, 4, Verdict.NOTHING_CREATED),
        (WriteCounts(0, 0, 0), 10, 4, Verdict.UNSURE),  # no counts, no jobs: nothing shown
    ],
)
def test_an_ended_writes_counts_say_what_they_prove_about_customers_not_found(
    counts: WriteCounts, in_view: int, missing: int, expected: Verdict
) -> None:
    assert verdict(counts, in_view, missing) is expected


def test_write_counts_come_from_the_jobs_when_listed_else_from_the_sync() -> None:
    sync = {"total_count": 3, "success_count": 3, "failed_count": 0}
    jobs = [{"status": "FAILED"}, {"status": "SUCCESS"}, {"status": "SUCCESS"}]
    assert WriteCounts.of(sync, jobs) == WriteCounts(3, 2, 1)
    assert WriteCounts.of(sync) == WriteCounts(3, 3, 0)


@pytest.mark.parametrize(
    "sync",
    [
        {"status": "SUCCESS", "total_count": 3},  # no success_count, no failed_count
        {"status": "SUCCESS", "total_count": 3, "failed_count": 0},
        {"status": "FAILED", "total_count": 3, "success_count": None, "failed_count": 3},
    ],
)
def test_a_count_the_sync_does_not_give_proves_nothing(sync: dict[str, object]) -> None:
    # Before the review fix a missing success_count counted as 0: "nothing created", and the
    # customers not found were sent again although the write may have created them.
    assert verdict(WriteCounts.of(sync), 3, 1) is Verdict.UNSURE


@pytest.mark.parametrize(
    ("found", "resend", "redriven", "status"),
    [
        (None, "after-settle", False, None),  # nothing shows it was created: resent
        (Verdict.NOTHING_CREATED, "after-settle", False, None),
        (None, "never", False, Status.FAILED),  # at most once: parked
        (None, "never", True, None),  # `rootfi-sync retry`: resent on purpose
        (Verdict.CREATED, "after-settle", True, Status.CREATED_UNKNOWN),  # never again
        (Verdict.UNSURE, "after-settle", False, Status.FAILED),  # parked, not guessed
        (Verdict.REFUSED, "after-settle", False, Status.FAILED),
    ],
)
def test_a_customer_not_found_after_its_settle_time_is_resent_only_if_nothing_was_created(
    found: Verdict | None, resend: str, redriven: bool, status: Status | None
) -> None:
    outcome = unfound(("7", "s-1"), found, resend=resend, redriven=redriven)

    assert (outcome.status if outcome else None) is status
    if outcome is not None and found is not Verdict.REFUSED:
        assert outcome.sync_id == "s-1" and (outcome.status != Status.FAILED or outcome.parked)
