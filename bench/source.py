"""Build a source database of N synthetic customers, fast (bulk inserts; never timed).

The rows come from `rootfi_sandbox.customers.fake_customers` (faker, ~5% bad rows on purpose), made
once per harness invocation for the largest N: the same seed gives the same prefix, so the
N=10,000 source is the first 10,000 rows of the N=100,000 one. Ids are 1..N.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from rootfi_sync.db import create_sample, init_db, make_engine
from rootfi_sync.ledger import Status, status_counts
from rootfi_sync.settings import SOURCE_COLUMNS, load_settings
from rootfi_sync.tables import ledger, source_table

CHUNK = 5000


def make_rows(count: int) -> list[dict[str, Any]]:
    """N source rows with ids 1..N; values cut to their column's length (see below)."""
    from rootfi_sandbox.customers import fake_customers

    limits = {c.key: c.type.length for c in source_table().columns if getattr(c.type, "length", 0)}
    rows = []
    for n, row in enumerate(fake_customers(count), start=1):
        # One of rootfi_sandbox.customers.BAD_ROWS is a 300-character name: SQLite stores it,
        # PostgreSQL refuses it (VARCHAR(255)). Both databases get the very same rows, so it
        # is cut to fit.
        for key, limit in limits.items():
            if isinstance(row.get(key), str) and len(row[key]) > limit:
                row[key] = row[key][:limit]
        rows.append({"id": n, **row})
    return rows


def seed(url: str, rows: list[dict[str, Any]]) -> None:
    """Create the source table, migrate the ledger and bulk-insert `rows` into the table."""
    settings = load_settings(source_database_url=url)
    create_sample(settings)
    init_db(settings)
    table = source_table()
    engine = make_engine(url)
    try:
        if engine.dialect.name == "postgresql":
            _copy_postgres(engine, table.name, rows)
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text(f"ANALYZE {table.name}"))
        else:
            with engine.begin() as conn:
                for start in range(0, len(rows), CHUNK):
                    conn.execute(table.insert(), rows[start : start + CHUNK])
        with engine.connect() as conn:
            have = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
        if have != len(rows):
            raise RuntimeError(f"seeded {have} rows, expected {len(rows)}")
    finally:
        engine.dispose()


def _copy_postgres(engine: sa.Engine, name: str, rows: list[dict[str, Any]]) -> None:
    columns = ", ".join(SOURCE_COLUMNS)
    raw = engine.raw_connection()
    try:
        with raw.cursor() as cur, cur.copy(f"COPY {name} ({columns}) FROM STDIN") as copy:  # type: ignore[attr-defined]
            for row in rows:
                copy.write_row([row[c] for c in SOURCE_COLUMNS])
        raw.commit()
    finally:
        raw.close()


def ledger_state(url: str, company_id: int) -> tuple[dict[str, int], list[str]]:
    """The company's ledger rows per state (`status_counts`), and its SYNCED rows' rootfi_ids
    (as strings; a SYNCED row without one gives "None")."""
    engine = make_engine(url)
    try:
        counts = status_counts(engine, company_id)
        query = sa.select(ledger.c.rootfi_id).where(
            ledger.c.company_id == company_id, ledger.c.status == Status.SYNCED
        )
        with engine.connect() as conn:
            return counts, [str(rootfi_id) for rootfi_id in conn.execute(query).scalars()]
    finally:
        engine.dispose()
