"""The database tables: the user's source `customers` table and the sync ledger.

The source table is declared twice: `source_table` with column types, to create the sample
table and fill it; `as_read` the same columns as a run reads them, each value as the
database holds it (SQLAlchemy parses nothing: a bad timestamp in SQLite is the transform's
to refuse, not a crash of the run) and the key of whatever type it has.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeEngine

from rootfi_sync.models import ADDRESS_FIELDS
from rootfi_sync.settings import SOURCE_COLUMNS

LEDGER_TABLE = "rootfi_customer_sync"
VERSION_TABLE = "rootfi_sync_alembic_version"  # the ledger's migrations; not the user's own
LEDGER_SCHEMA = "rootfi_sync_ledger_schema"
"""Where the ledger table says its schema is: a placeholder that every engine's
`schema_translate_map` turns into LEDGER_SCHEMA's value (None: the database's default).
The source table never has it, so a join of the two in one database translates only this."""
MYSQL_DIALECTS = ("mysql", "mariadb")  # mysql+pymysql:// (either server) and mariadb+pymysql://

# MySQL and MariaDB keep whole seconds in a plain DATETIME (rounding the rest away): ask for
# microseconds, as SQLite and PostgreSQL keep them.
DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), *MYSQL_DIALECTS)

# The ledger on MySQL/MariaDB: InnoDB whatever the server's default engine (claims need its
# transactions and row locks; MyISAM's 1000-byte keys could not even hold the primary key),
# utf8mb4 whatever the database's default, and a binary collation, so that keys compare
# exactly as on SQLite and PostgreSQL ('abc' and 'ABC' are two customers, not one key
# conflict) and a join to a source column of any utf8mb4 collation is no "illegal mix of
# collations" (a _bin side wins). The primary key (VARCHAR(255) utf8mb4 + BIGINT) is
# 1020 + 8 bytes, within InnoDB's 3072-byte limit for DYNAMIC rows (the default since
# MySQL 5.7 and MariaDB 10.2; COMPACT rows would allow 767 bytes, so it is asked for).
# 0001 created it utf8mb4_bin, which is PAD SPACE ('C-1 ' = 'C-1'); 0003 converts it to the
# server's NO PAD binary collation (`exact_collation`), so trailing spaces count too.
LEDGER_TABLE_OPTIONS: dict[str, Any] = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_row_format": "DYNAMIC",
}
EXACT_COLLATIONS = ("utf8mb4_nopad_bin", "utf8mb4_0900_bin")
"""NO PAD binary collations of utf8mb4: MariaDB 10.2+'s, then MySQL 8's."""


def exact_collation(conn: sa.Connection) -> str | None:
    """Return the NO PAD binary utf8mb4 collation this MySQL/MariaDB server has, if any
    (MySQL 5.7 has none: its ledger keeps utf8mb4_bin, where trailing spaces do not count)."""
    found = set(
        conn.execute(sa.text("SELECT collation_name FROM information_schema.collations")).scalars()
    )
    return next((name for name in EXACT_COLLATIONS if name in found), None)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Stores naive UTC (portable across SQLite, PostgreSQL and MySQL); returns aware UTC.

    On MySQL and MariaDB the column is DATETIME(6), which keeps microseconds.
    """

    impl = sa.DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in MYSQL_DIALECTS:
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(sa.DateTime())

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
    # The last moment a request for it may have left (database clock): when the database last
    # vouched for its lease before a POST, recorded with the outcome (or, recorded in doubt
    # with no such time, the outcome's); a lost owner's lease end when another run takes over.
    sa.Column("attempted_at", UTCDateTime),
    # The write mode of that request (single, batch): its settle time (0003).
    sa.Column("attempt_mode", sa.String(8)),
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
    schema=LEDGER_SCHEMA,
    **LEDGER_TABLE_OPTIONS,
)


class Raw(sa.types.TypeDecorator[Any]):
    """A value as the database holds it: no result processing, and no cast on a parameter.

    Without a cast, a key read from the table (int, str, UUID) can be handed back in a
    comparison whatever the column's type; the driver adapts it as it adapted it on reading.
    """

    impl = sa.types.NullType
    cache_ok = True


_KEY = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def source_table(
    name: str = "customers",
    columns: Mapping[str, str] | None = None,
    company_column: str | None = None,
    schema: str | None = None,
) -> sa.Table:
    """Return the source table with its column types; `columns` maps our names to the user's.

    With `company_column`, one table holds the customers of many RootFi companies: that
    column (available as `.c.company_id`) says whose each customer is. `schema` is its
    PostgreSQL schema (on MySQL/MariaDB its database), if not the default one.
    """
    names = {col: (columns or {}).get(col, col) for col in SOURCE_COLUMNS}
    text = {"name": 255, "email": 320, "phone": 64, "currency": 16, "status": 32}
    cols: list[sa.Column[Any]] = [
        # INTEGER in SQLite, where only an INTEGER PRIMARY KEY numbers new rows by itself.
        sa.Column(names["id"], _KEY, primary_key=True, key="id"),
        *(sa.Column(names[c], sa.String(n), key=c) for c, n in text.items()),
        *(sa.Column(names[c], sa.String(255), key=c) for c in ADDRESS_FIELDS),
        sa.Column(names["created_at"], DATETIME, key="created_at"),
        sa.Column(names["updated_at"], DATETIME, key="updated_at"),
    ]
    if company_column:
        cols.append(sa.Column(company_column, sa.BigInteger, key="company_id", index=True))
    # Options only for when init-db creates the sample table; a user's own table keeps its own.
    return sa.Table(
        name, sa.MetaData(), *cols, schema=schema, mysql_engine="InnoDB", mysql_charset="utf8mb4"
    )


def as_read(table: sa.Table) -> sa.Table:
    """Return the source table as a run reads it: every source column `Raw`.

    The company column keeps its type: it is compared with the run's company id.
    """
    columns = [
        sa.Column(c.name, c.type if c.key == "company_id" else Raw(), key=c.key)
        for c in table.columns
    ]
    return sa.Table(table.name, sa.MetaData(), *columns, schema=table.schema)
