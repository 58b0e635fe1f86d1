"""The ledger in a database of its own (LEDGER_DATABASE_URL): the source is only read.

A SQLite source opened read-only stays byte for byte the same through whole syncs; a DuckDB
file can be a source; and finding what is new by looking each page of source keys up in the
ledger finds what the same-database join finds.
"""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from rootfi_sandbox import SandboxServer

from flows.sync_customers import sync_customers
from rootfi_sync.ledger import Ledger, pending
from rootfi_sync.ledger.db import init_db, make_engine, source_for, upgrade_ledger
from rootfi_sync.ledger.tables import ledger, source_table
from rootfi_sync.settings import SOURCE_COLUMNS, Settings, load_settings
from rootfi_sync.source.rows import source_hash
from tests.factories import make_customer
from tests.integration.conftest import COMPANY
from tests.integration.helpers import assert_exactly_once, seed_source

TEXT = set(SOURCE_COLUMNS[1:-2])


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def journal_mode(path: Path) -> str:
    with sqlite3.connect(path) as conn:
        mode: str = conn.execute("PRAGMA journal_mode").fetchone()[0]
    conn.close()
    return mode


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize(
    "ledger_db",
    [
        pytest.param("sqlite", id="sqlite"),
        pytest.param("pg_url", marks=pytest.mark.postgres, id="postgresql"),
        pytest.param("mysql_url", marks=pytest.mark.mariadb, id="mariadb"),
    ],
)
def test_a_read_only_sqlite_source_stays_byte_for_byte_the_same_through_whole_syncs(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    sandbox: SandboxServer,
    configure: Any,
    monkeypatch: pytest.MonkeyPatch,
    ledger_db: str,
) -> None:
    source = tmp_path / "shop.db"
    if ledger_db == "sqlite":
        ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    else:
        ledger_url = str(request.getfixturevalue(ledger_db))
    rows = [make_customer() for _ in range(11)]
    seed_source(f"sqlite:///{source}", rows, ledger_database_url=ledger_url)
    before = digest(source)
    # Scan pages of 4 keys, batches of 3: pages of keys already synced are read past.
    monkeypatch.setattr(pending, "SCAN_PAGE", 4)
    configure(
        f"sqlite:///file:{source}?mode=ro&uri=true",
        ledger_database_url=ledger_url,
        rootfi_batch_size=3,
    )

    first = sync_customers(limit=5)
    second = sync_customers()
    third = sync_customers()

    assert (first["synced"], second["synced"], third["picked"]) == (5, 6, 0)
    assert_exactly_once(sandbox, ledger_url, rows)
    assert digest(source) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("shop")) == ["shop.db"]
    assert journal_mode(source) == "delete"
    if ledger_db == "sqlite":
        assert journal_mode(tmp_path / "ledger.db") == "wal"  # rootfi-sync's own database


@pytest.mark.usefixtures("prefect_server")
def test_a_run_leaves_the_journal_mode_of_the_users_sqlite_file_alone(
    sqlite_url: str, tmp_path: Path, sandbox: SandboxServer, configure: Any
) -> None:
    seed_source(sqlite_url, [make_customer() for _ in range(3)])  # the ledger in that file too
    configure(sqlite_url)

    assert sync_customers()["synced"] == 3
    assert journal_mode(tmp_path / "source.db") == "delete"


@pytest.mark.usefixtures("prefect_server")
def test_syncs_from_a_duckdb_file_with_the_ledger_in_sqlite(
    tmp_path: Path, sandbox: SandboxServer, configure: Any
) -> None:
    pytest.importorskip("duckdb_engine")
    path, ledger_url = tmp_path / "warehouse.duckdb", f"sqlite:///{tmp_path / 'ledger.db'}"
    rows = [make_customer() for _ in range(7)]
    writer = sa.create_engine(f"duckdb:///{path}")
    table = source_table("customers", schema="crm")
    columns = ", ".join(f"{c.name} VARCHAR" for c in table.columns if c.key in TEXT)
    with writer.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA crm"))
        conn.execute(
            sa.text(
                f"CREATE TABLE crm.customers (id BIGINT PRIMARY KEY, {columns}, "
                "created_at TIMESTAMP, updated_at TIMESTAMP)"
            )
        )
        conn.execute(table.insert(), rows)
    writer.dispose()
    configure(
        f"duckdb:///{path}",
        ledger_database_url=ledger_url,
        source_table="crm.customers",
        rootfi_batch_size=3,
    )
    init_db(load_settings())  # checks the source (read-only), migrates the ledger

    first = sync_customers()
    second = sync_customers()

    assert (first["synced"], second["picked"]) == (7, 0)
    assert_exactly_once(sandbox, ledger_url, rows)


