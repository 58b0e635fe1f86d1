"""Which companies have work due: new source rows, or ledger rows a run may take now; on
SQLite, PostgreSQL and MariaDB, with the ledger beside the source and in a database of its own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from rootfi_sync.ledger import KEY_MAX
from rootfi_sync.ledger.db import make_engine, source_for, upgrade_ledger
from rootfi_sync.ledger.due import Due, due_work
from rootfi_sync.ledger.tables import LEDGER_SCHEMA, ledger, source_table
from rootfi_sync.settings import load_settings
from tests.factories import make_customer
from tests.integration.helpers import seed_source

NOW = datetime.now(UTC)
HOUR = timedelta(hours=1)

MINUTE = timedelta(minutes=1)

# company -> the ledger states of its customers (None: no ledger row, a new customer)
COMPANIES: dict[int, list[dict[str, Any] | None]] = {
    1: [None, None, {"status": "SYNCED"}],  # two new
    2: [{"status": "SYNCED"}, {"status": "SYNCED"}],  # nothing due
    3: [{"status": "RETRY", "next_attempt_at": NOW - HOUR}, {"status": "SYNCED"}, None],  # both
    4: [{"status": "RETRY", "next_attempt_at": NOW + HOUR}],  # retry not yet due
    5: [{"status": "IN_DOUBT", "next_attempt_at": NOW - 2 * HOUR}],  # a lookup (or poll) due
    6: [{"status": "SENDING", "lease_expires_at": NOW - 3 * HOUR}],  # its run's lease ran out
    7: [{"status": "SENDING", "lease_expires_at": NOW + HOUR}],  # a run holds it
    8: [{"status": "FAILED"}],  # parked
    9: [None],  # new, but not asked for below
}


def created(company: int, index: int) -> datetime:
    """When the source row `index` of `company` was created (naive UTC, as a source holds it):
    a company's first rows are its oldest, company 1's older than company 9's."""
    return (NOW - (10 - company) * MINUTE + index * timedelta(seconds=1)).replace(tzinfo=None)


def seed(url: str, ledger_url: str | None) -> None:
    """Seed the source with COMPANIES' customers and the ledger with their states."""
    rows, states = [], []
    for company, customers in COMPANIES.items():
        for index, state in enumerate(customers):
            row = make_customer(created_at=created(company, index)) | {"company_id": company}
            rows.append(row)
            if state is not None:
                states.append(state | {"company_id": company, "customer_id": str(row["id"])})
    settings: dict[str, Any] = {"source_company_column": "tenant"}
    if ledger_url:
        settings["ledger_database_url"] = ledger_url
    seed_source(url, rows, **settings)
    engine = make_engine(ledger_url or url)
    with engine.begin() as conn:
        conn.execute(ledger.insert(), [_ledger_row(s) for s in states])
    engine.dispose()


def _ledger_row(state: dict[str, Any]) -> dict[str, Any]:
    empty = {"next_attempt_at": None, "lease_expires_at": None}
    return empty | state | {"attempts": 1, "updated_at": NOW}


def due_now(url: str, ledger_url: str | None, companies: list[int] | None) -> list[Due]:
    settings = load_settings(
        source_database_url=url, source_company_column="tenant", ledger_database_url=ledger_url
    )
    engine = make_engine(ledger_url or url)
    source = make_engine(url) if ledger_url else None
    try:
        return due_work(
            engine, source_for(settings), NOW, source_engine=source, companies=companies
        )
    finally:
        engine.dispose()
        if source is not None:
            source.dispose()


def oldest(company: int, index: int = 0) -> datetime:
    return created(company, index).replace(tzinfo=UTC)


# Company 1: its oldest new row; 3: its retry, due before its new row was created; 5 and 6:
# when their lookup fell due and their lease ran out.
EXPECTED = [
    Due(1, new=2, oldest=oldest(1)),
    Due(3, new=1, waiting=1, oldest=NOW - HOUR),
    Due(5, waiting=1, oldest=NOW - 2 * HOUR),
    Due(6, waiting=1, oldest=NOW - 3 * HOUR),
]
NINE = Due(9, new=1, oldest=oldest(9))


@pytest.mark.parametrize("apart", [False, True], ids=["ledger-beside", "ledger-apart"])
def test_due_work_names_companies_with_new_rows_or_ledger_rows_due_and_no_other(
    tmp_path: Path, apart: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}" if apart else None
    seed(url, ledger_url)

    assert due_now(url, ledger_url, [1, 2, 3, 4, 5, 6, 7, 8]) == EXPECTED
    assert due_now(url, ledger_url, None) == [*EXPECTED, NINE]


@pytest.mark.postgres
@pytest.mark.parametrize("apart", [False, True], ids=["ledger-beside", "ledger-apart"])
def test_due_work_on_postgresql(pg_url: str, tmp_path: Path, apart: bool) -> None:
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}" if apart else None
    seed(pg_url, ledger_url)

    assert due_now(pg_url, ledger_url, None) == [*EXPECTED, NINE]


