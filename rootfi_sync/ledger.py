"""The sync ledger: who may send which customer, what was sent, and what came of it.

A customer moves through these states for a company (one ledger row each):

    (no row) ─claim─► CLAIMED ─intent─► SENDING ─answer─► SYNCED | FAILED
                                           │
                                           └─no answer─► IN_DOUBT  (looked up before any resend)
    RETRY: failed for a passing reason and never processed; comes back at `next_attempt_at`.

Claims are conditional upserts guarded by a lease, so two runs never hold the same customer.
A customer that was ever sent (`attempted_at` set) is claimed back as IN_DOUBT: it is looked
up in RootFi before it is sent again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from rootfi_sync.source import (
    copies_hash,
    count_keyless,
    fetch_page,
    keys_asked,
    rows_by_key,
    source_hash,
)
from rootfi_sync.tables import ledger
from rootfi_sync.transform import COPIES

MAX_ERROR_HISTORY = 4000
KEY_MAX: int = getattr(ledger.c.customer_id.type, "length", None) or 255
"""The longest key (as text) the ledger's `customer_id` holds."""


class Status(StrEnum):
    CLAIMED = "CLAIMED"
    SENDING = "SENDING"
    IN_DOUBT = "IN_DOUBT"
    RETRY = "RETRY"
    SYNCED = "SYNCED"
    FAILED = "FAILED"


@dataclass(frozen=True, slots=True)
class Candidate:
    """A source row that may be synced, with what the ledger knows of it."""

    row: dict[str, Any]
    source_hash: str
    attempts: int
    attempted_at: datetime | None

    @property
    def customer_id(self) -> str:
        return str(self.row["id"])


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


TRANSIENT = (Status.IN_DOUBT, Status.RETRY)


def park(
    outcomes: Iterable[Outcome], attempts: Mapping[str, int], max_attempts: int
) -> list[Outcome]:
    """Return the outcomes, with customers that are still pending after `max_attempts` parked."""
    return [
        replace(o, status=Status.FAILED, parked=True,
                error=f"gave up after {attempts[o.customer_id]} attempts: {o.error}")
        if o.status in TRANSIENT and attempts.get(o.customer_id, 0) >= max_attempts
        else o
        for o in outcomes
    ]  # fmt: skip


@dataclass(slots=True)
class Page:
    """Candidates, the key to go on after, rows with a key the ledger cannot hold (NULL:
    counted on the first page, or too long) and asked-for ids that cannot be keys."""

    candidates: list[Candidate] = field(default_factory=list)
    last_id: Any = None
    invalid_keys: int = 0
    unknown_ids: list[Any] = field(default_factory=list)


def _eligible(now: datetime) -> sa.ColumnElement[bool]:
    """The ledger rows that a run may (re)claim now, FAILED ones aside."""
    c = ledger.c
    lease_free = sa.or_(c.lease_expires_at.is_(None), c.lease_expires_at < now)
    due = sa.or_(c.next_attempt_at.is_(None), c.next_attempt_at <= now)
    # Equalities, not IN (...): an IN list is an "expanding" parameter, which executemany refuses.
    return sa.or_(
        sa.and_(sa.or_(c.status == Status.CLAIMED, c.status == Status.SENDING), lease_free),
        sa.and_(sa.or_(c.status == Status.IN_DOUBT, c.status == Status.RETRY), lease_free, due),
    )


