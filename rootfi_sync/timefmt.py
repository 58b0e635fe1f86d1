"""Timestamps as RootFi wants them: ISO 8601 in UTC, with milliseconds and a Z.

The one formatter of the package: the payloads' timestamps, the client's `updated_since`,
the stamp of each line of the ledger's error history. (The sandbox, a stand-in for RootFi and
a distribution of its own, keeps its own.)
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso_ms(moment: datetime) -> str:
    """Return `moment` as `YYYY-MM-DDTHH:MM:SS.mmmZ` in UTC; naive means UTC.

    Milliseconds are truncated, and the year always has four digits (`strftime('%Y')` does
    not pad years below 1000 on every platform). Raises OverflowError when the moment falls
    outside years 1-9999 once converted to UTC.
    """
    if moment.utcoffset() is not None:
        moment = moment.astimezone(UTC)
    return moment.replace(tzinfo=None).isoformat(timespec="milliseconds") + "Z"
