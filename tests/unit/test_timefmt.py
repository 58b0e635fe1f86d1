"""The one timestamp format, ISO 8601 UTC with milliseconds and a Z: transform, client, ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from rootfi_sync.timefmt import iso_ms

PLUS_2 = timezone(timedelta(hours=2))


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2024, 1, 1, 10, 0), "2024-01-01T10:00:00.000Z"),
        (datetime(2024, 1, 1, 10, 0, tzinfo=PLUS_2), "2024-01-01T08:00:00.000Z"),
        (datetime(2024, 1, 1, 10, 0, 0, 999999, tzinfo=UTC), "2024-01-01T10:00:00.999Z"),
        (datetime(999, 1, 2, 3, 4, 5), "0999-01-02T03:04:05.000Z"),
        (datetime(5, 1, 1, tzinfo=UTC), "0005-01-01T00:00:00.000Z"),
    ],
)
def test_formats_a_moment_in_utc_with_milliseconds_and_a_four_digit_year(
    moment: datetime, expected: str
) -> None:
    assert iso_ms(moment) == expected


def test_refuses_a_moment_that_leaves_the_calendar_once_in_utc() -> None:
    with pytest.raises(OverflowError):
        iso_ms(datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1))))


def test_is_the_formatter_the_client_sends_moments_with() -> None:
    from rootfi_sync.rootfi import client

    assert client.iso_ms is iso_ms


def test_the_ledger_stamps_each_error_line_in_the_one_format() -> None:
    from rootfi_sync.ledger.statements import outcome_params
    from rootfi_sync.outcomes import Outcome, Status

    at = datetime(999, 1, 2, 3, 4, 5, 678900, tzinfo=UTC)
    params = outcome_params(Outcome("1", Status.FAILED, error="refused"), at, None)

    assert params["b_error"] == "0999-01-02T03:04:05.678Z refused"
