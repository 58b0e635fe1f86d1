"""What a run may take when the ledger is in a database of its own (LEDGER_DATABASE_URL).

The source is then only read, and no query can join it to the ledger. So the source's keys
are read a page at a time (keyset, in key order, as `source.fetch_page` reads rows), each
page's keys are looked up in the ledger with one `IN (...)` query, and only the rows of the
keys a run may take are then read whole. A customer is pending while the ledger has no row
for it, or a row that a run may take now (`takeable`, as the same-database join decides).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa

from rootfi_sync.source import fetch_page
from rootfi_sync.tables import ledger

SCAN_PAGE = 5000
"""Source keys read, and looked up in the ledger, per query: a table whose customers are
nearly all synced is read in few round trips, with IN lists that every database takes."""

KNOWN = ("_status", "_attempts", "_attempted_at", "_source_hash")
"""What a candidate row carries of its ledger row (None for each: no ledger row yet)."""

Lookup = Callable[[list[str]], Mapping[str, sa.RowMapping]]


@dataclass(slots=True)
class Scan:
    """The keys a run may take (in key order), what the ledger knows of each, and the key
    to go on after (None: the source has no key after where the scan started)."""

    keys: list[Any] = field(default_factory=list)
    known: dict[str, sa.RowMapping] = field(default_factory=dict)
    last_id: Any = None


def scan(
    conn: sa.Connection,
    keys: sa.Select[Any],
    key: sa.ColumnElement[Any],
    lookup: Lookup,
    *,
    after: Any,
    limit: int,
) -> Scan:
    """Return up to `limit` pending keys of query `keys` after `after`, reading on until
    that many are found or the source ends."""
    found = Scan()
    while len(found.keys) < limit:
        page = fetch_page(conn, keys, key, after, SCAN_PAGE)
        if not page:
            break
        ids = list(dict.fromkeys(row["id"] for row in page))  # a key shared by rows: once
        known = lookup([str(k) for k in ids])
        for value in ids:
            row = known.get(str(value))
            if row is None or row["_takeable"]:
                found.keys.append(value)
                if row is not None:
                    found.known[str(value)] = row
                if len(found.keys) == limit:
                    ids = ids[: ids.index(value) + 1]
                    break
        after = found.last_id = ids[-1]
    return found


def lookup_in(
    conn: sa.Connection, company_id: int, takeable: sa.ColumnElement[bool], longest: int
) -> Lookup:
    """Return a lookup of customer ids in the company's ledger: their rows, each with what
    `_add` reads and whether a run may take it now (`_takeable`).

    Ids longer than the ledger holds (`longest`) cannot be in it: they are not asked for.
    """
    c = ledger.c
    columns = (
        c.customer_id,
        c.status.label("_status"),
        c.attempts.label("_attempts"),
        c.attempted_at.label("_attempted_at"),
        c.source_hash.label("_source_hash"),
        takeable.label("_takeable"),
    )

    def look(ids: list[str]) -> Mapping[str, sa.RowMapping]:
        asked = [i for i in ids if len(i) <= longest]
        if not asked:
            return {}
        query = sa.select(*columns).where(c.company_id == company_id, c.customer_id.in_(asked))
        return {row["customer_id"]: row for row in conn.execute(query).mappings()}

    return look


def with_known(row: Mapping[Any, Any], known: Mapping[Any, Any] | None) -> dict[Any, Any]:
    """Return a source row with its ledger row's fields, as the same-database join reads it."""
    return dict(row) | {k: None if known is None else known[k] for k in KNOWN}
