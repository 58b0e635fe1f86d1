"""Reading the ledger: which customers a run may take, and what the ledger says of them.

`LedgerReader` pages through the source joined to the ledger (the candidates of a run, their
count), or, with the ledger in a database of its own, scans the two side by side
(`rootfi_sync.ledger.pending`). The functions below it answer `rootfi-sync status`. Everything that
changes a ledger row is in `rootfi_sync.ledger.writing`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from rootfi_sync.ledger.pending import estimate, lookup_in, scan, with_known
from rootfi_sync.ledger.statements import CHUNK, eligible
from rootfi_sync.ledger.tables import ledger
from rootfi_sync.outcomes import DUPLICATE, SOURCE_DELETED, Status
from rootfi_sync.source.rows import (
    copies_hash,
    count_keyless,
    fetch_page,
    keys_asked,
    rows_by_key,
    source_hash,
)
from rootfi_sync.source.transform import COPIES

WAITING = (Status.CLAIMED, Status.SENDING, Status.IN_DOUBT, Status.RETRY)
"""The states a customer waits in for a run (`eligible` says when)."""

KEY_MAX: int = getattr(ledger.c.customer_id.type, "length", None) or 255
"""The longest key (as text) the ledger's `customer_id` holds."""


@dataclass(frozen=True, slots=True)
class Candidate:
    """A source row that may be synced, with what the ledger knows of it."""

    row: dict[str, Any]
    source_hash: str
    attempts: int
    attempted_at: datetime | None  # the last moment a request for it may have left
    doubt_since: datetime | None = None  # first attempt not resolved yet, if any
    sent_keys: tuple[str, ...] = ()  # match keys of the payloads sent since then
    sync_id: str | None = None  # the async write that holds it, until that write is final
    status: str | None = None  # its ledger state when read (None: no ledger row yet)
    attempt_mode: str | None = None  # the write mode of its last request (its settle time)

    @property
    def customer_id(self) -> str:
        return str(self.row["id"])


@dataclass(slots=True)
class Page:
    """Candidates, the key to go on after, rows with a key the ledger cannot hold (NULL:
    counted on the first page, or too long) and asked-for ids that cannot be keys; for a page
    of `LedgerReader.orphans`, the customers whose source row is gone and nothing was sent."""

    candidates: list[Candidate] = field(default_factory=list)
    last_id: Any = None
    invalid_keys: int = 0
    unknown_ids: list[Any] = field(default_factory=list)
    unsent: list[str] = field(default_factory=list)  # orphans nothing was sent for
    ended: bool = False  # no row a run may take follows this page: asking again finds none


