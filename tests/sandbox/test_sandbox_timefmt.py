"""The sandbox's timestamps, as RootFi writes them: a four-digit year whatever the year."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from rootfi_sandbox.timefmt import iso_from_ms, ms_from_iso


@pytest.mark.parametrize(
    ("moment", "expected"),
    [
        (datetime(2024, 1, 22, 5, 7, 31, 465000, tzinfo=UTC), "2024-01-22T05:07:31.465Z"),
        (datetime(999, 1, 2, 3, 4, 5, 678000, tzinfo=UTC), "0999-01-02T03:04:05.678Z"),
        (datetime(5, 1, 1, tzinfo=UTC), "0005-01-01T00:00:00.000Z"),
        (datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC), "1969-12-31T23:59:59.999Z"),
    ],
)
def test_writes_milliseconds_since_the_epoch_as_iso_8601_with_a_four_digit_year(
    moment: datetime, expected: str
) -> None:
    ms = ms_from_iso(moment.isoformat())

    assert iso_from_ms(ms) == expected
    assert ms_from_iso(iso_from_ms(ms)) == ms
