"""Seeding: sample customers (`rootfi_sandbox.customers`, faker) into a source table.

They go only into the demo's database (a SQLite file beside `DEMO_MARKER`), or into a
database whose URL is given again as consent (`seed --yes-into URL`): a user's own database
gets no fake customers, and no sample table, by mistake.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import sqlalchemy as sa

from rootfi_sync.errors import SeedRefused
from rootfi_sync.ledger.db import (
    create_sample,
    init_db,
    safe_url,
    sample_for,
    source_engine,
    sqlite_path,
)
from rootfi_sync.settings import Settings

DEMO_MARKER = ".rootfi-sync-demo"
"""A file the demo leaves beside its database: the one database `seed` fills unasked."""


def insert_customers(engine: sa.Engine, table: sa.Table, rows: Iterator[dict[str, Any]]) -> int:
    """Insert rows in chunks; return how many were inserted."""
    total, chunk = 0, []
    with engine.begin() as conn:
        for row in rows:
            chunk.append(row)
            if len(chunk) == 1000:
                conn.execute(table.insert(), chunk)
                total, chunk = total + len(chunk), []
        if chunk:
            conn.execute(table.insert(), chunk)
            total += len(chunk)
    return total


def is_demo_database(url: str) -> bool:
    """Whether `url` is a SQLite file the demo made (its folder holds `DEMO_MARKER`)."""
    path = sqlite_path(url)
    return path is not None and (path.resolve().parent / DEMO_MARKER).is_file()


def seed_into(settings: Settings, rows: Iterable[dict[str, Any]], *, yes_into: str | None) -> int:
    """Create the sample table if absent, migrate the ledger, insert `rows`; return how many.

    Raises SeedRefused unless the source is the demo's database or `yes_into` is its URL.
    """
    target = settings.source_database_url
    if yes_into != target and not is_demo_database(target):
        raise SeedRefused(
            f"seed adds fake customers (and creates the sample table) in SOURCE_DATABASE_URL, "
            f"{safe_url(target)}, which is not the demo's database; if that is what you want, "
            "give its URL again: --yes-into '<SOURCE_DATABASE_URL>'"
        )
    create_sample(settings)
    init_db(settings)
    engine = source_engine(settings)
    try:
        return insert_customers(engine, sample_for(settings), iter(rows))
    finally:
        engine.dispose()