class LedgerReader:
    """Reads the ledger of one company, for one run (`owner`), in `engine`'s database.

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
        return f"{type(self).__name__}(company_id={self.company_id}, owner={self.owner!r})"

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
            sa.or_(c.status.is_(None), c.status == Status.FAILED, eligible(now)),
        )
        if only is not None:
            query = query.where(src.c.id.in_(only))
        if "company_id" in src.c:
            query = query.where(src.c.company_id == self.company_id)
        return query

    def _takeable(self, now: datetime) -> sa.ColumnElement[bool]:
        """The ledger rows a run may take now, parked FAILED ones included."""
        return sa.or_(ledger.c.status == Status.FAILED, eligible(now))

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
            rows, more = fetch_page(conn, query, src.c.id, after, limit)
            page = Page(last_id=rows[-1]["id"] if rows else None, ended=not more)
            if after is None:
                page.unknown_ids = unknown
                page.invalid_keys = count_keyless(conn, src, self.company_id) if not only else 0
        for copies in rows_by_key(rows).values():
            self._add(page, copies)
        return page

    def _candidates_apart(
        self, source: sa.Engine, now: datetime, after: Any, limit: int, only: Sequence[Any]
    ) -> Page:
        """`candidates` with the ledger in a database of its own (`rootfi_sync.ledger.pending`)."""
        key = self.source.c.id
        with source.connect() as conn, self.engine.connect() as book:
            keys, unknown = keys_asked(conn, key, only)
            rows = self._source_rows(keys)
            look = lookup_in(book, self.company_id, self._takeable(now))
            found = scan(conn, rows.with_only_columns(key), key, look, after=after, limit=limit)
            whole = rows.where(key.in_(found.keys)).order_by(key)
            taken = list(conn.execute(whole).mappings()) if found.keys else []
            page = Page(last_id=found.last_id, ended=found.ended)
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

    def any_waiting(self, now: datetime) -> bool:
        """Whether the company has a ledger row a run may take now that is still waiting
        (claimed, sending, in doubt or to retry): without one `orphans` has nothing to find.
        One indexed EXISTS, for a run to skip the orphans pass."""
        waiting = sa.select(ledger.c.customer_id).where(*self._waiting(now))
        with self.engine.connect() as book:
            return bool(book.execute(sa.select(waiting.exists())).scalar())

    def _waiting(self, now: datetime) -> tuple[sa.ColumnElement[bool], ...]:
        """The company's ledger rows still waiting that a run may take now (through its
        (company, status) index): what `orphans` pages through."""
        c = ledger.c
        return (c.company_id == self.company_id, c.status.in_(WAITING), eligible(now))

    def orphans(self, now: datetime, *, after: str | None = None, limit: int = 100) -> Page:
        """Return the next page (in customer id order after `after`) of the customers a run may
        take now whose source row is gone: those a request may have left for (`attempted_at`
        or `doubt_since` set) as candidates to look up, never to send (`rootfi_sync.run.orphans`),
        and those never sent in `unsent`.

        The ledger's rows a run may take are read through its (company, status) index, then
        their keys in the source through its key, in either layout: no join on a cast key.
        """
        c = ledger.c
        query = (
            sa.select(
                c.customer_id, c.status, c.attempts, c.attempted_at, c.doubt_since, c.source_hash
            )
            .where(*self._waiting(now))
            .order_by(c.customer_id)
            .limit(limit)
        )
        if after is not None:
            query = query.where(c.customer_id > after)
        with self.engine.connect() as book:
            rows = book.execute(query).all()
        page = Page(last_id=rows[-1].customer_id if rows else None, ended=len(rows) < limit)
        present = self._present([r.customer_id for r in rows])
        for r in rows:
            if r.customer_id in present:
                continue
            if r.attempted_at is None and r.doubt_since is None:
                page.unsent.append(r.customer_id)
                continue
            row = {"id": r.customer_id}  # the claim keeps the ledger's fingerprint of it
            page.candidates.append(
                Candidate(row, r.source_hash, r.attempts, r.attempted_at, status=r.status)
            )
        return page

    def _present(self, customer_ids: list[str]) -> set[str]:
        """Return which of these customer ids have a row in the company's source."""
        if not customer_ids:
            return set()
        key = self.source.c.id
        with (self.source_engine or self.engine).connect() as conn:
            keys, _ = keys_asked(conn, key, customer_ids)
            if not keys:  # none of these could be a key of the table
                return set()
            query = self._source_rows(keys).with_only_columns(key)
            return {str(k) for k in conn.execute(query).scalars()}

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
    query = sa.select(c.customer_id, c.company_id, c.attempts, c.last_error, c.updated_at)
    return _newest(engine, query.where(c.status == Status.FAILED), company_id, limit)


def needing_a_look(engine: sa.Engine, company_id: int | None, limit: int = 20) -> list[Any]:
    """Return the customers to look at in RootFi, newest first: created with their id unknown,
    synced ones whose lookup found duplicates (their `last_error` names the records), and
    those parked because their source row was deleted while in doubt and RootFi had none."""
    c = ledger.c
    duplicate = sa.and_(c.status == Status.SYNCED, c.last_error.like(f"%{DUPLICATE}%"))
    deleted = sa.and_(c.status == Status.FAILED, c.last_error.like(f"%{SOURCE_DELETED}%"))
    query = sa.select(
        c.customer_id, c.company_id, c.status, c.rootfi_id, c.sync_id, c.last_error
    ).where(sa.or_(c.status == Status.CREATED_UNKNOWN, duplicate, deleted))
    return _newest(engine, query, company_id, limit)


def _newest(
    engine: sa.Engine, query: sa.Select[Any], company_id: int | None, limit: int
) -> list[Any]:
    """Run a ledger listing for one company (or all), the most recently updated rows first."""
    query = query.order_by(ledger.c.updated_at.desc()).limit(limit)
    if company_id is not None:
        query = query.where(ledger.c.company_id == company_id)
    with engine.connect() as conn:
        return list(conn.execute(query))
