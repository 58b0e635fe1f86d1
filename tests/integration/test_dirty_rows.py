"""Dirty source rows, as a real database holds them: each is a FAILED row, never a crash."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
from rootfi_sandbox import SandboxServer

from flows.sync_customers import sync_customers
from tests.factories import make_customer
from tests.integration.conftest import COMPANY
from tests.integration.helpers import create_source, insert_raw, ledger_rows, seed_source

pytestmark = pytest.mark.usefixtures("prefect_server")

# (column, value as the database holds it, the rule it breaks)
SQLITE_DIRTY = [
    ("created_at", "", "created_at.not_a_timestamp"),
    ("created_at", "12/31/2023", "created_at.not_a_timestamp"),
    ("created_at", "garbage", "created_at.not_a_timestamp"),
    ("updated_at", 1_700_000_000, "updated_at.not_a_timestamp"),
    ("updated_at", 1_700_000_000.5, "updated_at.not_a_timestamp"),
    ("name", b"\xff\xfe", "name.not_text"),
    ("city", b"\xc3\x28", "city.not_text"),
    ("email", 12345, "email.invalid"),
]
# (column, value as the database holds it, what RootFi is sent): odd, but with one reading
SQLITE_ODD = [
    ("created_at", "2024-01-01T10:00:00+02:00", "2024-01-01T08:00:00.000Z"),
    ("updated_at", "2024-01-01 10:00:00", "2024-01-01T10:00:00.000Z"),
    ("phone", 5550109999, "5550109999"),
    ("name", "Zoë Ñúñez".encode(), "Zoë Ñúñez"),
]
# A user's table that keeps timestamps as text, and phones as numbers.
PG_TYPES = {"created_at": sa.Text(), "updated_at": sa.DateTime(timezone=True)}
PG_DIRTY = [
    ("created_at", "", "created_at.not_a_timestamp"),
    ("created_at", "12/31/2023", "created_at.not_a_timestamp"),
    ("created_at", "1700000000", "created_at.not_a_timestamp"),
    ("created_at", "garbage", "created_at.not_a_timestamp"),
    ("name", " \t", "name.required"),
]
PG_ODD = [
    ("created_at", "2024-01-01 10:00:00+02", "2024-01-01T08:00:00.000Z"),
    ("created_at", "2024-01-01T10:00:00", "2024-01-01T10:00:00.000Z"),
    (
        "updated_at",
        datetime(2024, 1, 1, 10, tzinfo=timezone(timedelta(hours=-5))),
        "2024-01-01T15:00:00.000Z",
    ),
    ("phone", 5550109999, "5550109999"),
]


def corpus(
    dirty: list[tuple[str, Any, str]], odd: list[tuple[str, Any, str]]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]]]:
    """Return 10 good rows, the dirty and odd rows, and 10 more good rows, in key order."""
    before = [make_customer() for _ in range(10)]
    middle = [make_customer(**{column: value}) for column, value, _ in dirty + odd]
    after = [make_customer() for _ in range(10)]
    return before, middle, after


def assert_outcomes(
    url: str,
    sandbox: SandboxServer,
    counts: dict[str, Any],
    rows: list[dict[str, Any]],
    cases: dict[str, list[tuple[str, Any, str]]],
) -> None:
    """Each dirty row is FAILED naming its column and rule; every other row SYNCED, as read."""
    dirty, odd = cases["dirty"], cases["odd"]
    failed = {str(row["id"]): rule for row, (_, _, rule) in zip(rows, dirty, strict=False)}
    ledger = ledger_rows(url)
    assert {cid: r.status for cid, r in ledger.items()} == {
        str(row["id"]): "FAILED" if str(row["id"]) in failed else "SYNCED" for row in rows
    }
    for cid, rule in failed.items():
        assert f"invalid row: {rule.split('.')[0]}: " in ledger[cid].last_error
        assert f"[{rule}]" in ledger[cid].last_error
    sent = {c["email"]: c for c in sandbox.admin.customers(COMPANY)}
    for row, (column, _, expected) in zip(rows[len(dirty) :], odd, strict=False):
        assert sent[row["email"]][column] == expected
    assert (counts["synced"], counts["failed"]) == (len(rows) - len(dirty), len(dirty))


def test_one_run_syncs_the_good_rows_of_a_sqlite_table_and_fails_each_dirty_one(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    before, middle, after = corpus(SQLITE_DIRTY, SQLITE_ODD)
    seed_source(sqlite_url, before)
    insert_raw(sqlite_url, middle)  # as another program wrote them, past any column type
    seed_source(sqlite_url, after)
    configure(sqlite_url, rootfi_batch_size=5)

    counts = sync_customers()

    cases = {"dirty": SQLITE_DIRTY, "odd": SQLITE_ODD}
    assert_outcomes(sqlite_url, sandbox, counts, middle + before + after, cases)


@pytest.mark.postgres
def test_one_run_syncs_the_good_rows_of_a_postgresql_table_with_text_timestamps(
    pg_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    before, middle, after = corpus(PG_DIRTY, PG_ODD)
    rows = [as_in_pg_table(row) for row in before + middle + after]
    create_source(pg_url, rows, phone=sa.BigInteger(), **PG_TYPES)
    configure(pg_url, rootfi_batch_size=5)

    counts = sync_customers()

    cases = {"dirty": PG_DIRTY, "odd": PG_ODD}
    assert_outcomes(pg_url, sandbox, counts, middle + before + after, cases)


def as_in_pg_table(row: dict[str, Any]) -> dict[str, Any]:
    """Return the factory row with the types of the PG_TYPES table (phone NULL unless a number)."""
    created, updated, phone = row["created_at"], row["updated_at"], row["phone"]
    return row | {
        "created_at": created.isoformat() if isinstance(created, datetime) else created,
        "updated_at": updated.replace(tzinfo=updated.tzinfo or UTC),
        "phone": phone if isinstance(phone, int) else None,
    }
