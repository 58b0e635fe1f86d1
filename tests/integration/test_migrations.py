"""The ledger's migrations build the table `rootfi_sync/tables.py` declares, and nothing else:
Alembic's autogenerate finds no difference after an upgrade to head of a fresh database."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from rootfi_sync.db import make_engine, upgrade_ledger
from rootfi_sync.tables import VERSION_TABLE, ledger


def declared() -> sa.MetaData:
    """The ledger as declared, in the database's default schema (where LEDGER_SCHEMA's
    placeholder goes when no schema is set)."""
    metadata = sa.MetaData()
    ledger.to_metadata(metadata, schema=None)
    return metadata


def not_the_version_table(name: str | None, type_: str, _parents: dict[str, str | None]) -> bool:
    return not (type_ == "table" and name == VERSION_TABLE)


def differences_after_upgrade(url: str) -> list[Any]:
    """Upgrade the ledger at `url` to head; return what autogenerate would change then."""
    engine = make_engine(url)
    try:
        upgrade_ledger(engine)
        with engine.connect() as conn:
            opts = {
                "compare_type": True,
                "compare_server_default": True,
                "include_name": not_the_version_table,
            }
            return list(compare_metadata(MigrationContext.configure(conn, opts=opts), declared()))
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
