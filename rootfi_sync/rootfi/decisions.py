"""May this customer be sent again, and when? Every delivery rule, as pure functions.

What happened to one customer's attempt decides its next ledger state and how long it waits
before anything may be sent for it again:

    event                                                    state      may be tried again
    ─────────────────────────────────────────────────────────────────────────────────────────
    CREATED    RootFi answered with the record               SYNCED     never
    FOUND      a lookup found what an earlier attempt made   SYNCED     never
    REFUSED    4xx for this customer, or its platform job    FAILED     when its row changes,
               failed                                                   or `rootfi-sync retry`
    NOT_SENT   429, no connection, lease not vouched for:    RETRY      now
               RootFi surely holds nothing of this attempt
    HELD_BACK  not sent: the circuit breaker opened while     RETRY      in a later run (its
               its batch was split                                      requeue delay)
    NO_ANSWER  a synchronous create got no answer (timeout,  IN_DOUBT   after the sync settle
               reset, 5xx): it may still land                           time (lookup first)
    ASYNC_LOST an async write got no sync id back            IN_DOUBT   after the async settle
               (lookup first)
    ASYNC_OPEN its sync is known but not final, or could     IN_DOUBT   the sync is asked again
               not be read: never resent before it is final             after `sync_poll`
    ASYNC_UNSURE its sync ended having created some of its   IN_DOUBT   looked up again after
               records and refused others, and those not                the async settle (see
               found are not just the refused ones                      `Verdict`)
    LOOKUP_FAILED  the lookup itself failed                  IN_DOUBT   when the settle time of
                                                                        its last attempt is over
    any IN_DOUBT or RETRY after ROOTFI_MAX_ATTEMPTS attempts    FAILED (parked), keeps its doubt

An answer that RootFi created something is final. After an async write has ended, what its
counts prove about the customers a lookup did not find (`verdict`): the platform refused
exactly them (FAILED, with the jobs' errors); every record was created (CREATED_UNKNOWN:
created, id unknown, never sent again); nothing was created (resent, as below); or some were
created and RootFi does not say which (in doubt; once the settle time is over, parked FAILED
for a person to look at: never resent by itself).

An in-doubt customer is looked up (customers listed since its *first* unresolved attempt, less
the skew margin, matched on every payload sent since) before it is sent again; a customer not
found is resent only once the settle time of its *last* attempt is over, nothing shows that
it was created, and ROOTFI_RESEND_IN_DOUBT is `after-settle` (with `never`, it is parked
FAILED "in doubt, not found in RootFi" instead, and `rootfi-sync retry` resends it on purpose).
A task retry in the same run happens only for outcomes that may be tried now.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from rootfi_sync.outcomes import Outcome, Status
from rootfi_sync.settings import ResendPolicy

MAX_BACKOFF_DOUBLINGS = 10
LATER_RUN = 1.0  # the wait of what must not be retried in this run (next_attempt_at: at least)


class Event(StrEnum):
    NOT_SENT = "not_sent"
    HELD_BACK = "held_back"
    NO_ANSWER = "no_answer"
    ASYNC_LOST = "async_lost"
    ASYNC_OPEN = "async_open"
    ASYNC_UNSURE = "async_unsure"
    LOOKUP_FAILED = "lookup_failed"


@dataclass(frozen=True, slots=True)
class Timing:
    """How long what was sent is given to land, per write mode, and how far back to look."""

    sync_settle: float = 300.0
    async_settle: float = 900.0
    sync_poll: float = 60.0
    skew: timedelta = timedelta(minutes=2)
    timeout: float = 0.0  # a request's timeout: how long after it left it may still arrive

    def settle(self, mode: str) -> float:
        """Return the settle time of an attempt made in `mode` (single or batch)."""
        return self.sync_settle if mode == "single" else self.async_settle

    def after_sent(self, mode: str) -> float:
        """Return how long after a request in `mode` may have left it may be sent again: its
        timeout (it may arrive that late) and its settle time (then land that late)."""
        return self.timeout + self.settle(mode)


DEFAULT_TIMING = Timing()


def wait_left(last_sent: datetime | None, now: datetime, settle: float) -> float:
    """Return how many seconds remain before a customer last sent at `last_sent` may be resent."""
    if last_sent is None:
        return 0.0
    return max(0.0, settle - (now - last_sent).total_seconds())


def pending(
    customer_id: str,
    event: Event,
    error: str,
    timing: Timing = DEFAULT_TIMING,
    *,
    mode: str = "single",
    sync_id: str | None = None,
    last_sent: datetime | None = None,
    now: datetime | None = None,
) -> Outcome:
    """Return the outcome of a customer that got no final answer, with how long it waits."""
    if event is Event.NOT_SENT:
        return Outcome(customer_id, Status.RETRY, error=error)
    if event is Event.HELD_BACK:  # any wait keeps it out of this run; the requeue sets when
        return Outcome(customer_id, Status.RETRY, error=error, wait=LATER_RUN)
    if event is Event.LOOKUP_FAILED:
        assert now is not None
        wait = wait_left(last_sent, now, timing.after_sent(mode))
    else:
        wait = {
            Event.NO_ANSWER: timing.sync_settle,
            Event.ASYNC_LOST: timing.async_settle,
            Event.ASYNC_OPEN: timing.sync_poll,
            Event.ASYNC_UNSURE: timing.async_settle,
        }[event]
    return Outcome(customer_id, Status.IN_DOUBT, sync_id=sync_id, error=error, wait=wait)


def retry_in_run(outcomes: Iterable[Outcome]) -> bool:
    """Whether a task retry in this run could move any of these pending outcomes on."""
    return any(o.status in TRANSIENT and o.wait <= 0 for o in outcomes)


TRANSIENT = (Status.IN_DOUBT, Status.RETRY)


def park(
    outcomes: Iterable[Outcome], attempts: Mapping[str, int], max_attempts: int
) -> list[Outcome]:
    """Return the outcomes, with customers still pending after `max_attempts` parked FAILED."""
    return [
        replace(
            o,
            status=Status.FAILED,
            parked=True,
            error=f"gave up after {attempts[o.customer_id]} attempts: {o.error}",
        )
        if o.status in TRANSIENT and attempts.get(o.customer_id, 0) >= max_attempts
        else o
        for o in outcomes
    ]


def next_attempt_at(
    outcome: Outcome, now: datetime, attempts: int, requeue: timedelta
) -> datetime | None:
    """Return when a later run may take the customer again (None: not pending).

    The wait is the outcome's own (its settle time) or the requeue delay doubled for each
    attempt already made, whichever is longer.
    """
    if outcome.status not in TRANSIENT:
        return None
    backoff: timedelta = requeue * 2 ** min(max(attempts - 1, 0), MAX_BACKOFF_DOUBLINGS)
    return now + max(backoff, timedelta(seconds=outcome.wait))


def fresh_send(attempts: int, ever_sent: bool) -> bool:
    """Whether `rootfi-sync retry` re-drove a customer RootFi may hold: only a redrive resets
    the attempts of a row that keeps its doubt (a changed source row does not). A lookup that
    finds nothing then sends it on purpose, whatever ROOTFI_RESEND_IN_DOUBT says.
    """
    return attempts == 0 and ever_sent


@dataclass(frozen=True, slots=True)
class WriteCounts:
    """What RootFi says an ended async write did: its records, how many created, refused
    (None: RootFi did not say, which proves nothing)."""

    total: int
    success: int | None
    failed: int | None

    @classmethod
    def of(
        cls, sync: Mapping[str, Any], jobs: Sequence[Mapping[str, Any]] | None = None
    ) -> WriteCounts:
        """Return the counts of a sync: from its jobs when they are listed, else its own."""
        total = _count(sync.get("total_count")) or 0
        if jobs:
            states = [job.get("status") for job in jobs]
            success, failed = states.count("SUCCESS"), states.count("FAILED")
            return cls(max(total, len(jobs)), success, failed)
        return cls(total, _count(sync.get("success_count")), _count(sync.get("failed_count")))


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and value >= 0 else None


class Verdict(StrEnum):
    """What an ended async write's counts prove about the customers a lookup did not find."""

    REFUSED = "refused"  # they are exactly the refused ones
    CREATED = "created"  # every record was created: theirs too
    NOTHING_CREATED = "nothing created"
    UNSURE = "unsure"  # some were created, some refused: RootFi does not say which


