"""The ledger's states, and what became of one customer in one attempt."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

# What a person should look at in RootFi, as the ledger's `last_error`, the run's report and
# `rootfi-sync status --look` name it (the ledger is searched for these words).
DUPLICATE = "duplicate found in RootFi"
CREATED_UNKNOWN = "created, id unknown"
SOURCE_DELETED = "source row deleted"


class Status(StrEnum):
    CLAIMED = "CLAIMED"
    SENDING = "SENDING"
    IN_DOUBT = "IN_DOUBT"
    RETRY = "RETRY"
    SYNCED = "SYNCED"
    FAILED = "FAILED"
    # Final: RootFi said it created the customer (a job or sync reporting SUCCESS), but no
    # record could be identified as its own. Never claimed or sent again; `sync_id` says where.
    CREATED_UNKNOWN = "CREATED_UNKNOWN"


FINAL_STATES = (Status.SYNCED, Status.FAILED, Status.CREATED_UNKNOWN)
"""States an attempt ends in for good (FAILED until the row changes or a redrive)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one customer in one attempt."""

    customer_id: str
    status: Status
    rootfi_id: str | None = None
    platform_id: str | None = None
    sync_id: str | None = None
    error: str | None = None
    adopted: bool = False  # found in RootFi by a lookup rather than created by our request
    parked: bool = False  # FAILED because its attempts ran out, not because it was refused
    wait: float = 0.0  # pending: seconds before anything may be sent for it again
    duplicates: tuple[str, ...] = ()  # other RootFi records that match it: duplicates found
    recorded: bool = False  # already in the ledger (an attempt before a task retry wrote it)
    sent_at: datetime | None = None  # in doubt: when its request left (the database's clock)
