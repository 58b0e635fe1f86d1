"""The sync ledger: who may send which customer, what was sent, and what came of it.

A customer moves through these states for a company (one ledger row each):

    (no row) ─claim─► CLAIMED ─intent─► SENDING ─answer─► SYNCED | FAILED
                                           │
                                           └─no answer─► IN_DOUBT  (looked up before any resend)
    RETRY: failed for a passing reason and never processed; comes back at `next_attempt_at`.
    When each may be tried again is decided in `rootfi_sync.decisions`.

Leases are fenced on the database's clock: a claim leases customers to one run (`owner`) until
`lease_expires_at`; the run renews its leases while it sends (`renew`), records an intent only
for customers it still holds (and sends only those), and writes an outcome only where it is
still the owner. A SYNCED row is never written again. A customer that was ever sent
(`doubt_since` set) is claimed back as IN_DOUBT: it is looked up in RootFi, from its first
unresolved attempt and for every payload sent since (`sent_keys`), before it is sent again.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from rootfi_sync.decisions import next_attempt_at, park
from rootfi_sync.outcomes import Outcome, Status
from rootfi_sync.pending import estimate, lookup_in, scan, with_known
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

__all__ = ["Candidate", "Ledger", "Outcome", "Status"]

MAX_ERROR_HISTORY = 4000
CHUNK = 500  # ids per IN (...) list
KEY_MAX: int = getattr(ledger.c.customer_id.type, "length", None) or 255
"""The longest key (as text) the ledger's `customer_id` holds."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A source row that may be synced, with what the ledger knows of it."""

    row: dict[str, Any]
    source_hash: str
    attempts: int
    attempted_at: datetime | None
    doubt_since: datetime | None = None  # first attempt not resolved yet, if any
    sent_keys: tuple[str, ...] = ()  # match keys of the payloads sent since then
    sync_id: str | None = None  # the async write that holds it, until that write is final
    status: str | None = None  # its ledger state when read (None: no ledger row yet)

    @property
    def customer_id(self) -> str:
        return str(self.row["id"])


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
    """The ledger of one company, for one run (`owner`), in `engine`'s database.

    That is the source's database too, unless `source_engine` is given: the ledger then has a
    database of its own, and the source (read through `source_engine`) is only read.
    """

    def __init__(
        self,
        engine: sa.Engine,
        source: sa.Table,
        company_id: int,
        owner: str,
        *,
        source_engine: sa.Engine | None = None,
    ) -> None:
        self.engine, self.source, self.company_id, self.owner = engine, source, company_id, owner
        self.source_engine = source_engine

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

    def _takeable(self, now: datetime) -> sa.ColumnElement[bool]:
        """The ledger rows a run may take now, parked FAILED ones included."""
        return sa.or_(ledger.c.status == Status.FAILED, _eligible(now))

    def _source_rows(self, only: list[Any] | None) -> sa.Select[Any]:
        """The company's source rows that have a key (of those asked for, if any)."""
        src = self.source
        query = sa.select(src).where(src.c.id.is_not(None))
        if only is not None:
            query = query.where(src.c.id.in_(only))
        if "company_id" in src.c:
            query = query.where(src.c.company_id == self.company_id)
        return query

    def count_pending(self, now: datetime, only: Sequence[Any] = ()) -> int:
        """Return how many rows a run may take now (parked FAILED ones included).

        With the ledger in a database of its own, an estimate (for the run's progress): the
        source rows with a key less the ledger rows a run may not take.
        """
        if self.source_engine is not None:
            return self._estimate_pending(self.source_engine, now, only)
        with self.engine.connect() as conn:
            keys, _ = keys_asked(conn, self.source.c.id, only)
            query = self._pending(sa.select(sa.func.count()), now, keys)
            return int(conn.execute(query).scalar_one())

    def _estimate_pending(self, source: sa.Engine, now: datetime, only: Sequence[Any]) -> int:
        with source.connect() as conn, self.engine.connect() as book:
            keys, _ = keys_asked(conn, self.source.c.id, only)
            rows = self._source_rows(keys)
            return estimate(conn, rows, book, self.company_id, self._takeable(now), keys)

    def candidates(
        self, now: datetime, *, after: Any = None, limit: int = 100, only: Sequence[Any] = ()
    ) -> Page:
        """Return the next page of rows to sync, in key order after `after`.

        Rows that share a key make one candidate, marked (`COPIES`) for the transform to
        refuse. The first page also counts the rows without a key and the unknown ids.
        """
        if self.source_engine is not None:
            return self._candidates_apart(self.source_engine, now, after, limit, only)
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

    def _candidates_apart(
        self, source: sa.Engine, now: datetime, after: Any, limit: int, only: Sequence[Any]
    ) -> Page:
        """`candidates` with the ledger in a database of its own: see `rootfi_sync.pending`."""
        key = self.source.c.id
        with source.connect() as conn, self.engine.connect() as book:
            keys, unknown = keys_asked(conn, key, only)
            rows = self._source_rows(keys)
            look = lookup_in(book, self.company_id, self._takeable(now))
            found = scan(conn, rows.with_only_columns(key), key, look, after=after, limit=limit)
            whole = rows.where(key.in_(found.keys)).order_by(key)
            taken = list(conn.execute(whole).mappings()) if found.keys else []
            page = Page(last_id=found.last_id)
            if after is None:
                page.unknown_ids = unknown
                page.invalid_keys = 0 if only else count_keyless(conn, self.source, self.company_id)
        for copies in rows_by_key(taken).values():
            known = found.known.get(str(copies[0]["id"]))
            self._add(page, [with_known(row, known) for row in copies])
        return page

    def _add(self, page: Page, copies: Sequence[Mapping[Any, Any]]) -> None:
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
        page.candidates.append(
            Candidate(row, digest, attempts or 0, attempted_at, status=status or None)
        )

    def known_rootfi_ids(self, rootfi_ids: Iterable[str]) -> set[str]:
        """Return which of these RootFi ids the ledger already gives to a customer."""
        ids, known = list(rootfi_ids), set[str]()
        with self.engine.connect() as conn:
            for start in range(0, len(ids), CHUNK):
                query = sa.select(ledger.c.rootfi_id).where(
                    ledger.c.company_id == self.company_id,
                    ledger.c.rootfi_id.in_(ids[start : start + CHUNK]),
                )
                known.update(conn.execute(query).scalars())
        return known

    # -- writing -------------------------------------------------------------------------------

    def now(self) -> datetime:
        """Return the database's clock: every lease is set and checked against it."""
        with self.engine.connect() as conn:
            return db_now(conn)

    def claim(
        self, candidates: Sequence[Candidate], lease: timedelta, now: datetime | None = None
    ) -> list[Candidate]:
        """Lease these customers to this run; return the ones won, with their history.

        Portable across SQLite, PostgreSQL and MySQL: new customers are inserted (a conflict
        means another run got there first), known ones are taken by a conditional update
        where free, which each database applies to a row atomically, and the winners are
        read back. `now` is the database's clock when the candidates were read.
        """
        if not candidates:
            return []
        c = ledger.c
        new = [cand for cand in candidates if cand.status is None]
        known = [cand for cand in candidates if cand.status is not None]
        if now is None:
            now = self.now()
        # New customers in a transaction of their own: on MySQL an INSERT IGNORE keeps a lock
        # on every row it collided with until it commits.
        if new:
            with self.engine.begin() as conn:
                conn.execute(
                    _insert_ignore(conn),
                    [
                        {
                            "customer_id": cand.customer_id,
                            "company_id": self.company_id,
                            "status": Status.CLAIMED,
                            "source_hash": cand.source_hash,
                            "attempts": 0,
                            "lease_owner": self.owner,
                            "lease_expires_at": now + lease,
                            "updated_at": now,
                        }
                        for cand in new
                    ],
                )
        changed = sa.or_(c.source_hash.is_(None), c.source_hash != sa.bindparam("b_hash"))
        ever_sent = sa.func.coalesce(c.doubt_since, c.attempted_at).is_not(None)
        with self.engine.begin() as conn:
            take = (
                ledger.update()
                .where(
                    c.company_id == self.company_id,
                    c.customer_id == sa.bindparam("b_cid"),
                    sa.or_(_eligible(now), sa.and_(c.status == Status.FAILED, changed)),
                )
                # In this order: MySQL assigns left to right, each seeing the ones before it.
                .ordered_values(
                    (c.attempts, sa.case((c.status == Status.FAILED, 0), else_=c.attempts)),
                    (c.status, sa.case((ever_sent, Status.IN_DOUBT), else_=Status.CLAIMED)),
                    (c.source_hash, sa.bindparam("b_hash")),
                    (c.lease_owner, self.owner),
                    (c.lease_expires_at, now + lease),
                    (c.updated_at, now),
                )
            )
            if known:
                conn.execute(
                    take, [{"b_cid": x.customer_id, "b_hash": x.source_hash} for x in known]
                )
            won = {
                r.customer_id: r for r in self._held(conn, [x.customer_id for x in candidates], now)
            }
        return [
            Candidate(
                cand.row,
                cand.source_hash,
                r.attempts,
                r.attempted_at,
                r.doubt_since or r.attempted_at,
                _split_keys(r.sent_keys),
                r.sync_id,
            )
            for cand in candidates
            if (r := won.get(cand.customer_id)) is not None
        ]

    def _held(
        self, conn: sa.Connection, customer_ids: Sequence[str], now: datetime | None
    ) -> list[Any]:
        """Return the ledger rows of these customers that this run holds (leased until after
        `now`, when given), locked until the transaction ends where the database can lock."""
        c, rows = ledger.c, list[Any]()
        for start in range(0, len(customer_ids), CHUNK):
            query = (
                sa.select(
                    c.customer_id, c.attempts, c.attempted_at, c.doubt_since, c.sent_keys, c.sync_id
                )
                .where(
                    c.company_id == self.company_id,
                    c.lease_owner == self.owner,
                    c.customer_id.in_(customer_ids[start : start + CHUNK]),
                )
                .with_for_update()
            )
            if now is not None:
                query = query.where(c.lease_expires_at > now)
            rows += conn.execute(query).all()
        return rows

    def renew(self, customer_ids: Sequence[str], lease: timedelta) -> set[str]:
        """Extend the leases this run still holds on these customers; return those held.

        A lease that has run out is not renewed: another run may already have taken it.
        """
        if not customer_ids:
            return set()
        ids = list(customer_ids)
        with self.engine.begin() as conn:
            now = db_now(conn)
            still = ledger.c.lease_expires_at > now
            self._update_held(conn, ids, still, lease_expires_at=now + lease)
            return {r.customer_id for r in self._held(conn, ids, now)}

    def record_intent(self, intents: Mapping[str, tuple[str, tuple[str, ...]]]) -> set[str]:
        """Mark customers SENDING, before the request leaves; return those this run may send.

        `intents` maps each customer to its payload hash and the match keys of every payload
        sent since its first unresolved attempt, this one included. A customer never sent is
        stamped sent now; one in doubt is stamped only if it is sent again (`touch`), once its
        lookup has found nothing. Customers whose lease this run no longer holds are left
        alone, and must not be sent.
        """
        if not intents:
            return set()
        c = ledger.c
        fresh = sa.func.coalesce(c.doubt_since, c.attempted_at).is_(None)
        with self.engine.begin() as conn:
            now = db_now(conn)
            stmt = (
                ledger.update()
                .where(
                    c.company_id == self.company_id,
                    c.customer_id == sa.bindparam("b_cid"),
                    c.lease_owner == self.owner,
                    c.lease_expires_at > now,
                )
                # In this order: MySQL assigns left to right, each seeing the ones before it.
                .ordered_values(
                    (c.sent_keys, sa.case((fresh, sa.bindparam("b_keys")), else_=c.sent_keys)),
                    (c.attempted_at, sa.case((fresh, now), else_=c.attempted_at)),
                    (c.doubt_since, sa.func.coalesce(c.doubt_since, c.attempted_at, now)),
                    (c.status, Status.SENDING),
                    (c.payload_hash, sa.bindparam("b_hash")),
                    (c.attempts, c.attempts + 1),
                    (c.updated_at, now),
                )
            )
            params = [
                {"b_cid": cid, "b_hash": digest, "b_keys": " ".join(keys)}
                for cid, (digest, keys) in intents.items()
            ]
            return self._updated(conn, stmt, params, now)

    def _updated(
        self, conn: sa.Connection, stmt: sa.Update, params: list[dict[str, Any]], now: datetime
    ) -> set[str]:
        """Run a fenced executemany UPDATE stamping `updated_at=now`; return the customers it
        changed (all of them, as a rule: the rows are read back only when some were not)."""
        ids = [p["b_cid"] for p in params]
        result = conn.execute(stmt, params)
        if conn.dialect.supports_sane_multi_rowcount and result.rowcount == len(params):
            return set(ids)
        c, changed = ledger.c, set[str]()
        for start in range(0, len(ids), CHUNK):
            query = sa.select(c.customer_id).where(
                c.company_id == self.company_id,
                c.updated_at == now,
                c.customer_id.in_(ids[start : start + CHUNK]),
            )
            changed.update(conn.execute(query).scalars())
        return changed

    def touch(self, sent_keys: Mapping[str, tuple[str, ...]]) -> set[str]:
        """Stamp customers as sent again now (a resend after a lookup, or a task retry; not
        counted as one more attempt); return those this run still holds, the only ones it may
        send. `sent_keys`: each customer's match keys, the payload about to leave included."""
        if not sent_keys:
            return set()
        c = ledger.c
        with self.engine.begin() as conn:
            now = db_now(conn)
            stmt = (
                ledger.update()
                .where(
                    c.company_id == self.company_id,
                    c.customer_id == sa.bindparam("b_cid"),
                    c.lease_owner == self.owner,
                    c.lease_expires_at > now,
                )
                .values(
                    sent_keys=sa.bindparam("b_keys"),
                    attempted_at=now,
                    doubt_since=sa.func.coalesce(c.doubt_since, now),
                    updated_at=now,
                )
            )
            params = [{"b_cid": k, "b_keys": " ".join(keys)} for k, keys in sent_keys.items()]
            return self._updated(conn, stmt, params, now)

    def record_pending_sync(self, customer_ids: Sequence[str], sync_id: str) -> None:
        """Remember the async write that holds these customers, as soon as RootFi names it."""
        with self.engine.begin() as conn:
            not_synced = ledger.c.status != Status.SYNCED
            self._update_held(conn, list(customer_ids), not_synced, sync_id=sync_id)

    def _update_held(
        self, conn: sa.Connection, ids: list[str], condition: sa.ColumnElement[bool], **values: Any
    ) -> None:
        """Set `values` on the rows of these customers this run owns where `condition` holds."""
        c = ledger.c
        for start in range(0, len(ids), CHUNK):
            conn.execute(
                ledger.update()
                .where(
                    c.company_id == self.company_id,
                    c.lease_owner == self.owner,
                    c.customer_id.in_(ids[start : start + CHUNK]),
                    condition,
                )
                .values(**values)
            )

    def record_outcomes(
        self,
        outcomes: Sequence[Outcome],
        *,
        max_attempts: int,
        requeue: timedelta,
        attempts: Mapping[str, int],
    ) -> list[Outcome]:
        """Write each customer's outcome in one statement; return them as written.

        Only outcomes of customers this run still owns are written (fencing): a run that lost
        a lease to another run leaves that customer to it. `attempts` is each customer's
        attempt count (as `record_intent` left it); when it may be tried again is decided in
        `rootfi_sync.decisions`. A record the ledger already gives to another customer is not
        adopted: that customer stays IN_DOUBT.
        """
        outcomes = park(outcomes, attempts, max_attempts)
        if not outcomes:
            return []
        try:
            return self._write_outcomes(outcomes, requeue, attempts)
        except sa.exc.IntegrityError:  # two customers matched one record: keep it for one
            return self._write_outcomes(self._unclaimed(outcomes), requeue, attempts)

    def _write_outcomes(
        self, outcomes: Sequence[Outcome], requeue: timedelta, attempts: Mapping[str, int]
    ) -> list[Outcome]:
        with self.engine.begin() as conn:
            now = db_now(conn)
            rows = [
                _outcome_params(o, now, next_attempt_at(o, now, attempts.get(cid, 1), requeue))
                for o in outcomes
                if (cid := o.customer_id)
            ]
            fenced = _OUTCOME_UPDATE.where(
                ledger.c.company_id == self.company_id, ledger.c.lease_owner == self.owner
            )
            held = self._updated(conn, fenced, rows, now)
            written = [o for o in outcomes if o.customer_id in held]
        return written

    def _unclaimed(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        """Return the outcomes, those adopting a record another customer holds made IN_DOUBT."""
        ids = [o.rootfi_id for o in outcomes if o.rootfi_id is not None]
        taken = self.known_rootfi_ids(ids)
        return [
            Outcome(
                o.customer_id,
                Status.IN_DOUBT,
                error=f"RootFi record {o.rootfi_id} already belongs to another customer",
            )
            if o.rootfi_id in taken
            else o
            for o in outcomes
        ]


def _split_keys(value: str | None) -> tuple[str, ...]:
    return tuple(value.split()) if value else ()


def _insert_ignore(conn: sa.Connection) -> sa.Insert:
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


def _newest(text: sa.ColumnElement[str], limit: int) -> sa.ColumnElement[str]:
    """The last `limit` characters of `text` (the newest history), on every dialect."""
    return sa.case(
        (sa.func.length(text) > limit, sa.func.substr(text, sa.func.length(text) - (limit - 1))),
        else_=text,
    )


def _keep(column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    return sa.func.coalesce(sa.bindparam(f"b_{column.key}", type_=column.type), column)


def _outcome_update() -> sa.Update:
    c = ledger.c
    error = sa.bindparam("b_error", type_=sa.Text)
    history = sa.case(
        (error.is_(None), c.last_error),
        (c.last_error.is_(None), error),
        else_=_newest(c.last_error + "\n" + error, MAX_ERROR_HISTORY),
    )
    synced = sa.bindparam("b_status", type_=sa.String) == Status.SYNCED
    return (
        ledger.update()
        .where(c.customer_id == sa.bindparam("b_cid"), c.status != Status.SYNCED)
        .values(
            status=sa.bindparam("b_status", type_=sa.String),
            rootfi_id=_keep(c.rootfi_id),
            platform_id=_keep(c.platform_id),
            sync_id=_keep(c.sync_id),
            last_error=history,
            synced_at=sa.bindparam("b_synced_at", type_=c.synced_at.type),
            next_attempt_at=sa.bindparam("b_next_attempt_at", type_=c.next_attempt_at.type),
            doubt_since=sa.case((synced, None), else_=c.doubt_since),
            sent_keys=sa.case((synced, None), else_=c.sent_keys),
            lease_owner=None,
            lease_expires_at=None,
            updated_at=sa.bindparam("b_now"),
        )
    )


_OUTCOME_UPDATE = _outcome_update()


def _outcome_params(outcome: Outcome, now: datetime, next_at: datetime | None) -> dict[str, Any]:
    error = f"{now:%Y-%m-%dT%H:%M:%SZ} {outcome.error}" if outcome.error else None
    return {
        "b_cid": outcome.customer_id,
        "b_status": str(outcome.status),
        "b_rootfi_id": outcome.rootfi_id,
        "b_platform_id": outcome.platform_id,
        "b_sync_id": outcome.sync_id,
        "b_error": error,
        "b_synced_at": now if outcome.status == Status.SYNCED else None,
        "b_next_attempt_at": next_at,
        "b_now": now,
    }


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
