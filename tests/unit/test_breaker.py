"""The circuit breaker: a run stops when RootFi refuses too large a share of what it sent."""

from __future__ import annotations

import pytest

from rootfi_sync.errors import CircuitOpen
from rootfi_sync.ledger import Outcome, Status
from rootfi_sync.run.report import RunSummary


def summary_after(sent: int, refused: int, parked: int = 0) -> RunSummary:
    summary = RunSummary(company_id=1)
    summary.sent = sent
    outcomes = [Outcome(str(i), Status.FAILED, error="refused") for i in range(refused)]
    outcomes += [Outcome(f"p{i}", Status.FAILED, parked=True) for i in range(parked)]
    outcomes += [Outcome(f"s{i}", Status.SYNCED) for i in range(sent - refused - parked)]
    summary.add_outcomes(outcomes, {})
    return summary


@pytest.mark.parametrize(("sent", "refused"), [(19, 19), (25, 12)])
def test_does_not_trip_below_the_minimum_sample_or_at_the_threshold(
    sent: int, refused: int
) -> None:
    summary_after(sent, refused).check_breaker(0.5)


def test_trips_past_the_threshold_and_says_why() -> None:
    summary = summary_after(25, 13)
    with pytest.raises(CircuitOpen, match="refused 13 of 25"):
        summary.check_breaker(0.5)
    assert summary.stopped and "ROOTFI_MAX_REFUSED_SHARE" in summary.stopped


def test_customers_parked_after_their_attempts_are_failures_but_not_refusals() -> None:
    summary = summary_after(25, 0, parked=20)
    summary.check_breaker(0.5)
    assert (summary.failed, summary.refused) == (20, 0)