@pytest.mark.mariadb
@pytest.mark.parametrize("apart", [False, True], ids=["ledger-beside", "ledger-apart"])
def test_due_work_on_mariadb(mysql_url: str, tmp_path: Path, apart: bool) -> None:
    url = f"sqlite:///{tmp_path / 'source.db'}" if apart else mysql_url
    ledger_url = mysql_url if apart else None  # apart: pairs looked up by an IN list
    seed(url, ledger_url)

    assert due_now(url, ledger_url, None) == [*EXPECTED, NINE]


@pytest.mark.parametrize("apart", [False, True], ids=["ledger-beside", "ledger-apart"])
def test_a_key_too_long_for_the_ledger_is_no_work_due(tmp_path: Path, apart: bool) -> None:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}" if apart else None
    sample = source_table(company_column="tenant")
    text_keyed = sa.Table(
        "customers",
        sa.MetaData(),
        *(sa.Column(c.name, sa.Text() if c.key == "id" else c.type, key=c.key) for c in sample.c),
    )
    engine = make_engine(url)
    text_keyed.create(engine)
    keys = {1: "C-1", 2: "x" * KEY_MAX, 3: "y" * (KEY_MAX + 1)}  # 3's: runs skip it
    with engine.begin() as conn:
        conn.execute(text_keyed.insert(), [{"id": k, "company_id": c} for c, k in keys.items()])
    engine.dispose()
    book = make_engine(ledger_url or url)
    upgrade_ledger(book)
    book.dispose()

    assert due_now(url, ledger_url, None) == [Due(1, new=1), Due(2, new=1)]


def test_a_page_of_pairs_is_anti_joined_on_the_ledger_s_primary_key_in_sqlite(
    tmp_path: Path,
) -> None:
    from rootfi_sync.ledger.due import _missing_query

    url = f"sqlite:///{tmp_path / 'ledger.db'}"
    seed(f"sqlite:///{tmp_path / 'source.db'}", url)
    found = _missing_query("sqlite")
    assert found is not None
    query, encode = found
    engine = make_engine(url)
    with engine.connect() as conn:
        text = str(query.compile(conn)).replace(f"{LEDGER_SCHEMA}.", "")
        params = tuple(encode([(1, "1")]).values())  # one: the page, as JSON
        plan = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + text, params).all()
    engine.dispose()
    steps = " | ".join(str(step[-1]) for step in plan)
    assert "sqlite_autoindex_rootfi_customer_sync" in steps and "SCAN rootfi" not in steps, steps


def test_due_work_reads_the_source_through_its_company_index(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    seed(url, None)
    engine = make_engine(url)
    with engine.connect() as conn:
        plan = conn.execute(sa.text("EXPLAIN QUERY PLAN " + _compiled(conn))).all()
    engine.dispose()
    steps = [str(step[-1]) for step in plan]
    [customers] = [s for s in steps if s.startswith(("SCAN customers", "SEARCH customers"))]
    [book] = [s for s in steps if s.startswith(("SCAN rootfi", "SEARCH rootfi"))]
    assert "INDEX ix_customers_tenant" in customers, steps  # the company column's index
    assert "sqlite_autoindex_rootfi_customer_sync" in book, steps  # the ledger's primary key


def _compiled(conn: sa.Connection) -> str:
    from rootfi_sync.ledger.due import _new_rows

    settings = load_settings(source_database_url="sqlite://", source_company_column="tenant")
    query = _new_rows(source_for(settings), None)
    text = str(query.compile(conn, compile_kwargs={"literal_binds": True}))
    return text.replace(f"{LEDGER_SCHEMA}.", "")  # what the engine's schema map does


@pytest.mark.parametrize("apart", [False, True], ids=["ledger-beside", "ledger-apart"])
def test_a_created_at_that_is_no_timestamp_leaves_a_company_s_oldest_work_unknown(
    tmp_path: Path, apart: bool
) -> None:
    url = f"sqlite:///{tmp_path / 'source.db'}"
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}" if apart else None
    seed_source(url, [], source_company_column="tenant", ledger_database_url=ledger_url)
    engine = make_engine(url)
    with engine.begin() as conn:  # as another program may have written them (SQLite: text)
        conn.exec_driver_sql(
            "INSERT INTO customers (id, name, tenant, created_at) VALUES (?, 'x', ?, ?)",
            [(1, 1, "not a time"), (2, 2, "not a time"), (3, 2, "2026-01-02 03:04:05")],
        )
    engine.dispose()

    assert due_now(url, ledger_url, None) == [
        Due(1, new=1, oldest=None),  # unknown: the fan-out takes it as waiting longest
        Due(2, new=2, oldest=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ]
