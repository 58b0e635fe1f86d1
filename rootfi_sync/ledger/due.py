"""Which companies have work due now: what a scheduled fan-out over companies starts runs for.

A company has work due when its source holds a customer the ledger has no row for (new; a key
longer than KEY_MAX is not one: runs skip it, `ledger.reading`), or
the ledger holds a row of it that a run may take now (`statements.eligible`: a claim or an
intent whose lease ran out, a retry, a lookup or a sync poll whose time has come; read from
the ledger alone, so a customer whose source row was deleted while in doubt is work due too,
and a run settles it: `rootfi_sync.run.orphans`). A parked
FAILED row is not work due: one whose source row changed is taken again the next time its
company has a run, or at once after `rootfi-sync retry` (which makes it a RETRY).

With the ledger beside the source this is one query: the source anti-joined to the ledger on
its primary key (customer, company), grouped by the source's company column (indexed), and
the ledger's eligible rows grouped by company. With the ledger in a database of its own the
source's (company, key) pairs are streamed once and anti-joined to the ledger a page at a
time (sent as one parameter, as `rootfi_sync.ledger.pending` sends a page of keys: only the missing
come back, counted here by company); the eligible rows are the same query on the ledger alone.

Each company's `oldest` is when its oldest work fell due, what a fan-out orders companies by
when the key's budget cannot cover a tick (`rootfi_sync.run.budget`): the earliest `created_at` of
its new source rows (the ledger has nothing on them yet), or the earliest moment one of its
eligible ledger rows fell due (its `next_attempt_at`, else its lease's end, else its
`updated_at`), whichever is earlier. With the ledger beside the source both are read in the
same query as the counts: MIN over the rows the anti-join and the eligible filter already
visit (no index added; the company index alone no longer covers the source's side). With the
ledger apart, the `created_at` of the new rows alone is read afterwards, by key, a thousand
at a time. bench/RESULTS.md has the cost. A `created_at` that is NULL or no timestamp counts
as unknown; a company with nothing known is `oldest=None`, taken as having waited longest.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from rootfi_sync.ledger.pending import sqlite_has_json_each
from rootfi_sync.ledger.reading import KEY_MAX
from rootfi_sync.ledger.statements import eligible
from rootfi_sync.ledger.tables import ledger
from rootfi_sync.source.transform import moment_or_none

PAIRS_PAGE = 2000
"""Source (company, key) pairs looked up in a separate ledger per query: 4,000 parameters,
within every database's limit."""
CREATED_PAGE = 1000
"""Keys of new rows whose `created_at` is read from a source apart from the ledger per query."""


@dataclass(frozen=True, slots=True)
class Due:
    """One company's work due: customers with no ledger row yet, and ledger rows a run may
    take now."""

    company_id: int
    new: int = 0
    waiting: int = 0
    oldest: datetime | None = None

    @property
    def customers(self) -> int:
        """Return how many customers a run of the company would take (about)."""
        return self.new + self.waiting


def due_work(
    engine: sa.Engine,
    source: sa.Table,
    now: datetime,
    *,
    source_engine: sa.Engine | None = None,
    companies: Sequence[int] | None = None,
) -> list[Due]:
    """Return the companies with work due at `now` (of `companies` only, if given), by id.

    `engine` is the ledger's database, and the source's unless `source_engine` is given.
    The source must have a company column (SOURCE_COMPANY_COLUMN).
    """
    new: Counter[int] = Counter()
    waiting: Counter[int] = Counter()
    oldest = _Oldest()
    if source_engine is None:
        query = sa.union_all(_new_rows(source, companies), _waiting_rows(now, companies)).subquery()
        with engine.connect() as conn:
            for company, kind, count, moment in conn.execute(sa.select(query)):
                (new if kind == "new" else waiting)[int(company)] += int(count)
                oldest.see(int(company), moment_or_none(moment))
    else:
        with source_engine.connect() as src, engine.connect() as book:
            new.update(_new_apart(src, book, source, companies, oldest))
            for company, _kind, count, moment in book.execute(_waiting_rows(now, companies)):
                waiting[int(company)] += int(count)
                oldest.see(int(company), moment_or_none(moment))
    companies_due = sorted(new.keys() | waiting.keys())
    return [Due(c, new[c], waiting[c], oldest.get(c)) for c in companies_due]


class _Oldest(dict[int, datetime]):
    """The earliest known moment per company."""

    def see(self, company: int, moment: datetime | None) -> None:
        if moment is not None and (company not in self or moment < self[company]):
            self[company] = moment


def _new_rows(source: sa.Table, companies: Sequence[int] | None) -> sa.Select[Any]:
    """Per company, its source rows (with a key a ledger row can hold) that have no ledger
    row: one anti-join."""
    src, c = source, ledger.c
    key = sa.cast(src.c.id, sa.String)
    joined = src.outerjoin(ledger, sa.and_(c.customer_id == key, c.company_id == src.c.company_id))
    query = (
        sa.select(
            src.c.company_id, sa.literal("new"), sa.func.count(), sa.func.min(src.c.created_at)
        )
        .select_from(joined)
        .where(
            src.c.id.is_not(None),
            src.c.company_id.is_not(None),
            sa.func.char_length(key) <= KEY_MAX,  # a longer key is never taken: no run for it
            c.customer_id.is_(None),
        )
        .group_by(src.c.company_id)
    )
    return query if companies is None else query.where(src.c.company_id.in_(companies))


