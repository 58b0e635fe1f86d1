"""The SQL of the ledger that is not a method of it, built per dialect where they differ.

Which rows a run may take now (`eligible`), the database's clock (`db_now`: every lease is set
and checked against it; `db_clock` inside a statement), the INSERT that skips existing rows
(`insert_ignore`), and the UPDATE that writes outcomes (`OUTCOME_UPDATE`, `SETTLED_UPDATE`
which keeps the lease, with `outcome_params`).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from rootfi_sync.ledger.tables import MYSQL_DIALECTS, UTCDateTime, ledger
from rootfi_sync.outcomes import Outcome, Status
from rootfi_sync.timefmt import iso_ms

MAX_ERROR_HISTORY = 4000
CHUNK = 500  # ids per IN (...) list


def eligible(now: datetime) -> sa.ColumnElement[bool]:
    """The ledger rows that a run may (re)claim now, FAILED ones aside."""
    c = ledger.c
    lease_free = sa.or_(c.lease_expires_at.is_(None), c.lease_expires_at < now)
    due = sa.or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now)
    # Equalities, not IN (...): an IN list is an "expanding" parameter, which executemany refuses.
    return sa.or_(
        sa.and_(sa.or_(c.status == Status.CLAIMED, c.status == Status.SENDING), lease_free),
        sa.and_(sa.or_(c.status == Status.IN_DOUBT, c.status == Status.RETRY), lease_free, due),
    )


def insert_ignore(conn: sa.Connection) -> sa.Insert:
    """An INSERT that skips rows whose key exists (another run got there first)."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        return postgresql.insert(ledger).on_conflict_do_nothing()
    if dialect == "sqlite":
        return sqlite.insert(ledger).on_conflict_do_nothing()
    return ledger.insert().prefix_with("IGNORE")  # MySQL, MariaDB


def db_now(conn: sa.Connection) -> datetime:
    """Return the database server's current time, aware, in UTC."""
    dialect = conn.dialect.name
    if dialect == "postgresql":
        query = "SELECT clock_timestamp() AT TIME ZONE 'UTC'"
    elif dialect in ("mysql", "mariadb"):
        query = "SELECT UTC_TIMESTAMP(6)"
    else:
        query = "SELECT strftime('%Y-%m-%d %H:%M:%f', 'now')"
    value: datetime | str = conn.execute(sa.text(query)).scalar_one()
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def db_clock(dialect: str, ahead: float = 0.0) -> sa.ColumnElement[datetime]:
    """The database's clock `ahead` seconds on (UTC, as the ledger stores times), as SQL to use
    inside a statement: what `db_now` reads, without a query of its own."""
    micros = int(ahead * 1_000_000)
    if dialect == "postgresql":
        text = f"((clock_timestamp() AT TIME ZONE 'UTC') + interval '{micros} microseconds')"
    elif dialect in MYSQL_DIALECTS:
        text = f"(UTC_TIMESTAMP(6) + INTERVAL {micros} MICROSECOND)"
    else:
        text = f"strftime('%Y-%m-%d %H:%M:%f', 'now', '{micros / 1_000_000:+.6f} seconds')"
    return sa.literal_column(text, type_=UTCDateTime())


def _newest(text: sa.ColumnElement[str], limit: int) -> sa.ColumnElement[str]:
    """The last `limit` characters of `text` (the newest history), on every dialect."""
    return sa.case(
        (sa.func.length(text) > limit, sa.func.substr(text, sa.func.length(text) - (limit - 1))),
        else_=text,
    )


def _keep(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.bindparam(f"b_{column.key}", type_=column.type), column)


def _outcome_update(*, release: bool = True) -> sa.Update:
    """The UPDATE writing one outcome (`outcome_params`); with `release`, the run lets the
    customer's lease go (its attempt is over), else it keeps it (a task retry follows)."""
    c = ledger.c
    error = sa.bindparam("b_error", type_=sa.Text)
    history = sa.case(
        (error.is_(None), c.last_error),
        (c.last_error.is_(None), error),
        else_=_newest(c.last_error + "\n" + error, MAX_ERROR_HISTORY),
    )
    synced = sa.bindparam("b_status", type_=sa.String) == Status.SYNCED
    sent_at = sa.bindparam("b_sent_at", type_=c.attempted_at.type)
    # When a request in doubt left; in doubt with no stamp at all (its attempt failed without
    # saying when): no later than now.
    unstamped = sa.and_(
        sa.bindparam("b_status", type_=sa.String) == Status.IN_DOUBT, c.attempted_at.is_(None)
    )
    now = sa.bindparam("b_now", type_=c.updated_at.type)
    attempted_at = sa.case((sent_at.is_not(None), sent_at), (unstamped, now), else_=c.attempted_at)
    # No request may have left, in this attempt or any before (none is stamped): nothing can
    # exist in RootFi, so the customer is not in doubt (the intent had made it so).
    status = sa.bindparam("b_status", type_=sa.String)
    never_left = sa.and_(
        status != Status.IN_DOUBT,
        status != Status.CREATED_UNKNOWN,
        sent_at.is_(None),
        c.attempted_at.is_(None),
    )
    settled = sa.or_(synced, never_left)
    # A SYNCED row is never written again, but for the same record (what a retry recorded).
    same_record = c.rootfi_id == sa.bindparam("b_rootfi_id", type_=c.rootfi_id.type)
    lease = {"lease_owner": None, "lease_expires_at": None} if release else {}
    return (
        ledger.update()
        .where(
            c.customer_id == sa.bindparam("b_cid"),
            sa.or_(c.status != Status.SYNCED, sa.and_(synced, same_record)),
        )
        .values(
            status=sa.bindparam("b_status", type_=sa.String),
            rootfi_id=_keep(c.rootfi_id),
            platform_id=_keep(c.platform_id),
            sync_id=_keep(c.sync_id),
            last_error=history,
            synced_at=sa.bindparam("b_synced_at", type_=c.synced_at.type),
            next_attempt_at=sa.bindparam("b_next_attempt_at", type_=c.next_attempt_at.type),
            attempted_at=attempted_at,
            doubt_since=sa.case((settled, None), else_=c.doubt_since),
            sent_keys=sa.case((settled, None), else_=c.sent_keys),
            updated_at=now,
            **lease,
        )
    )


OUTCOME_UPDATE = _outcome_update()
SETTLED_UPDATE = _outcome_update(release=False)


def outcome_params(outcome: Outcome, now: datetime, next_at: datetime | None) -> dict[str, Any]:
    """Return the parameters of `OUTCOME_UPDATE` for one outcome, written at `now`."""
    error = f"{iso_ms(now)} {outcome.error}" if outcome.error and not outcome.recorded else None
    return {
        "b_cid": outcome.customer_id,
        "b_status": str(outcome.status),
        "b_rootfi_id": outcome.rootfi_id,
        "b_platform_id": outcome.platform_id,
        "b_sync_id": outcome.sync_id,
        "b_error": error,
        "b_synced_at": now if outcome.status == Status.SYNCED else None,
        "b_next_attempt_at": next_at,
        "b_sent_at": outcome.sent_at,
        "b_now": now,
    }


def utcnow() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)
