"""The ledger's migrations build the table `rootfi_sync/ledger/tables.py` declares, and nothing
else: Alembic's autogenerate finds no difference after an upgrade to head of a fresh database."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from rootfi_sync.ledger.db import make_engine, upgrade_ledger
from rootfi_sync.ledger.tables import VERSION_TABLE, ledger


def declared(schema: str | None) -> sa.MetaData:
    """The ledger as declared, in `schema` (None: the database's default), where an engine
    puts LEDGER_SCHEMA's placeholder."""
    metadata = sa.MetaData()
    ledger.to_metadata(metadata, schema=schema)
    return metadata


def differences_after_upgrade(url: str, schema: str | None = None) -> list[Any]:
    """Upgrade the ledger at `url` (in `schema`) to head; return what autogenerate would
    change then."""

    def ours(name: str | None, type_: str, _parents: dict[str, str | None]) -> bool:
        if type_ == "schema":
            return name == schema
        return not (type_ == "table" and name == VERSION_TABLE)

    engine = make_engine(url, ledger_schema=schema)
    try:
        upgrade_ledger(engine, schema)
        with engine.connect() as conn:
            opts = {
                "compare_type": True,
                "compare_server_default": True,
                "include_schemas": schema is not None,
                "include_name": ours,
            }
            context = MigrationContext.configure(conn, opts=opts)
            return list(compare_metadata(context, declared(schema)))
    finally:
        engine.dispose()


@pytest.mark.parametrize(
    "database", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def test_the_migrations_build_the_ledger_table_as_declared(
    request: pytest.FixtureRequest, sqlite_url: str, database: str
) -> None:
    url = sqlite_url if database == "sqlite" else request.getfixturevalue("pg_url")

    assert differences_after_upgrade(url) == []


@pytest.mark.postgres
def test_the_migrations_build_the_ledger_table_as_declared_in_a_ledger_schema(pg_url: str) -> None:
    assert differences_after_upgrade(pg_url, "sync_ledger") == []
