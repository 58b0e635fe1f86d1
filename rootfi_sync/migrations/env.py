"""Alembic environment for the ledger; run through `rootfi_sync.db.upgrade`."""

from __future__ import annotations

from alembic import context

from rootfi_sync.tables import ledger_metadata

VERSION_TABLE = "rootfi_sync_alembic_version"  # leaves the user's own alembic_version alone

connection = context.config.attributes["connection"]
context.configure(
    connection=connection,
    target_metadata=ledger_metadata,
    version_table=VERSION_TABLE,
    render_as_batch=connection.dialect.name == "sqlite",
)
with context.begin_transaction():
    context.run_migrations()
