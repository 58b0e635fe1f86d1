"""Alembic environment for the ledger; run through `rootfi_sync.ledger.db.upgrade_ledger`.

The ledger's migrations keep their own version table, `rootfi_sync_alembic_version`, in the
ledger's schema (LEDGER_SCHEMA; None: the database's default), beside the ledger table: a
user's own Alembic, with its `alembic_version`, never sees them as its own. The revisions
read that schema as `op.get_context().version_table_schema`.
"""

from __future__ import annotations

from alembic import context

from rootfi_sync.ledger.tables import VERSION_TABLE, ledger_metadata

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=ledger_metadata,
    version_table=VERSION_TABLE,
    version_table_schema=context.config.attributes.get("ledger_schema"),
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
