"""The sync ledger: who may send which customer, what was sent, and what came of it.

A customer moves through these states for a company (one ledger row each):

    (no row) ─claim─► CLAIMED ─intent─► SENDING ─answer─► SYNCED | FAILED
                                           │
                                           └─no answer─► IN_DOUBT  (looked up before any resend)
    RETRY: failed for a passing reason and never processed; comes back at `next_attempt_at`.
    When each may be tried again is decided in `rootfi_sync.rootfi.decisions`.

The package, by what each module owns:

    reading.py     which customers a run may take (`Candidate`, `Page`, `LedgerReader`; with
                   `orphans`, those whose source row is gone), and the counts and failures
                   `rootfi-sync status` shows
    writing.py     `Ledger`: a run's claims, lease renewals, intents and outcomes, all fenced
                   by the lease; `redrive` for parked customers
    statements.py  the SQL shared by both: which rows a run may take, the database's clock,
                   INSERT IGNORE per dialect, the outcome UPDATE
    due.py         which companies have work due now (the fan-out's one query)
    pending.py     `reading`'s candidates when the ledger is in a database of its own: the
                   source's keys a page at a time, looked up in the ledger
    lease.py       `LeaseKeeper`: the thread renewing a run's leases while it sends
    tables.py      the tables: the user's source table (as declared, as read) and the ledger
    db.py          engines, the ledger's migrations (migrations/, Alembic), the source's check

Import the public names from here: `from rootfi_sync.ledger import Ledger, Candidate`.
"""

from __future__ import annotations

from rootfi_sync.ledger.reading import (
    KEY_MAX,
    Candidate,
    LedgerReader,
    Page,
    latest_failures,
    needing_a_look,
    status_counts,
)
from rootfi_sync.ledger.statements import db_now, utcnow
from rootfi_sync.ledger.writing import Ledger, redrive
from rootfi_sync.outcomes import Outcome, Status

__all__ = [
    "KEY_MAX",
    "Candidate",
    "Ledger",
    "LedgerReader",
    "Outcome",
    "Page",
    "Status",
    "db_now",
    "latest_failures",
    "needing_a_look",
    "redrive",
    "status_counts",
    "utcnow",
]