@pytest.mark.parametrize("json_each", [True, False], ids=["keys-as-json", "in-list"])
def test_looking_keys_up_in_another_database_finds_what_the_join_finds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, json_each: bool
) -> None:
    """Every kind of ledger row, met by each way of finding what a run may take."""
    monkeypatch.setattr(pending, "SCAN_PAGE", 3)
    if not json_each:  # the IN list that MySQL/MariaDB ledgers are asked with
        monkeypatch.setattr(pending, "sqlite_has_json_each", lambda: False)
    rows = [make_customer(id=n) for n in range(1, 11)]
    url, apart = f"sqlite:///{tmp_path / 'one.db'}", f"sqlite:///{tmp_path / 'apart.db'}"
    seed_source(url, rows)
    upgrade_ledger(make_engine(apart))
    settings = load_settings(source_database_url=url)
    now = datetime.now(UTC)
    states = [
        ledger_row(1, "SYNCED", now),
        ledger_row(2, "CLAIMED", now, lease_expires_at=now + timedelta(hours=1)),  # held
        ledger_row(3, "CLAIMED", now, lease_expires_at=now - timedelta(hours=1)),  # run out
        ledger_row(4, "RETRY", now, next_attempt_at=now + timedelta(hours=1)),  # not yet
        ledger_row(5, "RETRY", now, next_attempt_at=now - timedelta(hours=1)),  # due
        ledger_row(6, "FAILED", now, source_hash="changed since"),
        ledger_row(7, "SYNCED", now),
        ledger_row(8, "IN_DOUBT", now),
        ledger_row(9, "FAILED", now, source_hash=hash_of(url, settings, 9)),  # parked
    ]
    for where in (url, apart):
        engine = make_engine(where)
        with engine.begin() as conn:
            conn.execute(ledger.insert(), states)
        engine.dispose()
    joined = Ledger(make_engine(url), source_for(settings), COMPANY, "a")
    looked_up = Ledger(
        make_engine(apart), source_for(settings), COMPANY, "b", source_engine=make_engine(url)
    )

    for limit in (2, 100):
        assert pages(joined, now, limit) == pages(looked_up, now, limit) == [3, 5, 6, 8, 10]
    for book in (joined, looked_up):  # one page holds them all: it says that none follows
        assert book.candidates(now, limit=100).ended
        assert not book.candidates(now, limit=2).ended
    assert joined.count_pending(now) == looked_up.count_pending(now) == 6
    for book in (joined, looked_up):  # ids asked for, as the command line gives them
        page = book.candidates(now, only=["3", 5, 7, 11, "C-1"])
        assert [c.customer_id for c in page.candidates] == ["3", "5"]
        assert page.unknown_ids == ["C-1"]
    assert looked_up.count_pending(now, only=[1, 3, 11]) == 1


def ledger_row(customer: int, status: str, now: datetime, **values: Any) -> dict[str, Any]:
    """A ledger row; every row names the same columns (an executemany takes the first's)."""
    optional = dict.fromkeys(("lease_expires_at", "next_attempt_at", "source_hash"))
    row = {"customer_id": str(customer), "company_id": COMPANY, "status": status}
    return row | {"updated_at": now} | optional | values


def hash_of(url: str, settings: Settings, customer: int) -> str:
    """The fingerprint of a source row as a run reads it."""
    table = source_for(settings)
    engine = make_engine(url)
    with engine.connect() as conn:
        row = conn.execute(sa.select(table).where(table.c.id == customer)).mappings().one()
    engine.dispose()
    return source_hash(dict(row))


def pages(book: Ledger, now: datetime, limit: int) -> list[int]:
    """The ids of every candidate, page after page, as a run reads them (to the page that
    says it ended: the next would have been empty)."""
    found, after = [], None
    while True:
        page = book.candidates(now, after=after, limit=limit)
        if page.last_id is None:
            return found
        found += [int(c.customer_id) for c in page.candidates]
        after = page.last_id
        if page.ended:
            assert book.candidates(now, after=after, limit=limit).last_id is None
            return found
