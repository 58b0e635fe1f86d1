"""Exact keys on MySQL/MariaDB: the ledger in the server's NO PAD binary collation, where
'C-1 ' and 'C-1' are two customers (utf8mb4_bin, which 0001 used, is PAD SPACE); and the
write mode of each customer's last request (`attempt_mode`), which sets its settle time.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rootfi_sync.ledger.tables import MYSQL_DIALECTS, exact_collation

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

TABLE = "rootfi_customer_sync"


def _table() -> str:
    schema = op.get_context().version_table_schema
    return f"`{schema}`.{TABLE}" if schema else TABLE


def upgrade() -> None:
    conn = op.get_bind()
    if conn.dialect.name in MYSQL_DIALECTS:
        # MySQL commits each ALTER on its own: the conversion (which may be run again) goes
        # first, so a failure in either step leaves a ledger this migration can be re-run on.
        # A NO PAD collation tells more keys apart than utf8mb4_bin, never fewer: no existing
        # pair of keys can collide in the conversion.
        collation = exact_collation(conn)
        if collation is not None:
            op.execute(
                f"ALTER TABLE {_table()} CONVERT TO CHARACTER SET utf8mb4 COLLATE {collation}"
            )
    with op.batch_alter_table(TABLE, schema=op.get_context().version_table_schema) as batch:
        batch.add_column(sa.Column("attempt_mode", sa.String(8)))


def downgrade() -> None:
    if op.get_bind().dialect.name in MYSQL_DIALECTS:
        op.execute(f"ALTER TABLE {_table()} CONVERT TO CHARACTER SET utf8mb4 COLLATE utf8mb4_bin")
    with op.batch_alter_table(TABLE, schema=op.get_context().version_table_schema) as batch:
        batch.drop_column("attempt_mode")
