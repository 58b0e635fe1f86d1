"""Customers whose source row was deleted while they were in doubt.

Nothing can be sent for such a customer (there is no row to build a payload from), but a
request sent before may have created it. So a run still takes it from the ledger
(`LedgerReader.orphans`), under a lease like any other, and looks it up in RootFi through the
signatures of what was sent (`sent_keys`), as `rootfi_sync.rootfi.lookup` does for any customer in
doubt: found, it is SYNCED (adopted); not found while what was sent may still land, it stays
IN_DOUBT; not found once that settle time is over, it is parked FAILED (`DELETED`), never
resent. What an ended async write proves (created, refused) is final as for any customer.

One whose source row is gone and for whom nothing was ever sent (no `attempted_at`) has
nothing to look up: its ledger row is dropped (`Ledger.forget_unsent`), so that it is
neither due work nor reported in doubt forever; a row coming back under its key is new.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from rootfi_sync.ledger import Candidate, Outcome, Status
from rootfi_sync.outcomes import SOURCE_DELETED
from rootfi_sync.rootfi.lookup import Lookup

DELETED = f"{SOURCE_DELETED} while in doubt; not found in RootFi"
"""The error of a customer parked because its source row is gone and RootFi has no record."""


@dataclass(frozen=True, slots=True)
class Orphan:
    """A customer in doubt with no source row: what the ledger keeps of what was sent."""

    customer_id: str
    keys: tuple[str, ...]  # signatures of what was sent since `doubt_since`
    doubt_since: datetime | None
    last_sent: datetime | None
    sync_id: str | None = None
    last_mode: str | None = None
    redriven: bool = False  # never: nothing may be sent for it

    @classmethod
    def of(cls, claimed: Candidate) -> Orphan:
        """Return the orphan a claim won (`Ledger.claim` reads its history back)."""
        return cls(
            claimed.customer_id,
            claimed.sent_keys,
            claimed.doubt_since,
            claimed.attempted_at,
            claimed.sync_id,
            claimed.attempt_mode,
        )


def settle(lookup: Lookup, orphans: list[Orphan], now: datetime) -> list[Outcome]:
    """Return each orphan's outcome: adopted when found; IN_DOUBT while its settle time runs
    (or its async write is open, or the lookup failed); what its ended write proves; else
    FAILED `DELETED`. `now` is the database's clock."""
    # "after-settle": every customer `unfound` would resend or park comes back to send, and
    # none may be sent: each is parked here with the reason that is true of it.
    done, held, unsendable = replace(lookup, resend="after-settle").resolve(orphans, now)
    parked = [
        Outcome(o.customer_id, Status.FAILED, sync_id=o.sync_id, error=DELETED, parked=True)
        for o in unsendable
    ]
    return done + list(held.values()) + parked