class Ledger:
    """The ledger of one company, in the source database, for one run (`owner`)."""

    def __init__(self, engine: sa.Engine, source: sa.Table, company_id: int, owner: str) -> None:
        self.engine, self.source, self.company_id, self.owner = engine, source, company_id, owner

    def __repr__(self) -> str:
        return f"Ledger(company_id={self.company_id}, owner={self.owner!r})"

    # -- reading -------------------------------------------------------------------------------

    def _pending(
        self, query: sa.Select[Any], now: datetime, only: list[Any] | None
    ) -> sa.Select[Any]:
        """Restrict a query over the source joined to the ledger to rows a run may take.

        `only` (None: no restriction) holds values of the key column's type. Rows without a
        key are left out: no ledger row could say what became of them.
        """
        src, c = self.source, ledger.c
        joined = src.outerjoin(
            ledger,
            sa.and_(c.customer_id == sa.cast(src.c.id, sa.String), c.company_id == self.company_id),
        )
        query = query.select_from(joined).where(
            src.c.id.is_not(None),
            sa.or_(c.status.is_(None), c.status == Status.FAILED, _eligible(now)),
        )
        if only is not None:
            query = query.where(src.c.id.in_(only))
        if "company_id" in src.c:
            query = query.where(src.c.company_id == self.company_id)
        return query

    def count_pending(self, now: datetime, only: Sequence[Any] = ()) -> int:
        """Return how many rows a run may take now (parked FAILED ones included)."""
        with self.engine.connect() as conn:
            keys, _ = keys_asked(conn, self.source.c.id, only)
            query = self._pending(sa.select(sa.func.count()), now, keys)
            return int(conn.execute(query).scalar_one())

    def candidates(
        self, now: datetime, *, after: Any = None, limit: int = 100, only: Sequence[Any] = ()
    ) -> Page:
        """Return the next page of rows to sync, in key order after `after`.

        Rows that share a key make one candidate, marked (`COPIES`) for the transform to
        refuse. The first page also counts the rows without a key and the unknown ids.
        """
        src, c = self.source, ledger.c
        columns = (
            c.status.label("_status"),
            c.attempts.label("_attempts"),
            c.attempted_at.label("_attempted_at"),
            c.source_hash.label("_source_hash"),
        )
        with self.engine.connect() as conn:
            keys, unknown = keys_asked(conn, src.c.id, only)
            query = self._pending(sa.select(src, *columns), now, keys)
            rows = fetch_page(conn, query, src.c.id, after, limit)
            page = Page(last_id=rows[-1]["id"] if rows else None)
            if after is None:
                page.unknown_ids = unknown
                page.invalid_keys = count_keyless(conn, src, self.company_id) if not only else 0
        for copies in rows_by_key(rows).values():
            self._add(page, copies)
        return page

    def _add(self, page: Page, copies: Sequence[sa.RowMapping]) -> None:
        """Add the customer of these rows (one, or several sharing its key) unless parked."""
        names = [col.key for col in self.source.c if col.key != "company_id"]
        rows = [{k: m[k] for k in names} for m in copies]
        if len(str(rows[0]["id"])) > KEY_MAX:
            page.invalid_keys += len(rows)
            return
        digest = source_hash(rows[0]) if len(rows) == 1 else copies_hash(rows)
        status, attempts, attempted_at, known = (
            copies[0][k] for k in ("_status", "_attempts", "_attempted_at", "_source_hash")
        )
        if status == Status.FAILED and known == digest:
            return  # refused before and unchanged since: leave it parked
        row = rows[0] if len(rows) == 1 else rows[0] | {COPIES: len(rows)}
        page.candidates.append(Candidate(row, digest, attempts or 0, attempted_at))

    def known_rootfi_ids(self, rootfi_ids: Iterable[str]) -> set[str]:
        """Return which of these RootFi ids the ledger already gives to a customer."""
        ids, known = list(rootfi_ids), set[str]()
        with self.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                query = sa.select(ledger.c.rootfi_id).where(
                    ledger.c.company_id == self.company_id,
                    ledger.c.rootfi_id.in_(ids[start : start + 500]),
                )
                known.update(conn.execute(query).scalars())
        return known

    # -- writing -------------------------------------------------------------------------------

    def claim(
        self, candidates: Sequence[Candidate], now: datetime, lease: timedelta
    ) -> list[Candidate]:
        """Lease these customers to this run; return the ones won, IN_DOUBT if ever sent."""
        if not candidates:
            return []
        insert = postgresql.insert if self.engine.dialect.name == "postgresql" else sqlite.insert
        rows = [
            {"customer_id": cand.customer_id, "company_id": self.company_id,
             "status": Status.CLAIMED, "source_hash": cand.source_hash, "attempts": 0,
             "lease_owner": self.owner, "lease_expires_at": now + lease, "updated_at": now}
            for cand in candidates
        ]  # fmt: skip
        stmt = insert(ledger)
        c, new = ledger.c, stmt.excluded
        changed = sa.or_(c.source_hash.is_(None), c.source_hash != new.source_hash)
        upsert = stmt.on_conflict_do_update(
            index_elements=[c.customer_id, c.company_id],
            set_={
                "status": sa.case(
                    (c.attempted_at.is_not(None), Status.IN_DOUBT), else_=Status.CLAIMED
                ),
                "attempts": sa.case((c.status == Status.FAILED, 0), else_=c.attempts),
                "source_hash": new.source_hash, "lease_owner": new.lease_owner,
                "lease_expires_at": new.lease_expires_at, "updated_at": new.updated_at,
            },
            where=sa.or_(_eligible(now), sa.and_(c.status == Status.FAILED, changed)),
        ).returning(c.customer_id, c.attempts, c.attempted_at)  # fmt: skip
        with self.engine.begin() as conn:  # executemany: one statement, compiled once per run
            won = {r.customer_id: r for r in conn.execute(upsert, rows)}
        return [
            Candidate(cand.row, cand.source_hash, won[cid].attempts, won[cid].attempted_at)
            for cand in candidates
            if (cid := cand.customer_id) in won
        ]

    def record_intent(self, hashes: Mapping[str, str], now: datetime) -> None:
        """Mark customers SENDING with their payload hash, before the request leaves."""
        if not hashes:
            return
        c = ledger.c
        stmt = (
            ledger.update()
            .where(c.company_id == self.company_id, c.customer_id == sa.bindparam("b_cid"),
                   c.lease_owner == self.owner)
            .values(status=Status.SENDING, payload_hash=sa.bindparam("b_hash"),
                    attempts=c.attempts + 1, attempted_at=now, updated_at=now)
        )  # fmt: skip
        with self.engine.begin() as conn:
            conn.execute(stmt, [{"b_cid": cid, "b_hash": h} for cid, h in hashes.items()])

    def record_outcomes(
        self,
        outcomes: Sequence[Outcome],
        now: datetime,
        *,
        max_attempts: int,
        requeue: timedelta,
        attempts: Mapping[str, int],
    ) -> list[Outcome]:
        """Write each customer's outcome in one statement; return them as written.

        `attempts` is each customer's attempt count (as `record_intent` left it). A customer
        still pending after `max_attempts` is parked FAILED; one to try again waits `requeue`,
        doubled for each attempt it already made.
        """
        written = park(outcomes, attempts, max_attempts)
        if not written:
            return written
        c = ledger.c
        error = sa.bindparam("b_error", type_=sa.Text)
        history = sa.case(
            (error.is_(None), c.last_error),
            (c.last_error.is_(None), error),
            else_=sa.func.substr(c.last_error + "\n" + error, 1, MAX_ERROR_HISTORY),
        )

        def keep(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
            return sa.func.coalesce(sa.bindparam(f"b_{column.key}", type_=column.type), column)

        stmt = (
            ledger.update()
            .where(c.company_id == self.company_id, c.customer_id == sa.bindparam("b_cid"))
            .values(
                status=sa.bindparam("b_status", type_=sa.String),
                rootfi_id=keep(c.rootfi_id), platform_id=keep(c.platform_id),
                sync_id=keep(c.sync_id), last_error=history,
                synced_at=sa.bindparam("b_synced_at", type_=c.synced_at.type),
                next_attempt_at=sa.bindparam("b_next_attempt_at", type_=c.next_attempt_at.type),
                lease_owner=None, lease_expires_at=None, updated_at=now,
            )
        )  # fmt: skip
        rows = [
            self._outcome_params(o, now, requeue * 2 ** min(attempts.get(o.customer_id, 1) - 1, 10))
            for o in written
        ]
        with self.engine.begin() as conn:
            conn.execute(stmt, rows)
        return written

    @staticmethod
    def _outcome_params(outcome: Outcome, now: datetime, requeue: timedelta) -> dict[str, Any]:
        error = f"{now:%Y-%m-%dT%H:%M:%SZ} {outcome.error}" if outcome.error else None
        return {
            "b_cid": outcome.customer_id, "b_status": str(outcome.status),
            "b_rootfi_id": outcome.rootfi_id, "b_platform_id": outcome.platform_id,
            "b_sync_id": outcome.sync_id, "b_error": error,
            "b_synced_at": now if outcome.status == Status.SYNCED else None,
            "b_next_attempt_at": now + requeue if outcome.status in TRANSIENT else None,
        }  # fmt: skip


def utcnow() -> datetime:
    """Return the current time, aware, in UTC."""
    return datetime.now(UTC)


def source_companies(engine: sa.Engine, source: sa.Table) -> list[int]:
    """Return the distinct company ids of a source table that has a company column."""
    with engine.connect() as conn:
        query = sa.select(source.c.company_id).distinct().order_by(source.c.company_id)
        return [int(c) for c in conn.execute(query).scalars() if c is not None]


def status_counts(engine: sa.Engine, company_id: int | None = None) -> dict[str, int]:
    """Return how many ledger rows are in each state (for one company, or all)."""
    query = sa.select(ledger.c.status, sa.func.count()).group_by(ledger.c.status)
    if company_id is not None:
        query = query.where(ledger.c.company_id == company_id)
    with engine.connect() as conn:
        return {status: n for status, n in conn.execute(query)}


def latest_failures(engine: sa.Engine, company_id: int | None, limit: int = 10) -> list[Any]:
    """Return the most recently failed customers, newest first."""
    c = ledger.c
    query = (
        sa.select(c.customer_id, c.company_id, c.attempts, c.last_error, c.updated_at)
        .where(c.status == Status.FAILED)
        .order_by(c.updated_at.desc())
        .limit(limit)
    )
    if company_id is not None:
        query = query.where(c.company_id == company_id)
    with engine.connect() as conn:
        return list(conn.execute(query))


def redrive(engine: sa.Engine, company_id: int, customer_ids: Sequence[str] | None) -> int:
    """Make parked FAILED customers eligible now with a fresh attempt budget; return how many."""
    c = ledger.c
    stmt = (
        ledger.update()
        .where(c.company_id == company_id, c.status == Status.FAILED)
        .values(status=Status.RETRY, attempts=0, next_attempt_at=None, updated_at=utcnow())
    )
    if customer_ids is not None:
        stmt = stmt.where(c.customer_id.in_([str(i) for i in customer_ids]))
    with engine.begin() as conn:
        return conn.execute(stmt).rowcount
