"""Re-driving parked customers: which FAILED ones are sent again, by id."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from rootfi_sync.ledger import Status, redrive
from rootfi_sync.ledger.tables import ledger


def redrive_failed(
    engine: sa.Engine, company_id: int, customer_ids: Sequence[str] | None
) -> list[str]:
    """Make the company's FAILED customers (these, or all) eligible again; return their ids.

    The ids let a run that follows send exactly these customers, not every pending one.
    """
    c = ledger.c
    query = sa.select(c.customer_id).where(c.company_id == company_id, c.status == Status.FAILED)
    if customer_ids is not None:
        query = query.where(c.customer_id.in_([str(i) for i in customer_ids]))
    with engine.connect() as conn:
        failed = sorted(conn.execute(query).scalars())
    if failed:
        redrive(engine, company_id, failed)
    return failed
