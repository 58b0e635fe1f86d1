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
    parsed = sa.make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 60})
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if backend in ("mysql", "mariadb"):
        return sa.create_engine(
            url,
            pool_pre_ping=True,
            # Below the server's wait_timeout (8 h by default), after which it drops idle
            # connections; pre-ping would notice too, this just avoids the failed ping.
            pool_recycle=3600,
            # InnoDB's default, REPEATABLE READ, reads from a snapshot taken at a
            # transaction's first read and, for UPDATE and INSERT, locks the gaps between
            # the rows it scans as well as the rows: concurrent runs claiming neighbouring
            # customers of the ledger would wait on (and deadlock over) each other's gap
            # locks. READ COMMITTED locks only the rows a statement changes (a conditional
            # UPDATE skips locked rows that do not match), and every statement sees the
            # latest committed rows, which is PostgreSQL's default and what the ledger's
            # claim and fencing statements are written for. (It needs the binary log off or
            # in ROW or MIXED format, the defaults of MySQL 8 and MariaDB.)
            isolation_level="READ COMMITTED",
            # utf8mb4: the full Unicode range (MySQL's "utf8" is 3-byte utf8mb3), unless the
            # URL chooses (?charset=...).
            connect_args={} if "charset" in parsed.query else {"charset": "utf8mb4"},
        )
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
