"""Writing the ledger: claims, leases, intents and outcomes, each fenced by the lease.

Leases are fenced on the database's clock: a claim leases customers to one run (`owner`) until
`lease_expires_at`; the run renews its leases while it sends (`renew`), records an intent only
for customers it still holds (and sends only those), and writes an outcome only where it is
still the owner. A SYNCED row is never written again. A customer that was ever sent
(`doubt_since` set) is claimed back as IN_DOUBT: it is looked up in RootFi, from its first
unresolved attempt and for every payload sent since (`sent_keys`), before it is sent again.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from rootfi_sync.ledger.reading import Candidate, LedgerReader
from rootfi_sync.ledger.statements import (
    CHUNK,
    OUTCOME_UPDATE,
    SETTLED_UPDATE,
    db_clock,
    db_now,
    eligible,
    insert_ignore,
    outcome_params,
    utcnow,
)
from rootfi_sync.ledger.tables import ledger
from rootfi_sync.outcomes import FINAL_STATES, Outcome, Status
from rootfi_sync.rootfi.decisions import next_attempt_at, park

logger = logging.getLogger("rootfi_sync.ledger")

FINAL = FINAL_STATES
HISTORY = (
    ledger.c.customer_id,
    ledger.c.attempts,
    ledger.c.attempted_at,
    ledger.c.attempt_mode,
    ledger.c.doubt_since,
    ledger.c.sent_keys,
    ledger.c.sync_id,
)
"""What the ledger holds of a customer's sends: a claim and a task retry start from it."""