def verdict(counts: WriteCounts, in_view: int, missing: int) -> Verdict:
    """Return what `counts` prove about `missing` customers not found, of the `in_view`
    customers of the write looked up (the whole write, or what is left of it)."""
    if counts.total == 0 or counts.success is None or counts.failed is None:
        return Verdict.UNSURE  # RootFi did not say what became of its records
    if missing and in_view == counts.total and missing == counts.failed:
        return Verdict.REFUSED
    if counts.success == 0:
        return Verdict.NOTHING_CREATED
    if counts.failed == 0 and counts.success >= counts.total:
        return Verdict.CREATED
    return Verdict.UNSURE


def created_unknown(customer_id: str, sync_id: str | None) -> Outcome:
    """Return the outcome of a customer RootFi says it created, whose record is not found."""
    error = f"created by async write {sync_id} (RootFi says so), but no record found is its own"
    return Outcome(customer_id, Status.CREATED_UNKNOWN, sync_id=sync_id, error=error)


def unfound(
    item: tuple[str, str | None],
    found: Verdict | None,
    *,
    resend: ResendPolicy,
    redriven: bool,
    refusal: str = "refused by the platform",
) -> Outcome | None:
    """Return the outcome of a customer (id, sync id) not found once its settle time is over,
    or None when it is to be sent again.

    `found` is what its ended async write proves (None: it had none); `resend` is
    ROOTFI_RESEND_IN_DOUBT; `redriven`, whether a person asked for it again.
    """
    customer_id, sync_id = item
    if found is Verdict.REFUSED:
        return Outcome(customer_id, Status.FAILED, sync_id=sync_id, error=refusal)
    if found is Verdict.CREATED:
        return created_unknown(customer_id, sync_id)
    if redriven:
        return None
    if found is Verdict.UNSURE:
        error = (
            f"in doubt: async write {sync_id} created some of its records and RootFi does not "
            "say which; not found in RootFi. Check it, then `rootfi-sync retry` if missing"
        )
        return Outcome(customer_id, Status.FAILED, sync_id=sync_id, error=error, parked=True)
    if resend == "never":
        error = "in doubt, not found in RootFi (ROOTFI_RESEND_IN_DOUBT=never)"
        return Outcome(customer_id, Status.FAILED, sync_id=sync_id, error=error, parked=True)
    return None
