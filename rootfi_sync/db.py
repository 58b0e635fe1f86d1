"""Engines, the ledger's migrations and the sample source table."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from rootfi_sync.settings import Settings
from rootfi_sync.tables import as_read, source_table

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str) -> sa.Engine:
    """Return an engine; SQLite gets a busy timeout so concurrent runs wait for the lock."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(url, connect_args={"timeout": 60})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return sa.create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(dbapi_conn: object, _record: object) -> None:
    cursor = dbapi_conn.cursor()  # type: ignore[attr-defined]
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=60000")
    cursor.close()


def upgrade_ledger(engine: sa.Engine) -> None:
    """Apply the ledger's Alembic migrations up to head (idempotent)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


def source_for(settings: Settings) -> sa.Table:
    """Return the source table as the settings describe it and a run reads it (raw values)."""
    return as_read(sample_for(settings))


def sample_for(settings: Settings) -> sa.Table:
    """Return the source table with column types, to create the sample table and fill it."""
    return source_table(
        settings.source_table, settings.source_columns, settings.source_company_column
    )


def init_db(settings: Settings) -> bool:
    """Migrate the ledger; create the sample source table when absent. True if created."""
    engine = make_engine(settings.source_database_url)
    try:
        upgrade_ledger(engine)
        table = sample_for(settings)
        created = not sa.inspect(engine).has_table(table.name)
        table.metadata.create_all(engine, checkfirst=True)
        return created
    finally:
        engine.dispose()