class Ledger(LedgerReader):
    """The ledger of one company, for one run (`owner`): what `LedgerReader` reads, and the
    run's writes (each written only where the run still holds the customer's lease)."""

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
                    insert_ignore(conn),
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
        # An owner that never wrote an outcome (its lease is still on the row) may have sent
        # until its lease ended: the settle time runs from then, not from its last stamp.
        abandoned = sa.and_(
            c.lease_owner.is_not(None),
            ever_sent,
            sa.or_(c.attempted_at.is_(None), c.lease_expires_at > c.attempted_at),
        )
        with self.engine.begin() as conn:
            take = (
                ledger.update()
                .where(
                    c.company_id == self.company_id,
                    c.customer_id == sa.bindparam("b_cid"),
                    sa.or_(eligible(now), sa.and_(c.status == Status.FAILED, changed)),
                )
                # In this order: MySQL assigns left to right, each seeing the ones before it.
                .ordered_values(
                    # A changed FAILED row gets a fresh budget, unless RootFi may hold it: a
                    # parked customer in doubt keeps its attempts (only `redrive` resets them,
                    # which is what `decisions.fresh_send` tells apart).
                    (
                        c.attempts,
                        sa.case(
                            (sa.and_(c.status == Status.FAILED, ~ever_sent), 0), else_=c.attempts
                        ),
                    ),
                    (c.status, sa.case((ever_sent, Status.IN_DOUBT), else_=Status.CLAIMED)),
                    (
                        c.attempted_at,
                        sa.case((abandoned, c.lease_expires_at), else_=c.attempted_at),
                    ),
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
                status=cand.status,
                attempt_mode=r.attempt_mode,
            )
            for cand in candidates
            if (r := won.get(cand.customer_id)) is not None
        ]

    def _held(
        self,
        conn: sa.Connection,
        customer_ids: Sequence[str],
        now: datetime | None,
        columns: Sequence[sa.ColumnElement[Any]] = HISTORY,
        lock: bool = True,
    ) -> list[Any]:
        """Return `columns` of the ledger rows of these customers that this run holds (leased
        until after `now`, when given), locked until the transaction ends where the database
        can lock (`lock`)."""
        c, rows = ledger.c, list[Any]()
        for start in range(0, len(customer_ids), CHUNK):
            query = sa.select(*columns).where(
                c.company_id == self.company_id,
                c.lease_owner == self.owner,
                c.customer_id.in_(customer_ids[start : start + CHUNK]),
            )
            if now is not None:
                query = query.where(c.lease_expires_at > now)
            rows += conn.execute(query.with_for_update() if lock else query).all()
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

    def record_intent(
        self, intents: Mapping[str, tuple[str, tuple[str, ...]]], mode: str | None = None
    ) -> set[str]:
        """Mark customers SENDING, before the request leaves; return those this run may send.

        `intents` maps each customer to its payload hash and the match keys of every payload
        sent since its first unresolved attempt, this one included; `mode` is the write mode its
        requests will use. A customer never sent is in doubt from now (a lookup starts here);
        when a request left is recorded with its outcome (`sent_at`: no stamp, never sent).
        Customers whose lease this run no longer holds are left alone, and must not be sent.
        """
        if not intents:
            return set()
        c = ledger.c
        fresh = sa.func.coalesce(c.doubt_since, c.attempted_at).is_(None)
        with self.engine.begin() as conn:
            now = db_now(conn)
            stmt = (
                self._fenced_update(now)
                # In this order: MySQL assigns left to right, each seeing the ones before it.
                .ordered_values(
                    (c.sent_keys, sa.case((fresh, sa.bindparam("b_keys")), else_=c.sent_keys)),
                    (c.attempt_mode, sa.case((fresh, mode), else_=c.attempt_mode)),
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

    def _fenced_update(self, now: datetime) -> sa.Update:
        """An UPDATE of this company's row `b_cid` that changes it only while this run holds
        its lease (the fence is in the statement: no read first)."""
        c = ledger.c
        return ledger.update().where(
            c.company_id == self.company_id,
            c.customer_id == sa.bindparam("b_cid"),
            c.lease_owner == self.owner,
            c.lease_expires_at > now,
        )

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

    def touch(self, sent_keys: Mapping[str, tuple[str, ...]], mode: str | None = None) -> set[str]:
        """Record the match keys of customers about to be sent again (a resend after a lookup;
        not counted as one more attempt) and the write mode it uses; return those this run
        still holds, the only ones it may send. `sent_keys`: each customer's keys, the payload
        about to leave included."""
        if not sent_keys:
            return set()
        c = ledger.c
        with self.engine.begin() as conn:
            now = db_now(conn)
            stmt = self._fenced_update(now).values(
                sent_keys=sa.bindparam("b_keys"),
                doubt_since=sa.func.coalesce(c.doubt_since, now),
                attempt_mode=sa.func.coalesce(mode, c.attempt_mode),
                updated_at=now,
            )
            params = [{"b_cid": k, "b_keys": " ".join(keys)} for k, keys in sent_keys.items()]
            return self._updated(conn, stmt, params, now)

    def vouch(self, customer_ids: Sequence[str], margin: float) -> tuple[set[str], datetime]:
        """Return which of these customers this run still holds with `margin` seconds of lease
        to spare, by the database's clock, and that clock: the only customers the request
        about to leave may carry, and when it leaves (what an outcome in doubt records).

        Asked right before each POST (and each new try after a 429): one read by key, so a
        process that paused or slept past its lease sends nothing. A database that cannot be
        asked vouches for no one (nothing leaves; the customers are retried later).
        """
        ids, held, now = list(customer_ids), set[str](), None
        try:
            with self.engine.connect() as conn:
                query = _vouch_query(conn.dialect.name, margin)
                for start in range(0, len(ids), CHUNK):
                    params = {"b_company": self.company_id, "b_owner": self.owner}
                    chunk = {"b_ids": ids[start : start + CHUNK]}
                    for row in conn.execute(query, params | chunk):
                        held.add(row.customer_id)
                        now = row.now
                return held, now if now is not None else db_now(conn)
        except sa.exc.SQLAlchemyError as exc:
            logger.warning(
                "the ledger could not vouch for leases (%s): not sent", type(exc).__name__
            )
            return set(), utcnow()

    def record_settled(self, outcomes: Sequence[Outcome]) -> set[str]:
        """Write what an attempt learnt, keeping the leases: the final outcomes (SYNCED,
        FAILED), and when each request in doubt left (`sent_at`). What a task retry resumes
        from (`resume`), whatever process it runs in. Returns the customers whose final
        outcome was written (their history holds it: it is not written again)."""
        self._write_sent([o for o in outcomes if o.status not in FINAL and o.sent_at])
        final = [o for o in outcomes if o.status in FINAL]
        if not final:
            return set()
        written = self._write_claimed(final, SETTLED_UPDATE, lambda o, now: None)
        return {o.customer_id for o in written if o.status in FINAL}

    def _write_sent(self, outcomes: Sequence[Outcome]) -> None:
        if not outcomes:
            return
        c = ledger.c
        with self.engine.begin() as conn:
            stmt = ledger.update().where(
                c.company_id == self.company_id,
                c.customer_id == sa.bindparam("b_cid"),
                c.lease_owner == self.owner,
            )
            stmt = stmt.values(attempted_at=sa.bindparam("b_sent_at", type_=c.attempted_at.type))
            conn.execute(stmt, [{"b_cid": o.customer_id, "b_sent_at": o.sent_at} for o in outcomes])

    def resume(self, customer_ids: Sequence[str]) -> dict[str, Any]:
        """Return the ledger rows of these customers this run still owns: each one's sends
        (`HISTORY`), state and outcome, where a task retry starts."""
        c = ledger.c
        columns = (*HISTORY, c.status, c.rootfi_id, c.platform_id, c.last_error)
        with self.engine.connect() as conn:
            rows = self._held(conn, list(customer_ids), None, columns, lock=False)
        return {r.customer_id: r for r in rows}

    def record_sync_id(self, customer_ids: Sequence[str], sync_id: str) -> None:
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
        `rootfi_sync.rootfi.decisions`. A record the ledger already gives to another customer
        is not adopted: that customer stays IN_DOUBT.
        """
        outcomes = park(outcomes, attempts, max_attempts)

        def next_at(o: Outcome, now: datetime) -> datetime | None:
            return next_attempt_at(o, now, attempts.get(o.customer_id, 1), requeue)

        return self._write_claimed(outcomes, OUTCOME_UPDATE, next_at)

    def _write_claimed(
        self,
        outcomes: Sequence[Outcome],
        update: sa.Update,
        next_at: Callable[[Outcome, datetime], datetime | None],
    ) -> list[Outcome]:
        """Write outcomes with `update` (`statements._outcome_update`), fenced by this run's
        leases; return those written. A record the ledger already gives to another customer
        is not adopted: that customer is written IN_DOUBT (`_unclaimed`)."""
        if not outcomes:
            return []
        try:
            return self._write(outcomes, update, next_at)
        except sa.exc.IntegrityError:  # two customers matched one record: keep it for one
            return self._write(self._unclaimed(outcomes), update, next_at)

    def _write(
        self,
        outcomes: Sequence[Outcome],
        update: sa.Update,
        next_at: Callable[[Outcome, datetime], datetime | None],
    ) -> list[Outcome]:
        with self.engine.begin() as conn:
            now = db_now(conn)
            rows = [outcome_params(o, now, next_at(o, now)) for o in outcomes]
            fenced = update.where(
                ledger.c.company_id == self.company_id, ledger.c.lease_owner == self.owner
            )
            held = self._updated(conn, fenced, rows, now)
        return [o for o in outcomes if o.customer_id in held]

    def forget_unsent(self, customer_ids: Sequence[str], now: datetime) -> int:
        """Drop the ledger rows of these customers (whose source row is gone) where nothing
        was ever sent for them and no run holds them; return how many were dropped."""
        if not customer_ids:
            return 0
        c = ledger.c
        stmt = ledger.delete().where(
            c.company_id == self.company_id,
            c.customer_id.in_(list(customer_ids)),
            c.attempted_at.is_(None),
            c.doubt_since.is_(None),
            c.sync_id.is_(None),
            eligible(now),
        )
        with self.engine.begin() as conn:
            return int(conn.execute(stmt).rowcount)

    def _unclaimed(self, outcomes: Sequence[Outcome]) -> list[Outcome]:
        """Return the outcomes, those adopting a record another customer holds made IN_DOUBT:
        one in the ledger already, or one earlier in these outcomes (two lookups of one batch,
        its halves or its attempts, can each match the same record)."""
        taken = self.known_rootfi_ids(o.rootfi_id for o in outcomes if o.rootfi_id is not None)
        kept = []
        for o in outcomes:
            if o.rootfi_id is not None and o.rootfi_id in taken:
                error = f"RootFi record {o.rootfi_id} already belongs to another customer"
                o = Outcome(o.customer_id, Status.IN_DOUBT, error=error)
            elif o.rootfi_id is not None:
                taken.add(o.rootfi_id)
            kept.append(o)
        return kept


@functools.cache
def _vouch_query(dialect: str, margin: float) -> sa.Select[Any]:
    """`Ledger.vouch`'s read, built once per dialect and margin (it runs before every POST)."""
    c = ledger.c
    return sa.select(c.customer_id, db_clock(dialect).label("now")).where(
        c.company_id == sa.bindparam("b_company"),
        c.lease_owner == sa.bindparam("b_owner"),
        c.lease_expires_at > db_clock(dialect, margin),
        c.customer_id.in_(sa.bindparam("b_ids", expanding=True)),
    )


def _split_keys(value: str | None) -> tuple[str, ...]:
    return tuple(value.split()) if value else ()


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
