"""Ledger keys compare exactly on every ledger database (issue 16, point 8): ids that differ
only by trailing spaces or by case are different customers, each claimed, recorded and synced
once. MariaDB's `utf8mb4_bin` is PAD SPACE ('C-1 ' = 'C-1'): the ledger uses a NO PAD binary
collation there."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from rootfi_sync.ledger import Ledger, Outcome, Status
from rootfi_sync.ledger.db import MIGRATIONS, make_engine, upgrade_ledger
from rootfi_sync.ledger.tables import LEDGER_TABLE, as_read, ledger, source_table
from tests.factories import make_customer
from tests.integration.conftest import COMPANY
from tests.integration.helpers import create_source, ledger_rows

KEYS = ["C-1", "C-1 ", "C-1  ", "c-1", " C-1"]

DATABASES = [
    "sqlite",
    pytest.param("postgres", marks=pytest.mark.postgres),
    pytest.param("mariadb", marks=pytest.mark.mariadb),
]


@pytest.fixture(params=DATABASES)
def url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """A fresh database of each kind: a SQLite file, PostgreSQL, MariaDB."""
    if request.param == "sqlite":
        return sqlite_url
    name = "pg_url" if request.param == "postgres" else "mysql_url"
    return str(request.getfixturevalue(name))


def text_key(url: str) -> sa.types.TypeEngine[Any]:
    """A text key the source itself keeps exact (on MariaDB its own NO PAD binary collation:
    the source's keys are the user's, the ledger's are ours)."""
    if sa.make_url(url).get_backend_name() in ("mysql", "mariadb"):
        return sa.String(64, collation="utf8mb4_nopad_bin")
    return sa.Text()


@pytest.fixture
def engine(url: str) -> Iterator[sa.Engine]:
    rows = [make_customer(id=key) for key in KEYS]
    create_source(url, rows, id=text_key(url))
    engine = make_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def test_keys_that_differ_by_trailing_spaces_or_case_are_distinct_customers(
    url: str, engine: sa.Engine
) -> None:
    run = Ledger(engine, as_read(source_table()), COMPANY, "run")

    won = run.claim(run.candidates(run.now(), limit=10).candidates, timedelta(minutes=5))
    held = run.record_intent({c.customer_id: ("hash", ()) for c in won})
    synced = [Outcome(key, Status.SYNCED, rootfi_id=str(n)) for n, key in enumerate(KEYS)]
    written = run.record_outcomes(synced, max_attempts=5, requeue=timedelta(0), attempts={})

    assert sorted(c.customer_id for c in won) == sorted(KEYS)
    assert held == set(KEYS)
    assert {o.customer_id for o in written} == set(KEYS)
    stored = {cid: (r.status, r.rootfi_id) for cid, r in ledger_rows(url).items()}
    assert stored == {key: ("SYNCED", str(n)) for n, key in enumerate(KEYS)}
    assert run.candidates(run.now(), limit=10).candidates == []  # nothing left, nothing lost


@pytest.mark.mariadb
def test_an_existing_mariadb_ledger_is_migrated_to_exact_keys(mysql_url: str) -> None:
    engine = make_engine(mysql_url)
    row = {"company_id": COMPANY, "status": "SYNCED", "updated_at": datetime.now(UTC)}
    try:
        upgrade_to(engine, "0002")  # a ledger made before exact keys, holding a customer
        with engine.begin() as conn:
            conn.execute(ledger.insert(), [row | {"customer_id": "C-1", "rootfi_id": "1"}])

        upgrade_ledger(engine)

        with engine.begin() as conn:
            conn.execute(ledger.insert(), [row | {"customer_id": "C-1 ", "rootfi_id": "2"}])
            collations = conn.execute(
                sa.text(
                    "SELECT column_name, collation_name FROM information_schema.columns WHERE "
                    "table_schema = database() AND table_name = :t AND collation_name IS NOT NULL"
                ),
                {"t": LEDGER_TABLE},
            ).all()
        assert {name: c for name, c in collations}["customer_id"] == "utf8mb4_nopad_bin"
        assert {c for _, c in collations} == {"utf8mb4_nopad_bin"}
        assert {cid: r.rootfi_id for cid, r in ledger_rows(mysql_url).items()} == {
            "C-1": "1",
            "C-1 ": "2",
        }
    finally:
        engine.dispose()


def upgrade_to(engine: sa.Engine, revision: str) -> None:
    """Apply the ledger's migrations up to `revision` only."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
