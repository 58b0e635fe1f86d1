"""Small helpers for integration tests: a seeded source database and ledger reads."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa

from rootfi_sync.db import init_db, make_engine
from rootfi_sync.settings import load_settings
from rootfi_sync.tables import ledger, source_table


def seed_source(url: str, rows: Iterable[dict[str, Any]], **settings: Any) -> None:
    """Create the ledger and the source table at `url` and insert `rows`."""
    init_db(load_settings(source_database_url=url, **settings))
    engine = make_engine(url)
    table = source_table(
        settings.get("source_table", "customers"),
        settings.get("source_columns"),
        settings.get("source_company_column"),
    )
    with engine.begin() as conn:
        conn.execute(table.insert(), list(rows))
    engine.dispose()


def ledger_rows(url: str) -> dict[str, Any]:
    """Return the ledger as customer_id -> row."""
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = {r.customer_id: r for r in conn.execute(sa.select(ledger))}
    engine.dispose()
    return rows
