"""The database tables: the user's source `customers` table and the sync ledger."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Dialect

from rootfi_sync.settings import SOURCE_COLUMNS

LEDGER_TABLE = "rootfi_customer_sync"


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stores naive UTC (portable across SQLite and PostgreSQL); returns aware UTC."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None else None


ledger_metadata = sa.MetaData()

ledger = sa.Table(
    LEDGER_TABLE,
    ledger_metadata,
    sa.Column("customer_id", sa.String(255), primary_key=True),
    sa.Column("company_id", sa.BigInteger, primary_key=True),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("rootfi_id", sa.String(64)),
    sa.Column("platform_id", sa.String(255)),
    sa.Column("sync_id", sa.String(255)),
    sa.Column("payload_hash", sa.String(64)),
    sa.Column("source_hash", sa.String(64)),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text),
    sa.Column("synced_at", UTCDateTime),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("attempted_at", UTCDateTime),
    sa.Column("next_attempt_at", UTCDateTime),
    sa.Column("lease_owner", sa.String(64)),
    sa.Column("lease_expires_at", UTCDateTime),
    # Since the first attempt that is not resolved yet: where a lookup starts (0002).
    sa.Column("doubt_since", UTCDateTime),
    # The match keys of every payload sent since then: what a lookup looks for (0002).
    sa.Column("sent_keys", sa.Text),
    sa.Index("ix_rootfi_customer_sync_company_status", "company_id", "status"),
    # One RootFi record belongs to one customer at most (0002).
    sa.Index("ux_rootfi_customer_sync_company_rootfi_id", "company_id", "rootfi_id", unique=True),
)


def source_table(
    name: str = "customers",
    columns: Mapping[str, str] | None = None,
    company_column: str | None = None,
) -> sa.Table:
    """Return the source table; `columns` maps our column names to the user's own.

    With `company_column`, one table holds the customers of many RootFi companies: that
    column (available as `.c.company_id`) says whose each customer is.
    """
    names = {col: (columns or {}).get(col, col) for col in SOURCE_COLUMNS}
    text = {"name": 255, "email": 320, "phone": 64, "currency": 16, "status": 32}
    cols: list[sa.Column[Any]] = [
        sa.Column(names["id"], sa.Integer, primary_key=True, key="id"),
        *(sa.Column(names[c], sa.String(n), key=c) for c, n in text.items()),
        *(
            sa.Column(names[c], sa.String(255), key=c)
            for c in ("street", "locality", "city", "state", "pincode", "country")
        ),
        sa.Column(names["created_at"], sa.DateTime, key="created_at"),
        sa.Column(names["updated_at"], sa.DateTime, key="updated_at"),
    ]
    if company_column:
        cols.append(sa.Column(company_column, sa.BigInteger, key="company_id", index=True))
    return sa.Table(name, sa.MetaData(), *cols)
