"""Create the rootfi_customer_sync ledger.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rootfi_sync.ledger.tables import LEDGER_TABLE_OPTIONS, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    schema = op.get_context().version_table_schema  # LEDGER_SCHEMA (None: the default one)
    op.create_table(
        "rootfi_customer_sync",
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
        schema=schema,
        **LEDGER_TABLE_OPTIONS,  # MySQL/MariaDB only: InnoDB, utf8mb4
        mysql_collate="utf8mb4_bin",  # as 0001 made it; 0003 makes keys exact (NO PAD)
    )
    op.create_index(
        "ix_rootfi_customer_sync_company_status",
        "rootfi_customer_sync",
        ["company_id", "status"],
        schema=schema,
    )
    op.create_index(
        "ix_rootfi_customer_sync_company_rootfi_id",
        "rootfi_customer_sync",
        ["company_id", "rootfi_id"],
        schema=schema,
    )


def downgrade() -> None:
    op.drop_table("rootfi_customer_sync", schema=op.get_context().version_table_schema)