def _waiting_rows(now: datetime, companies: Sequence[int] | None) -> sa.Select[Any]:
    """Per company, its ledger rows that a run may take now (`eligible`), and the earliest
    moment one of them fell due."""
    c = ledger.c
    fell_due = sa.func.coalesce(c.next_attempt_at, c.lease_expires_at, c.updated_at)
    query = (
        sa.select(c.company_id, sa.literal("waiting"), sa.func.count(), sa.func.min(fell_due))
        .where(eligible(now))
        .group_by(c.company_id)
    )
    return query if companies is None else query.where(c.company_id.in_(companies))


def _new_apart(
    src: sa.Connection,
    book: sa.Connection,
    source: sa.Table,
    companies: Sequence[int] | None,
    oldest: _Oldest,
) -> Counter[int]:
    """Per company, its source rows with no row in the ledger's own database (and, into
    `oldest`, the earliest `created_at` among them: read afterwards for those rows alone, so
    the pass over every source row reads no more than the keys)."""
    new: Counter[int] = Counter()
    absent: list[Any] = []
    missing = _missing_query(book.dialect.name)
    for page in _source_pairs(src, source, companies):
        pairs = list(page)
        if missing is None:
            present = _present(book, pairs)
            lacking = [pair for pair in pairs if pair not in present]
        else:
            query, encode = missing
            found = book.execute(query, encode(pairs))
            lacking = [(int(company), str(key)) for company, key in found]
        for pair in lacking:
            new[pair[0]] += 1
            absent.append(page[pair])
    for keys in (absent[i : i + CREATED_PAGE] for i in range(0, len(absent), CREATED_PAGE)):
        ask = sa.select(source.c.company_id, source.c.created_at).where(source.c.id.in_(keys))
        for company, created in src.execute(ask):
            if company is not None and int(company) in new:
                oldest.see(int(company), moment_or_none(created))
    return new


Encode = Callable[[list[tuple[int, str]]], dict[str, Any]]


def _missing_query(dialect: str) -> tuple[sa.Select[Any], Encode] | None:
    """The anti-join of a page of (company, key) pairs, sent as one parameter, to the ledger
    (the pairs it has no row for come back), and how to send the pairs; None where the
    database has no way to take a list of pairs as a table (then `_present`).

    SQLite: a JSON array of [company, key] (`json_each`); PostgreSQL: two arrays (`unnest`).
    Either way the ledger is probed on its primary key, and only the missing come back.
    """
    c = ledger.c
    company: sa.ColumnElement[Any]
    key: sa.ColumnElement[Any]
    if dialect == "sqlite" and sqlite_has_json_each():
        page = sa.func.json_each(sa.bindparam("pairs", type_=sa.String))
        pairs = page.table_valued("value").alias("page_pairs")
        company = sa.func.json_extract(pairs.c.value, sa.literal_column("'$[0]'"))
        key = sa.func.json_extract(pairs.c.value, sa.literal_column("'$[1]'"))

        def sent(page_pairs: list[tuple[int, str]]) -> dict[str, Any]:
            return {"pairs": json.dumps(page_pairs)}
    elif dialect == "postgresql":
        companies = sa.bindparam("companies", type_=postgresql.ARRAY(sa.BigInteger))
        keys = sa.bindparam("keys", type_=postgresql.ARRAY(sa.String))
        both = sa.func.unnest(companies, keys).table_valued("company", "value")
        pairs = both.render_derived(name="page_pairs")
        company, key = pairs.c.company, pairs.c.value

        def sent(page_pairs: list[tuple[int, str]]) -> dict[str, Any]:
            return {"companies": [p[0] for p in page_pairs], "keys": [p[1] for p in page_pairs]}
    else:
        return None
    joined = pairs.outerjoin(ledger, sa.and_(c.customer_id == key, c.company_id == company))
    query = sa.select(company, key).select_from(joined).where(c.customer_id.is_(None))
    return query, sent


def _source_pairs(
    conn: sa.Connection, source: sa.Table, companies: Sequence[int] | None
) -> Iterator[dict[tuple[int, str], Any]]:
    """Yield the source's (company, key as text) pairs, a page at a time, read in one pass,
    each with its key as the database holds it; a key longer than a ledger row holds
    (KEY_MAX) is left out: runs never take it."""
    query = sa.select(source.c.company_id, source.c.id).where(
        source.c.id.is_not(None), source.c.company_id.is_not(None)
    )
    if companies is not None:
        query = query.where(source.c.company_id.in_(companies))
    result = conn.execution_options(stream_results=True, yield_per=PAIRS_PAGE).execute(query)
    for part in result.partitions(PAIRS_PAGE):
        page = {(int(company), str(key)): key for company, key in part}
        page = {pair: key for pair, key in page.items() if len(pair[1]) <= KEY_MAX}
        if page:
            yield page


def _present(book: sa.Connection, pairs: Sequence[tuple[int, str]]) -> set[tuple[int, str]]:
    """Return which (company, key) pairs the ledger has a row for.

    Asked by key alone, an IN list that every database answers with one seek a key on the
    primary key (customer, company); the companies are matched here. A row-value IN of the
    pairs is a full scan on SQLite, and a second IN list of companies one seek per key and
    company. A key the ledger holds for other companies too brings those rows back as well.
    """
    c = ledger.c
    query = sa.select(c.company_id, c.customer_id).where(
        c.customer_id.in_({key for _company, key in pairs})
    )
    return {(int(company), key) for company, key in book.execute(query)} & set(pairs)
