"""Lookups anchored to the first unresolved attempt, matched on what was sent; one record
per customer.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from rootfi_sync.ledger.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TABLE = "rootfi_customer_sync"


def upgrade() -> None:
    with op.batch_alter_table(TABLE, schema=op.get_context().version_table_schema) as batch:
        batch.add_column(sa.Column("doubt_since", UTCDateTime))
        batch.add_column(sa.Column("sent_keys", sa.Text))
        batch.drop_index("ix_rootfi_customer_sync_company_rootfi_id")
        batch.create_index(
            "ux_rootfi_customer_sync_company_rootfi_id", ["company_id", "rootfi_id"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table(TABLE, schema=op.get_context().version_table_schema) as batch:
        batch.drop_index("ux_rootfi_customer_sync_company_rootfi_id")
        batch.create_index("ix_rootfi_customer_sync_company_rootfi_id", ["company_id", "rootfi_id"])
        batch.drop_column("sent_keys")
        batch.drop_column("doubt_since")
