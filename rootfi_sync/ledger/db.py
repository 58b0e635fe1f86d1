"""Engines, the ledger's migrations, the check of the source table and the sample table.

The ledger lives in LEDGER_DATABASE_URL (default: the source's database); with a database of
its own, rootfi-sync only reads the source. Nothing here changes the user's database but the
ledger: a SQLite source keeps its journal mode, and `init-db` creates no source table (only
the demo and `seed --yes-into` create the sample one).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from rootfi_sync.errors import SourceTableError
from rootfi_sync.ledger.tables import LEDGER_SCHEMA, MYSQL_DIALECTS, as_read, source_table
from rootfi_sync.settings import Settings

MIGRATIONS = Path(__file__).parent / "migrations"


def make_engine(url: str, *, ledger_schema: str | None = None, wal: bool = False) -> sa.Engine:
    """Return an engine that finds the ledger table in `ledger_schema` (None: the default).

    SQLite gets a busy timeout so that concurrent runs wait for the lock, and keeps the
    file's own journal mode unless `wal` (a ledger database of rootfi-sync's own, where WAL
    lets runs read while another writes). A DuckDB file is opened read-only: it can only be
    a source.
    """
    options: dict[str, Any] = {
        "execution_options": {"schema_translate_map": {LEDGER_SCHEMA: ledger_schema}}
    }
    backend = sa.make_url(url).get_backend_name()
    if backend == "sqlite":
        engine = sa.create_engine(url, connect_args={"timeout": 60}, **options)
        sa.event.listen(engine, "connect", _wal_pragmas if wal else _sqlite_pragmas)
        return engine
    if backend in MYSQL_DIALECTS:
        return sa.create_engine(url, **_mysql_options(sa.make_url(url)), **options)
    if backend == "duckdb":
        return sa.create_engine(url, connect_args={"read_only": True}, **options)
    return sa.create_engine(url, pool_pre_ping=True, **options)


def _mysql_options(url: sa.URL) -> dict[str, Any]:
    return {
        "pool_pre_ping": True,
        # Below the server's wait_timeout (8 h by default), after which it drops idle
        # connections; pre-ping would notice too, this just avoids the failed ping.
        "pool_recycle": 3600,
        # InnoDB's default, REPEATABLE READ, reads from a snapshot taken at a transaction's
        # first read and, for UPDATE and INSERT, locks the gaps between the rows it scans as
        # well as the rows: concurrent runs claiming neighbouring customers of the ledger would
        # wait on (and deadlock over) each other's gap locks. READ COMMITTED locks only the
        # rows a statement changes (a conditional UPDATE skips locked rows that do not match),
        # and every statement sees the latest committed rows, which is PostgreSQL's default
        # and what the ledger's claim and fencing statements are written for. (It needs the
        # binary log off or in ROW or MIXED format, the defaults of MySQL 8 and MariaDB.)
        "isolation_level": "READ COMMITTED",
        # utf8mb4: the full Unicode range (MySQL's "utf8" is 3-byte utf8mb3), unless the
        # URL chooses (?charset=...).
        "connect_args": {} if "charset" in url.query else {"charset": "utf8mb4"},
    }


def _sqlite_pragmas(dbapi_conn: Any, _record: object) -> None:
    # busy_timeout only: the journal mode is a property of the file, which is the user's.
    dbapi_conn.execute("PRAGMA busy_timeout=60000")


def _wal_pragmas(dbapi_conn: Any, record: object) -> None:
    dbapi_conn.execute("PRAGMA journal_mode=WAL")
    _sqlite_pragmas(dbapi_conn, record)


def ledger_engine(settings: Settings) -> sa.Engine:
    """Return an engine on the ledger's database (LEDGER_DATABASE_URL, or the source's)."""
    return make_engine(
        settings.ledger_url, ledger_schema=settings.ledger_schema_name, wal=settings.ledger_apart
    )


def source_engine(settings: Settings) -> sa.Engine:
    """Return an engine on the source's database (the ledger's too, unless it has its own)."""
    return make_engine(settings.source_database_url, ledger_schema=settings.ledger_schema_name)


def upgrade_ledger(engine: sa.Engine, schema: str | None = None) -> None:
    """Apply the ledger's Alembic migrations up to head (idempotent), in `schema` if given.

    On PostgreSQL a missing schema is created; on MySQL/MariaDB (a database) it must exist.
    """
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if schema is not None and connection.dialect.name == "postgresql":
            connection.execute(sa.schema.CreateSchema(schema, if_not_exists=True))
        config.attributes["connection"] = connection
        config.attributes["ledger_schema"] = schema
        command.upgrade(config, "head")


def source_for(settings: Settings) -> sa.Table:
    """Return the source table as the settings describe it and a run reads it (raw values)."""
    return as_read(sample_for(settings))


def sample_for(settings: Settings) -> sa.Table:
    """Return the source table with column types, to create the sample table and fill it."""
    return source_table(
        settings.source_name,
        settings.source_columns,
        settings.source_company_column,
        settings.source_schema,
    )


def init_db(settings: Settings) -> None:
    """Check the source table (read only), then migrate the ledger in its own database.

    Raises SourceTableError, naming the table, the database and the columns expected, when
    the source has no such table or view, or lacks some of its columns.
    """
    check_source(settings)
    engine = ledger_engine(settings)
    try:
        upgrade_ledger(engine, settings.ledger_schema_name)
    finally:
        engine.dispose()


def check_source(settings: Settings) -> None:
    """Raise SourceTableError unless the source has the table (or view) and its columns."""
    path = sqlite_path(settings.source_database_url)
    if path is not None and not path.exists():  # opening it would create it, empty
        raise SourceTableError(f"source: no database file {path} (SOURCE_DATABASE_URL)")
    table = source_for(settings)
    engine = source_engine(settings)
    try:
        missing = missing_columns(engine, table)
    finally:
        engine.dispose()
    if missing != []:
        raise SourceTableError(_missing_message(table, missing, settings.source_database_url))


def _missing_message(table: sa.Table, missing: list[str] | None, url: str) -> str:
    name = f"{table.schema}.{table.name}" if table.schema else table.name
    where = f"in {safe_url(url)}"
    expected = ", ".join(c.name for c in table.columns)
    if missing is None:
        found = f"no table or view {name!r} {where}"
    else:
        found = f"the table {name!r} {where} has no column(s) {', '.join(missing)}"
    return (
        f"source: {found}. rootfi-sync reads a table or view (SOURCE_TABLE) with the columns "
        f"{expected} (key: {table.c.id.name}; SOURCE_COLUMNS maps ours to yours). init-db "
        "creates no source table: point SOURCE_TABLE and SOURCE_COLUMNS at yours (a view "
        "will do), or try rootfi-sync with `rootfi-sync demo`."
    )


def sqlite_path(url: str) -> Path | None:
    """Return the file of a SQLite database URL (None: another database, or in memory)."""
    parsed = sa.make_url(url)
    path = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or path in ("", ":memory:"):
        return None
    return Path(path.removeprefix("file:") if parsed.query.get("uri") else path)


def missing_columns(engine: sa.Engine, table: sa.Table) -> list[str] | None:
    """Return the names of `table`'s columns the database lacks; None if it has no such table.

    Asked with queries that read no row rather than by reflection, which not every dialect
    that can be a source implements (DuckDB's), and which sees a view like a table.
    """
    if not sa.inspect(engine).has_table(table.name, schema=table.schema):
        return None
    if _selects(engine, sa.select(*table.columns)):
        return []
    return [c.name for c in table.columns if not _selects(engine, sa.select(c))]


def _selects(engine: sa.Engine, query: sa.Select[Any]) -> bool:
    try:
        with engine.connect() as conn:
            conn.execute(query.limit(0)).all()
    except sa.exc.DBAPIError:
        return False
    return True


def create_sample(settings: Settings) -> bool:
    """Create the sample source table if absent (the demo's, or `seed --yes-into`'s).

    Returns whether it was created. Never called on a user's database without consent.
    """
    table = sample_for(settings)
    engine = source_engine(settings)
    try:
        created = not sa.inspect(engine).has_table(table.name, schema=table.schema)
        table.metadata.create_all(engine, checkfirst=True)
        return created
    finally:
        engine.dispose()


def safe_url(url: str) -> str:
    """Return a database URL as it may be shown: without its password."""
    return sa.make_url(url).render_as_string(hide_password=True)
