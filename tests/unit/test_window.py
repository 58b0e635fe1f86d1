"""The batch window (rootfi_sync/run/window.py) with fake futures, and what a finished send leaves
to record (`outcomes_of_send`, pure)."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from rootfi_sync import errors
from rootfi_sync.models import CustomerPayload
from rootfi_sync.outcomes import Outcome, Status
from rootfi_sync.rootfi.delivery import BatchIncomplete
from rootfi_sync.rootfi.lookup import Item
from rootfi_sync.run.window import BatchWindow, outcomes_of_send


class FakeFuture:
    """What prefect.futures.as_completed asks of a future: `_final_state`, a done callback,
    and `result()`."""

    def __init__(self, name: str, value: Any = None, error: BaseException | None = None) -> None:
        self.name, self._value, self._error = name, value, error
        self._final_state: object | None = None
        self._callbacks: list[Any] = []
        self._lock = threading.Lock()

    def add_done_callback(self, callback: Any) -> None:
        with self._lock:
            done = self._final_state is not None
            if not done:
                self._callbacks.append(callback)
        if done:
            callback(self)

    def complete(self) -> FakeFuture:
        with self._lock:
            self._final_state = "done"
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)
        return self

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class Finished:
    """A `finish` that records what it was given, and can fail for one batch."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.seen: list[tuple[str, Any]] = []
        self.fail_on = fail_on

    def __call__(self, batch: str, result: Any) -> None:
        self.seen.append((batch, result))
        if batch == self.fail_on:
            raise RuntimeError(f"finishing {batch} failed")


def test_a_window_that_is_full_finishes_the_first_batch_to_complete_not_the_oldest() -> None:
    finished = Finished()
    window: BatchWindow[str, Any] = BatchWindow(2, finished)
    first, second = FakeFuture("first", 1), FakeFuture("second", 2)

    window.add(first, "b1")  # type: ignore[arg-type]
    assert finished.seen == [] and len(window) == 1
    window.add(second.complete(), "b2")  # type: ignore[arg-type]

    assert finished.seen == [("b2", 2)]  # b1 is still on its way
    assert len(window) == 1


def test_a_full_window_waits_until_a_batch_completes() -> None:
    finished = Finished()
    window: BatchWindow[str, Any] = BatchWindow(1, finished)
    slow = FakeFuture("slow", "answer")
    completer = threading.Timer(0.05, slow.complete)
    completer.start()

    window.add(slow, "b1")  # type: ignore[arg-type]  # returns only once it completed

    assert finished.seen == [("b1", "answer")]
    completer.join()


def test_leaving_the_window_finishes_every_batch_in_flight() -> None:
    finished = Finished()
    futures = [FakeFuture(f"f{i}", i).complete() for i in range(3)]

    with BatchWindow(5, finished) as window:
        for i, future in enumerate(futures):
            window.add(future, f"b{i}")  # type: ignore[arg-type]
        assert finished.seen == []

    assert sorted(finished.seen) == [("b0", 0), ("b1", 1), ("b2", 2)]


def test_the_first_finish_error_is_raised_only_after_every_batch_is_finished() -> None:
    finished = Finished(fail_on="b1")
    futures = [FakeFuture(f"f{i}", i).complete() for i in range(3)]

    failing = pytest.raises(RuntimeError, match="finishing b1 failed")
    with failing, BatchWindow(5, finished) as window:
        for i, future in enumerate(futures):
            window.add(future, f"b{i}")  # type: ignore[arg-type]

    assert sorted(b for b, _ in finished.seen) == ["b0", "b1", "b2"]


def test_a_future_that_failed_raises_its_error_after_the_others_are_finished() -> None:
    finished = Finished()
    broken = FakeFuture("broken", error=ValueError("the ledger is away")).complete()

    with pytest.raises(ValueError, match="the ledger is away"), BatchWindow(5, finished) as window:
        window.add(broken, "b0")  # type: ignore[arg-type]
        window.add(FakeFuture("ok", "fine").complete(), "b1")  # type: ignore[arg-type]

    assert finished.seen == [("b1", "fine")]


def test_an_error_in_the_block_wins_but_the_batches_in_flight_are_still_finished() -> None:
    finished = Finished(fail_on="b0")

    with pytest.raises(KeyError), BatchWindow(5, finished) as window:
        window.add(FakeFuture("f0", 0).complete(), "b0")  # type: ignore[arg-type]
        window.add(FakeFuture("f1", 1).complete(), "b1")  # type: ignore[arg-type]
        raise KeyError("stopped while claiming")

    assert sorted(b for b, _ in finished.seen) == ["b0", "b1"]


def test_a_window_holds_at_least_one_batch() -> None:
    with pytest.raises(ValueError, match="at least one"):
        BatchWindow(0, Finished())


def items(*ids: str) -> list[Item]:
    return [Item(cid, CustomerPayload(name=f"Customer {cid}")) for cid in ids]


def test_nothing_sent_leaves_nothing_to_record() -> None:
    assert outcomes_of_send(items("a"), None) == ([], None)


def test_a_send_that_answered_keeps_its_outcomes_and_puts_the_silent_ones_in_doubt() -> None:
    synced = Outcome("a", Status.SYNCED, rootfi_id="7")

    outcomes, stop = outcomes_of_send(items("a", "b"), [synced])

    assert stop is None
    assert outcomes[0] == synced
    assert (outcomes[1].customer_id, outcomes[1].status) == ("b", Status.IN_DOUBT)


def test_a_batch_incomplete_keeps_what_it_knew_and_its_pending_customers() -> None:
    incomplete = BatchIncomplete(
        "1 of 3 pending",
        [Outcome("a", Status.SYNCED, rootfi_id="7")],
        {"b": Outcome("b", Status.RETRY, error="429")},
    )

    outcomes, stop = outcomes_of_send(items("a", "b", "c"), incomplete)

    assert stop is None
    assert [(o.customer_id, o.status) for o in outcomes] == [
        ("a", Status.SYNCED),
        ("b", Status.RETRY),
        ("c", Status.IN_DOUBT),
    ]


@pytest.mark.parametrize(
    "error",
    [
        errors.TransportError("connection reset"),
        errors.ServerError(503, "busy"),
        errors.RateLimited(429, "slow down"),
    ],
)
def test_a_passing_error_leaves_the_batch_in_doubt_for_a_later_run(error: Exception) -> None:
    outcomes, stop = outcomes_of_send(items("a", "b"), error)

    assert stop is None
    assert {o.status for o in outcomes} == {Status.IN_DOUBT}
    assert all(o.error and o.error.startswith("send failed: ") for o in outcomes)


@pytest.mark.parametrize(
    "error", [errors.AuthError(401, "bad key"), ValueError("a bug in the send task")]
)
def test_any_other_error_is_recorded_in_doubt_and_stops_the_run(error: Exception) -> None:
    outcomes, stop = outcomes_of_send(items("a"), error)

    assert stop is error
    assert [(o.customer_id, o.status) for o in outcomes] == [("a", Status.IN_DOUBT)]
