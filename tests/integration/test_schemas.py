"""Schemas and views: `SOURCE_TABLE=schema.table`, a view as the source, LEDGER_SCHEMA, and
the ledger's migrations out of a user's own Alembic autogenerate."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from rootfi_sandbox import SandboxServer

from flows.sync_customers import sync_customers
from rootfi_sync.ledger.db import create_sample, init_db, make_engine, sample_for
from rootfi_sync.ledger.tables import LEDGER_TABLE, ledger
from rootfi_sync.settings import SOURCE_COLUMNS, load_settings
from tests.factories import make_customer
from tests.integration.conftest import COMPANY
from tests.mariadb import MariaDBServer

OURS = {LEDGER_TABLE, "rootfi_sync_alembic_version"}


def tables_in(engine: sa.Engine, schema: str | None = None) -> set[str]:
    return set(sa.inspect(engine).get_table_names(schema=schema))


def fill(url: str, rows: list[dict[str, Any]], **settings: Any) -> None:
    """Create the sample table the settings name at `url` and insert `rows`."""
    loaded = load_settings(source_database_url=url, **settings)
    create_sample(loaded)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sample_for(loaded).insert(), rows)
    engine.dispose()


def execute(url: str, sql: str) -> None:
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text(sql))
    engine.dispose()


@pytest.mark.postgres
@pytest.mark.usefixtures("prefect_server")
def test_syncs_from_a_view_in_a_schema_with_the_ledger_in_a_schema_of_its_own(
    pg_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer() for _ in range(6)]
    rows[0]["status"] = "hidden"
    execute(pg_url, "CREATE SCHEMA crm")
    fill(pg_url, rows, source_table="crm.customers", source_columns={"id": "client_no"})
    # A view has no primary key: its key column is named in SOURCE_COLUMNS.
    others = ", ".join(SOURCE_COLUMNS[1:])
    execute(
        pg_url,
        f"CREATE VIEW crm.to_sync AS SELECT client_no AS customer_no, {others} "
        "FROM crm.customers WHERE status IS DISTINCT FROM 'hidden'",
    )
    configure(
        pg_url,
        source_table="crm.to_sync",
        source_columns='{"id": "customer_no"}',
        ledger_schema="sync",
        rootfi_batch_size=2,
    )
    init_db(load_settings())

    first = sync_customers()
    second = sync_customers()

    assert (first["synced"], second["picked"]) == (5, 0)
    engine = make_engine(pg_url, ledger_schema="sync")
    assert tables_in(engine, "sync") >= OURS
    assert not OURS & (tables_in(engine) | tables_in(engine, "crm"))
    with engine.connect() as conn:
        synced = conn.execute(sa.select(ledger.c.customer_id, ledger.c.status)).all()
    engine.dispose()
    assert sorted(synced) == sorted((str(r["id"]), "SYNCED") for r in rows[1:])
    assert len(sandbox.admin.customers(COMPANY)) == 5


@pytest.mark.postgres
def test_the_ledger_goes_to_the_source_tables_schema_on_postgresql(pg_url: str) -> None:
    execute(pg_url, "CREATE SCHEMA crm")
    settings = load_settings(source_database_url=pg_url, source_table="crm.customers")
    create_sample(settings)

    init_db(settings)

    engine = make_engine(pg_url)
    assert OURS | {"customers"} == tables_in(engine, "crm")
    assert not OURS & tables_in(engine)
    engine.dispose()


@pytest.fixture
def other_database(mariadb_server: MariaDBServer) -> Iterator[str]:
    """A second database on the MariaDB server: where the source table lives."""
    name = f"crm_{uuid.uuid4().hex[:8]}"
    conn = mariadb_server.connect()
    try:
        conn.cursor().execute(f"CREATE DATABASE {name}")
        yield name
    finally:
        conn.cursor().execute(f"DROP DATABASE IF EXISTS {name}")
        conn.close()


@pytest.mark.mariadb
@pytest.mark.usefixtures("prefect_server")
def test_reads_a_table_of_another_mariadb_database_as_schema_table(
    mysql_url: str, other_database: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer() for _ in range(4)]
    fill(mysql_url, rows, source_table=f"{other_database}.customers")
    configure(mysql_url, source_table=f"{other_database}.customers")
    init_db(load_settings())

    assert sync_customers()["synced"] == 4
    engine = make_engine(mysql_url)
    assert tables_in(engine) >= OURS  # the ledger: in the URL's database
    assert not OURS & tables_in(engine, other_database)
    engine.dispose()


def test_a_users_autogenerate_leaves_the_ledger_alone_with_the_documented_hook(
    sqlite_url: str,
) -> None:
    settings = load_settings(source_database_url=sqlite_url)
    create_sample(settings)
    init_db(settings)
    theirs = sa.MetaData()
    sa.Table("customers", theirs, autoload_with=make_engine(sqlite_url))

    engine = make_engine(sqlite_url)
    with engine.connect() as conn:
        plain = compare_metadata(MigrationContext.configure(conn), theirs)
        hooked = compare_metadata(
            MigrationContext.configure(conn, opts={"include_name": include_name}), theirs
        )
    engine.dispose()

    assert {diff[1].name for diff in plain if diff[0] == "remove_table"} == OURS
    assert hooked == []


def include_name(name: str | None, type_: str, parent_names: dict[str, str | None]) -> bool:
    """The hook docs/your-database.md shows for a user's env.py
    (`context.configure(include_name=...)`)."""
    if type_ == "table":
        return name not in {"rootfi_customer_sync", "rootfi_sync_alembic_version"}
    return True
