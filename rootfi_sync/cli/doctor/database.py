"""Doctor checks of the databases: the source table, its columns, the ledger's migrations.

Read-only: the source is checked as `init-db` checks it (`db.source_for`, `db.missing_columns`:
queries that read no row), on an engine of `db.make_engine` that cannot write: a SQLite file is
opened read-only (immutable when no other connection has it open, so not even a -wal or -shm
file is left behind), a DuckDB file read-only as always.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import sqlalchemy as sa

from rootfi_sync.cli.doctor import Check, skipped
from rootfi_sync.ledger import db_now
from rootfi_sync.ledger.db import make_engine, missing_columns, safe_url, source_for, sqlite_path
from rootfi_sync.ledger.due import due_work
from rootfi_sync.ledger.tables import LEDGER_TABLE, VERSION_TABLE
from rootfi_sync.settings import Settings

INIT_DB = "run `rootfi-sync init-db` (applies the ledger's migrations; creates nothing else "
INIT_DB += "when your table exists)"


def read_only_engine(url: str, ledger_schema: str | None = None) -> sa.Engine:
    """Return an engine that cannot write; FileNotFoundError for a missing SQLite file."""
    path = sqlite_path(url)  # `file:` URIs too
    if path is None:  # another database (DuckDB: read-only), or SQLite in memory
        return make_engine(url, ledger_schema=ledger_schema)
    path = path.resolve()
    if not path.is_file():
        raise FileNotFoundError(path)
    mode = "mode=ro" if path.with_name(f"{path.name}-wal").exists() else "immutable=1"
    return make_engine(f"sqlite:///file:{path}?{mode}&uri=true", ledger_schema=ledger_schema)


def due_companies(settings: Settings) -> list[int]:
    """Return the companies with work due now (`ledger.due.due_work`, the fan-out's query),
    read on read-only engines. Raises FileNotFoundError or a DBAPIError when a database cannot
    be read."""
    schema = settings.ledger_schema_name
    book = read_only_engine(settings.ledger_url, schema)
    reader = None
    try:
        if settings.ledger_apart:
            reader = read_only_engine(settings.source_database_url, schema)
        with book.connect() as conn:
            now = db_now(conn)
        due = due_work(book, source_for(settings), now, source_engine=reader)
    finally:
        book.dispose()
        if reader is not None:
            reader.dispose()
    return [work.company_id for work in due]


def check_database(settings: Settings) -> list[Check]:
    """Check the source table and its mapped columns, then the ledger where it lives
    (LEDGER_DATABASE_URL, or the source's database)."""

    def source(engine: sa.Engine, shown: str) -> list[Check]:
        return check_source(engine, settings, shown)

    def ledger(engine: sa.Engine, shown: str) -> list[Check]:
        return [check_ledger(engine, shown, settings.ledger_schema_name)]

    def both(engine: sa.Engine, shown: str) -> list[Check]:
        return source(engine, shown) + ledger(engine, shown)

    names = ("source table", "source columns")
    schema = settings.ledger_schema_name
    if not settings.ledger_apart:
        setting = "SOURCE_DATABASE_URL"
        return _with_database(settings.ledger_url, setting, schema, (*names, "ledger"), both)
    return _with_database(
        settings.source_database_url, "SOURCE_DATABASE_URL", schema, names, source
    ) + _with_database(settings.ledger_url, "LEDGER_DATABASE_URL", schema, ("ledger",), ledger)


def _with_database(
    url: str,
    setting: str,
    ledger_schema: str | None,
    names: tuple[str, ...],
    checks: Callable[[sa.Engine, str], list[Check]],
) -> list[Check]:
    """Run `checks` on a read-only engine on `url`; fail the first of `names` if it cannot
    be opened, and skip the others."""
    shown = safe_url(url)
    try:
        engine = read_only_engine(url, ledger_schema)
    except FileNotFoundError as exc:
        fix = f"point {setting} at your database"
        if setting == "LEDGER_DATABASE_URL":  # init-db creates a ledger's file, not a source's
            fix += " (or run `rootfi-sync init-db`)"
        return [
            Check(names[0], "fail", f"no SQLite file {exc}", fix),
            *skipped(names[1:], "no database"),
        ]
    try:
        return checks(engine, shown)
    except sa.exc.DBAPIError as exc:
        detail = f"cannot read {shown}: {type(exc.orig).__name__}: {exc.orig}".strip()
        fix = f"check {setting} (host, credentials, database) and that it is up"
        return [Check(names[0], "fail", detail, fix), *skipped(names[1:], "no database")]
    finally:
        engine.dispose()


def check_source(engine: sa.Engine, settings: Settings, shown: str) -> list[Check]:
    """The source table exists (a view will do) and every mapped column can be read: what
    `init-db` checks (`db.check_source`), each failure with its own fix."""
    table = source_for(settings)
    missing = missing_columns(engine, table)
    if missing is None:
        detail = f"no table or view {settings.source_table!r} in {shown}"
        fix = "set SOURCE_TABLE to your customers table (schema.table allowed)"
        return [
            Check("source table", "fail", detail, fix),
            *skipped(("source columns",), "no table"),
        ]
    if missing:
        found = Check("source table", "ok", f"{settings.source_table} found in {shown}")
        return [found, _missing_columns(engine, table, settings, missing)]
    detail = f"{settings.source_table} in {shown}: found and readable"
    return [
        Check("source table", "ok", detail),
        Check("source columns", "ok", f"all {len(table.columns)} mapped columns exist"),
    ]


def _missing_columns(
    engine: sa.Engine, table: sa.Table, settings: Settings, missing: list[str]
) -> Check:
    """The failed check of the columns `missing` (theirs), with the setting that maps them."""
    ours = {c.name: c.key for c in table.columns if c.key != "company_id"}
    mapped = {ours[name]: name for name in missing if name in ours}
    has = ", ".join(_columns_of(engine, table))
    has = f" (its columns: {has})" if has else ""
    if mapped:
        named = ", ".join(f"{t} (for {o})" if o != t else t for o, t in mapped.items())
        example = json.dumps({**settings.source_columns, **dict.fromkeys(mapped, "<yours>")})
        detail = f"{settings.source_table} has no column {named}{has}"
        return Check("source columns", "fail", detail, f"map yours: SOURCE_COLUMNS='{example}'")
    company = settings.source_company_column
    detail = f"{settings.source_table} has no column {company} (SOURCE_COMPANY_COLUMN){has}"
    fix = "set SOURCE_COMPANY_COLUMN to the column of each customer's company, or unset it"
    return Check("source columns", "fail", detail, fix)


def _columns_of(engine: sa.Engine, table: sa.Table) -> list[str]:
    """The names of the columns `table` has (up to 20), from a query that reads no row; none
    if it fails (they only help the detail)."""
    query = sa.select(sa.text("*")).select_from(sa.table(table.name, schema=table.schema))
    try:
        with engine.connect() as conn:
            return sorted(conn.execute(query.limit(0)).keys())[:20]
    except sa.exc.DBAPIError:
        return []


def check_ledger(engine: sa.Engine, shown: str, schema: str | None = None) -> Check:
    """The ledger table exists and is migrated to the newest revision (Alembic head)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from rootfi_sync.ledger.db import MIGRATIONS

    heads = set(ScriptDirectory(str(MIGRATIONS)).get_heads())
    opts = {"version_table": VERSION_TABLE, "version_table_schema": schema}
    with engine.connect() as conn:
        current = set(MigrationContext.configure(conn, opts=opts).get_current_heads())
        has_ledger = sa.inspect(conn).has_table(LEDGER_TABLE, schema=schema)
    if not current or not has_ledger:
        return Check("ledger", "fail", f"no ledger table {LEDGER_TABLE} in {shown}", INIT_DB)
    if current != heads:
        at, head = ", ".join(sorted(current)), ", ".join(sorted(heads))
        detail = f"{LEDGER_TABLE} is at migration {at}; the code needs {head}"
        return Check("ledger", "fail", detail, INIT_DB)
    at = ", ".join(sorted(heads))
    return Check("ledger", "ok", f"{LEDGER_TABLE} in {shown} at migration {at} (head)")
