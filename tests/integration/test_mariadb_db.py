"""The ledger, its migration and the sample source table on a real MariaDB 10.11 server."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.config import Config
from alembic.script import ScriptDirectory
from typer.testing import CliRunner

from rootfi_sync.cli.commands import app
from rootfi_sync.ledger import Ledger
from rootfi_sync.ledger.db import MIGRATIONS, create_sample, init_db, make_engine, upgrade_ledger
from rootfi_sync.ledger.tables import LEDGER_TABLE, ledger, source_table
from rootfi_sync.settings import SOURCE_COLUMNS, load_settings
from tests.factories import make_customer

pytestmark = pytest.mark.mariadb

TIMESTAMPS = ("synced_at", "updated_at", "attempted_at", "next_attempt_at", "lease_expires_at")


@pytest.fixture
def engine(mysql_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(mysql_url)
    try:
        yield engine
    finally:
        engine.dispose()


def columns(engine: sa.Engine, table: str) -> dict[str, Any]:
    query = sa.text(
        "SELECT column_name, column_type, datetime_precision, collation_name "
        "FROM information_schema.columns WHERE table_schema = database() AND table_name = :t"
    )
    with engine.connect() as conn:
        return {row[0]: row for row in conn.execute(query, {"t": table})}


def test_init_db_creates_the_ledger_beside_the_sample_source_table(
    mysql_url: str, engine: sa.Engine
) -> None:
    settings = load_settings(source_database_url=mysql_url)

    assert create_sample(settings) is True
    init_db(settings)
    init_db(settings)  # idempotent: migrated already

    tables = set(sa.inspect(engine).get_table_names())
    assert {LEDGER_TABLE, "customers", "rootfi_sync_alembic_version"} <= tables
    with engine.connect() as conn:
        options = conn.execute(
            sa.text(
                "SELECT engine, table_collation, row_format FROM information_schema.tables "
                "WHERE table_schema = database() AND table_name = :t"
            ),
            {"t": LEDGER_TABLE},
        ).one()
        version = conn.execute(sa.text("SELECT version_num FROM rootfi_sync_alembic_version"))
        assert version.scalar_one() == head_revision()
    assert tuple(options) == ("InnoDB", "utf8mb4_nopad_bin", "Dynamic")  # NO PAD: 0003
    keys = sa.inspect(engine).get_pk_constraint(LEDGER_TABLE)["constrained_columns"]
    assert keys == ["customer_id", "company_id"]
    ledger_columns = columns(engine, LEDGER_TABLE)
    assert ledger_columns["customer_id"][1:] == ("varchar(255)", None, "utf8mb4_nopad_bin")
    assert ledger_columns["company_id"][1] == "bigint(20)"
    for name in TIMESTAMPS:
        assert ledger_columns[name][1:3] == ("datetime(6)", 6), name
    source_columns = columns(engine, "customers")
    for name in ("created_at", "updated_at"):
        assert source_columns[name][1:3] == ("datetime(6)", 6), name


def test_the_ledger_keeps_microseconds_and_tells_keys_apart_exactly(
    mysql_url: str, engine: sa.Engine
) -> None:
    upgrade_ledger(engine)
    when = datetime(2025, 3, 4, 5, 6, 7, 123456, tzinfo=UTC)
    rows = [
        {
            "customer_id": cid,
            "company_id": 1089,
            "status": "CLAIMED",
            "updated_at": when,
            "synced_at": when + timedelta(microseconds=1),
            "lease_expires_at": when,
        }
        for cid in ("abc", "ABC", "ä-😀")  # case and 4-byte UTF-8: three distinct keys
    ]
    with engine.begin() as conn:
        conn.execute(ledger.insert(), rows)
    with engine.connect() as conn:
        stored = {r.customer_id: r for r in conn.execute(sa.select(ledger))}
        later = conn.execute(
            sa.select(sa.func.count()).where(ledger.c.synced_at > when)
        ).scalar_one()

    assert set(stored) == {"abc", "ABC", "ä-😀"}
    assert stored["abc"].updated_at == when  # aware UTC, microseconds kept
    assert stored["abc"].synced_at == when + timedelta(microseconds=1)
    assert later == 3  # compared in the database at microsecond precision


def test_the_sample_source_table_keeps_microseconds(mysql_url: str, engine: sa.Engine) -> None:
    create_sample(load_settings(source_database_url=mysql_url))
    row = make_customer()
    with engine.begin() as conn:
        conn.execute(source_table().insert(), [row])
    with engine.connect() as conn:
        stored = conn.execute(sa.select(source_table())).mappings().one()
    assert row["created_at"].microsecond != 0
    assert (stored["created_at"], stored["updated_at"]) == (row["created_at"], row["updated_at"])


def test_engines_read_committed_in_utf8mb4(mysql_url: str, engine: sa.Engine) -> None:
    with engine.connect() as conn:
        charset = conn.execute(sa.text("SELECT @@character_set_client")).scalar_one()
        assert conn.get_isolation_level() == "READ COMMITTED"
    assert charset == "utf8mb4"
    other = make_engine(mysql_url.replace("charset=utf8mb4", "charset=utf8mb3"))
    try:
        with other.connect() as conn:  # the URL's own choice is kept
            assert conn.execute(sa.text("SELECT @@character_set_client")).scalar_one() == "utf8mb3"
    finally:
        other.dispose()


def test_pending_customers_join_a_text_keyed_source_of_another_collation(
    mysql_url: str, engine: sa.Engine
) -> None:
    """The source's id (utf8mb4_unicode_ci here) against the ledger's (utf8mb4_nopad_bin)."""
    upgrade_ledger(engine)
    with engine.begin() as conn:
        text_columns = ", ".join(f"{name} TEXT" for name in SOURCE_COLUMNS[1:-2])
        conn.execute(
            sa.text(
                f"CREATE TABLE clients (id VARCHAR(64) PRIMARY KEY, {text_columns}, "
                "created_at DATETIME, updated_at DATETIME) "
                "COLLATE utf8mb4_unicode_ci"
            )
        )
        conn.execute(
            sa.text(
                "INSERT INTO clients (id, name, email) VALUES "
                "('c-1', 'One', 'one@example.com'), ('c-2', 'Two', 'two@x.io'), "
                "('c-3', 'Three', 'three@x.io')"
            )
        )
        conn.execute(
            ledger.insert(),
            [
                {
                    "customer_id": "c-2",
                    "company_id": 7,
                    "status": "SYNCED",
                    "updated_at": datetime.now(UTC),
                },
                {
                    "customer_id": "C-3",
                    "company_id": 7,
                    "status": "SYNCED",  # another customer
                    "updated_at": datetime.now(UTC),
                },
            ],
        )
    source = source_table("clients")
    book = Ledger(engine, source, company_id=7, owner="test")

    page = book.candidates(datetime.now(UTC), limit=10)

    assert [c.customer_id for c in page.candidates] == ["c-1", "c-3"]
    assert book.count_pending(datetime.now(UTC)) == 2


def test_the_init_db_command_on_mariadb(
    mysql_url: str, engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SOURCE_DATABASE_URL", mysql_url)
    create_sample(load_settings())

    result = CliRunner().invoke(app, ["init-db"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert "ledger ready" in result.output
    assert {LEDGER_TABLE, "customers"} <= set(sa.inspect(engine).get_table_names())


def head_revision() -> str:
    """The newest migration of the ledger."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    head = ScriptDirectory.from_config(config).get_current_head()
    assert head is not None
    return head
