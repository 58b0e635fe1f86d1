"""The batch window: a run's batches in flight, and what a finished send leaves to record.

A run keeps a few batches on their way at once (claimed, built, recorded as intended, sent,
then recorded as they ended), so RootFi is never kept waiting on the database. `BatchWindow`
holds at most `depth` of them; when it is full it finishes the first to complete (Prefect's
`as_completed`), and on any stop it finishes every batch still in flight before raising the
first error met, so nothing that was sent goes unrecorded.

`outcomes_of_send` is the pure rule of what a send that ended leaves to record: its outcomes,
the customers it left without one (IN_DOUBT: what was sent may exist), and the error that
must stop the run (401/403, a bug), if any.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from types import TracebackType
from typing import Generic, TypeVar

from prefect.futures import PrefectFuture, as_completed

from rootfi_sync.outcomes import Outcome, Status
from rootfi_sync.rootfi.delivery import RETRYABLE, BatchIncomplete
from rootfi_sync.rootfi.lookup import Item

B = TypeVar("B")
R = TypeVar("R")


class BatchWindow(Generic[B, R]):
    """At most `depth` batches in flight. As each batch's future completes (in the order they
    complete), `finish(batch, result)` is called once with what the future returned; a future
    that failed raises its error instead. Use it as a context manager: leaving the block
    finishes every batch still in flight, whatever stopped it. `blocked()` is entered while
    the window waits for a batch to complete (nothing new is started meanwhile)."""

    def __init__(
        self,
        depth: int,
        finish: Callable[[B, R], None],
        blocked: Callable[[], AbstractContextManager[None]] = nullcontext,
    ) -> None:
        if depth < 1:
            raise ValueError(f"a batch window holds at least one batch, not {depth}")
        self.depth = depth
        self._finish = finish
        self._blocked = blocked
        self._in_flight: dict[PrefectFuture[R], B] = {}

    def __len__(self) -> int:
        return len(self._in_flight)

    def add(self, future: PrefectFuture[R], batch: B) -> None:
        """Put `batch` (ending when `future` does) in flight; while the window is full, wait
        for the first batch to complete and finish it."""
        self._in_flight[future] = batch
        while len(self._in_flight) >= self.depth:
            self._finish_next()

    def drain(self) -> None:
        """Finish every batch in flight; then raise the first error met, if any (so one
        batch's error never leaves the others unrecorded)."""
        first: Exception | None = None
        while self._in_flight:
            try:
                self._finish_next()
            except Exception as error:
                first = first or error
        if first is not None:
            raise first

    def _finish_next(self) -> None:
        with self._blocked():
            future = next(as_completed(list(self._in_flight)))
        batch = self._in_flight.pop(future)
        self._finish(batch, future.result())

    def __enter__(self) -> BatchWindow[B, R]:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Drain the window; when the block itself is raising, its error wins."""
        if exc is None:
            self.drain()
            return
        with contextlib.suppress(Exception):  # it recorded what it could
            self.drain()


def outcomes_of_send(
    items: Sequence[Item], result: list[Outcome] | BaseException | None
) -> tuple[list[Outcome], BaseException | None]:
    """Return what a send that ended leaves to record, and the error that must stop the run.

    `result` is what the send task returned (its outcomes), what it raised once its retries
    ran out, or None when nothing was sent. Every item gets an outcome: one the send gave it,
    or IN_DOUBT (it may have been sent, so it is looked up before a resend). A passing error
    (no answer, 429, 5xx) leaves the batch to a later run; any other error stops the run.
    """
    if result is None:
        return [], None
    if isinstance(result, BatchIncomplete):
        return _complete(items, result.outcomes + list(result.pending.values())), None
    if isinstance(result, BaseException):
        stop = None if isinstance(result, RETRYABLE) else result
        return _complete(items, [], error=f"send failed: {result}"), stop
    return _complete(items, result), None


def _complete(
    items: Sequence[Item], outcomes: list[Outcome], error: str = "no answer"
) -> list[Outcome]:
    """Return the outcomes plus IN_DOUBT for every item that has none."""
    known = {o.customer_id for o in outcomes}
    missing = [
        Outcome(i.customer_id, Status.IN_DOUBT, error=error)
        for i in items
        if i.customer_id not in known
    ]
    return outcomes + missing
