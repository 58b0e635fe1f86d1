"""What a run may take when the ledger is in a database of its own (LEDGER_DATABASE_URL).

The source is then only read, and no query can join it to the ledger. So the source's keys
are read a page at a time (keyset, in key order), each page's keys are looked up in the
ledger with one query, and only the rows of the keys a run may take are then read whole.
A customer is pending while the ledger has no row for it, or a row that a run may take now
(`takeable`, as the same-database join decides).

The lookup is the same-database anti-join, run in the ledger's database against the page's
keys, sent as one parameter (SQLite: a JSON array, `json_each`; PostgreSQL: an array,
`unnest`): it returns only the pending keys, a few in an incremental run. Elsewhere
(MySQL/MariaDB) it is an `IN (...)` list, which returns every key the ledger knows, and
Python keeps the pending ones: the same answer, with more rows to read.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from rootfi_sync.ledger.tables import ledger

SCAN_PAGE = 5000
"""Source keys read, and looked up in the ledger, per query: a table whose customers are
nearly all synced is read in few round trips, with parameters every database takes."""

KNOWN = ("_status", "_attempts", "_attempted_at", "_source_hash")
"""What a candidate row carries of its ledger row (None for each: no ledger row yet)."""

KeyQuery = Callable[[list[str]], Mapping[str, Mapping[Any, Any]]]
"""A ledger query: customer ids -> those a run may take, each with what the ledger knows of it
(`KNOWN`)."""


@dataclass(slots=True)
class Scan:
    """The keys a run may take (in key order), what the ledger knows of each, the key to go
    on after (None: the source has no key after where the scan started), and whether the
    scan read the source to its end."""

    keys: list[Any] = field(default_factory=list)
    known: dict[str, Mapping[Any, Any]] = field(default_factory=dict)
    last_id: Any = None
    ended: bool = False


def scan(
    conn: sa.Connection,
    keys: sa.Select[Any],
    key: sa.ColumnElement[Any],
    lookup: KeyQuery,
    *,
    after: Any,
    limit: int,
) -> Scan:
    """Return up to `limit` pending keys of query `keys` after `after`, reading on until
    that many are found or the source ends.

    Keys come back as read (the column is `tables.Raw`), to be compared again as they are.
    """
    found = Scan()
    while len(found.keys) < limit:
        page = keys.order_by(key).limit(SCAN_PAGE)
        if after is not None:
            page = page.where(key > after)
        ids = list(dict.fromkeys(conn.execute(page).scalars().all()))  # shared keys: once
        if not ids:
            found.ended = True
            break
        pending = lookup([str(k) for k in ids])
        for value in ids:
            if str(value) in pending:
                found.keys.append(value)
                found.known[str(value)] = pending[str(value)]
                if len(found.keys) == limit:
                    ids = ids[: ids.index(value) + 1]
                    break
        after = found.last_id = ids[-1]
    return found


def lookup_in(conn: sa.Connection, company_id: int, takeable: sa.ColumnElement[bool]) -> KeyQuery:
    """Return the lookup of customer ids in the company's ledger, through `conn`."""
    c = ledger.c
    known = (
        c.status.label("_status"),
        c.attempts.label("_attempts"),
        c.attempted_at.label("_attempted_at"),
        c.source_hash.label("_source_hash"),
    )
    relation = _page_keys(conn)
    if relation is None:
        query = sa.select(c.customer_id, *known, takeable.label("_takeable")).where(
            c.company_id == company_id, c.customer_id.in_(sa.bindparam("ids", expanding=True))
        )
        return lambda ids: _pending_of_present(conn, query, ids)
    keys, encode = relation
    joined = keys.outerjoin(
        ledger, sa.and_(c.customer_id == keys.c.value, c.company_id == company_id)
    )
    query = (
        sa.select(keys.c.value, *known)
        .select_from(joined)
        .where(sa.or_(c.customer_id.is_(None), takeable))
    )
    return lambda ids: {
        row["value"]: row for row in conn.execute(query, {"ids": encode(ids)}).mappings()
    }


def _page_keys(conn: sa.Connection) -> tuple[Any, Callable[[list[str]], Any]] | None:
    """A page's ids as a table of one column, `value`, from one parameter `ids`, and how to
    send them; None where the database has no such function."""
    dialect = conn.dialect.name
    if dialect == "sqlite" and sqlite_has_json_each():
        ids = sa.bindparam("ids", type_=sa.String)
        return sa.func.json_each(ids).table_valued("value").alias("page_keys"), json.dumps
    if dialect == "postgresql":
        array = sa.bindparam("ids", type_=postgresql.ARRAY(sa.String))
        keys = sa.func.unnest(array).table_valued("value").render_derived(name="page_keys")
        return keys, list
    return None


@cache
def sqlite_has_json_each() -> bool:
    """Whether this process's SQLite has JSON1 (built in since 3.38; most earlier builds had
    it too). One library serves every connection: asked once, not on every page."""
    with closing(sqlite3.connect(":memory:")) as db:
        try:
            db.execute("SELECT count(*) FROM json_each('[]')")
        except sqlite3.OperationalError:
            return False
    return True


def _pending_of_present(
    conn: sa.Connection, query: sa.Select[Any], ids: list[str]
) -> dict[str, Mapping[Any, Any]]:
    """The ids the ledger has no row for, or one a run may take (an IN list of every id)."""
    present = {row["customer_id"]: row for row in conn.execute(query, {"ids": ids}).mappings()}
    absent = dict.fromkeys(KNOWN)
    return {i: present.get(i, absent) for i in ids if i not in present or present[i]["_takeable"]}


def estimate(
    conn: sa.Connection,
    rows: sa.Select[Any],
    book: sa.Connection,
    company_id: int,
    takeable: sa.ColumnElement[bool],
    keys: list[Any] | None,
) -> int:
    """Return about how many of the source's `rows` are pending: their count less the
    company's ledger rows a run may not take (of `keys` only, if given). Exact while every
    ledger row has its source row; what a run's progress needs, without reading every key."""
    c = ledger.c
    count = rows.with_only_columns(sa.func.count(), maintain_column_froms=True)
    settled = sa.select(sa.func.count()).where(c.company_id == company_id, sa.not_(takeable))
    if keys is not None:
        settled = settled.where(c.customer_id.in_([str(k) for k in keys]))
    total = int(conn.execute(count).scalar_one())
    return max(0, total - int(book.execute(settled).scalar_one()))


def with_known(row: Mapping[Any, Any], known: Mapping[Any, Any] | None) -> dict[Any, Any]:
    """Return a source row with its ledger row's fields, as the same-database join reads it."""
    return dict(row) | {k: None if known is None else known[k] for k in KNOWN}
