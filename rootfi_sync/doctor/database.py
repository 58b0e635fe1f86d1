"""Doctor checks of the databases: the source table, its columns, the ledger's migrations.

Read-only: inspection and `SELECT` only; a SQLite file is opened read-only (immutable when
no other connection has it open, so not even a -wal or -shm file is left behind).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url

from rootfi_sync.doctor import Check, skipped
from rootfi_sync.settings import SOURCE_COLUMNS, Settings
from rootfi_sync.tables import LEDGER_TABLE, VERSION_TABLE

INIT_DB = "run `rootfi-sync init-db` (applies the ledger's migrations; creates nothing else "
INIT_DB += "when your table exists)"


def read_only_engine(url: str) -> sa.Engine:
    """Return an engine that cannot write; FileNotFoundError for a missing SQLite file."""
    parsed = make_url(url)
    database = parsed.database or ""
    if parsed.get_backend_name() != "sqlite" or database in ("", ":memory:"):
        return sa.create_engine(url)
    path = Path(database).resolve()
    if not path.is_file():
        raise FileNotFoundError(path)
    mode = "mode=ro" if Path(f"{path}-wal").exists() else "immutable=1"
    return sa.create_engine(f"sqlite:///file:{path}?{mode}&uri=true")


def check_database(settings: Settings) -> list[Check]:
    """Check the source table and its mapped columns, then the ledger where it lives
    (LEDGER_DATABASE_URL, or the source's database)."""

    def source(conn: Connection, shown: str) -> list[Check]:
        return check_source(conn, settings, shown)

    def ledger(conn: Connection, shown: str) -> list[Check]:
        return [check_ledger(conn, shown, settings.ledger_schema_name)]

    def both(conn: Connection, shown: str) -> list[Check]:
        return source(conn, shown) + ledger(conn, shown)

    names = ("source table", "source columns")
    if not settings.ledger_apart:
        return _with_database(settings.ledger_url, "SOURCE_DATABASE_URL", (*names, "ledger"), both)
    return _with_database(
        settings.source_database_url, "SOURCE_DATABASE_URL", names, source
    ) + _with_database(settings.ledger_url, "LEDGER_DATABASE_URL", ("ledger",), ledger)


def _with_database(
    url: str,
    setting: str,
    names: tuple[str, ...],
    checks: Callable[[Connection, str], list[Check]],
) -> list[Check]:
    """Run `checks` on a read-only connection to `url`; fail the first of `names` if it
    cannot be opened, and skip the others."""
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        engine = read_only_engine(url)
    except FileNotFoundError as exc:
        fix = f"point {setting} at your database (or run `rootfi-sync init-db`)"
        return [
            Check(names[0], "fail", f"no SQLite file {exc}", fix),
            *skipped(names[1:], "no database"),
        ]
    try:
        with engine.connect() as conn:
            return checks(conn, shown)
    except sa.exc.DBAPIError as exc:
        detail = f"cannot read {shown}: {type(exc.orig).__name__}: {exc.orig}".strip()
        fix = f"check {setting} (host, credentials, database) and that it is up"
        return [Check(names[0], "fail", detail, fix), *skipped(names[1:], "no database")]
    finally:
        engine.dispose()


def check_source(conn: Connection, settings: Settings, shown: str) -> list[Check]:
    """The source table exists (a view will do), has every mapped column and can be read."""
    schema, _, name = settings.source_table.rpartition(".")
    names = ("source table", "source columns")
    inspector = sa.inspect(conn)
    found = inspector.get_table_names(schema or None) + inspector.get_view_names(schema or None)
    if name not in found:
        detail = f"no table or view {settings.source_table!r} in {shown} (it has: "
        detail += f"{', '.join(sorted(found)[:8]) or 'nothing'})"
        fix = "set SOURCE_TABLE to your customers table (schema.table allowed)"
        return [Check("source table", "fail", detail, fix), *skipped(names[1:], "no table")]
    wanted = {ours: settings.source_columns.get(ours, ours) for ours in SOURCE_COLUMNS}
    present = {c["name"] for c in inspector.get_columns(name, schema or None)}
    columns = _check_columns(settings, wanted, present)
    if not columns.ok:
        return [Check("source table", "ok", f"{settings.source_table} found in {shown}"), columns]
    selected: list[sa.ColumnClause[object]] = [sa.column(c) for c in wanted.values()]
    conn.execute(sa.select(*selected).select_from(sa.table(name, schema=schema or None)).limit(1))
    detail = f"{settings.source_table} in {shown}: found and readable"
    return [Check("source table", "ok", detail), columns]


def _check_columns(settings: Settings, wanted: dict[str, str], present: set[str]) -> Check:
    missing = {ours: theirs for ours, theirs in wanted.items() if theirs not in present}
    company = settings.source_company_column
    if missing:
        named = ", ".join(f"{t} (for {o})" if o != t else t for o, t in missing.items())
        example = json.dumps({**settings.source_columns, **dict.fromkeys(missing, "<yours>")})
        has = ", ".join(sorted(present)[:20])
        detail = f"{settings.source_table} has no column {named} (its columns: {has})"
        return Check("source columns", "fail", detail, f"map yours: SOURCE_COLUMNS='{example}'")
    if company and company not in present:
        detail = f"{settings.source_table} has no column {company} (SOURCE_COMPANY_COLUMN)"
        fix = "set SOURCE_COMPANY_COLUMN to the column of each customer's company, or unset it"
        return Check("source columns", "fail", detail, fix)
    return Check("source columns", "ok", f"all {len(wanted) + bool(company)} mapped columns exist")


def check_ledger(conn: Connection, shown: str, schema: str | None = None) -> Check:
    """The ledger table exists and is migrated to the newest revision (Alembic head)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    from rootfi_sync.db import MIGRATIONS

    heads = set(ScriptDirectory(str(MIGRATIONS)).get_heads())
    opts = {"version_table": VERSION_TABLE, "version_table_schema": schema}
    current = set(MigrationContext.configure(conn, opts=opts).get_current_heads())
    if not current or not sa.inspect(conn).has_table(LEDGER_TABLE, schema=schema):
        return Check("ledger", "fail", f"no ledger table {LEDGER_TABLE} in {shown}", INIT_DB)
    if current != heads:
        at, head = ", ".join(sorted(current)), ", ".join(sorted(heads))
        detail = f"{LEDGER_TABLE} is at migration {at}; the code needs {head}"
        return Check("ledger", "fail", detail, INIT_DB)
    at = ", ".join(sorted(heads))
    return Check("ledger", "ok", f"{LEDGER_TABLE} in {shown} at migration {at} (head)")
