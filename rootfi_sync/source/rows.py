"""Reading the source table: keyset pages, keys of any type, rows that share a key.

The key (our column `id`) may be an integer up to BIGINT, text or a UUID, and a view or a
table without a primary key may hold it NULL, or more than once. Pages are keyset pages:
ORDER BY the key and `key > the last key read`, that key handed back exactly as it was read
(the columns are `tables.Raw`), so the comparison is the column's own, whatever its type.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, TypeVar

import sqlalchemy as sa

Row = TypeVar("Row", bound=Mapping[Any, Any])

_PARSERS: dict[type, Callable[[str], Any]] = {
    int: int,
    str: str,
    uuid.UUID: uuid.UUID,
    Decimal: Decimal,
    float: float,
}


def key_values(given: Iterable[Any], sample: Any) -> tuple[list[Any], list[Any]]:
    """Return (the given ids as values of the key's type, the ids that cannot be one).

    The key's type is that of `sample`, a key read from the table (None: the table has none,
    so the ids are kept as given). A command line gives every id as text, and PostgreSQL
    refuses to compare a bigint column with `'C-1'`: such an id is left out, not sent.
    """
    parse = _PARSERS.get(type(sample))
    values: list[Any] = []
    unknown: list[Any] = []
    for value in given:
        if parse is None or type(value) is type(sample):
            values.append(value)
            continue
        try:
            values.append(parse(str(value)))
        except (ValueError, ArithmeticError):  # decimal.InvalidOperation is an ArithmeticError
            unknown.append(value)
    return values, unknown


def rows_by_key(rows: Iterable[Row]) -> dict[str, list[Row]]:
    """Group rows by their key as text (their id in the ledger), in order of first sight."""
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(str(row["id"]), []).append(row)
    return groups


def fetch_page(
    conn: sa.Connection, query: sa.Select[Any], key: sa.ColumnElement[Any], after: Any, limit: int
) -> tuple[list[sa.RowMapping], bool]:
    """Return the next keyset page of `query`, after key `after`, with all rows of its last
    key, and whether rows may follow it (False: the query has no row after this page).

    LIMIT counts rows, so rows sharing the page's last key may go on past it; the next page
    starts after that key, so they are fetched now or never. One row more than the page
    tells whether any do, and whether the query ends here.
    """
    ordered = query.order_by(key)
    page = ordered if after is None else ordered.where(key > after)
    rows = list(conn.execute(page.limit(limit + 1)).mappings())
    if len(rows) <= limit:
        return rows, False
    if rows[limit]["id"] != rows[limit - 1]["id"]:
        return rows[:limit], True
    last = rows[limit - 1]["id"]
    rest = conn.execute(ordered.where(key == last)).mappings()
    return [row for row in rows[:limit] if row["id"] != last] + list(rest), True


def keys_asked(
    conn: sa.Connection, key: sa.ColumnElement[Any], only: Sequence[Any]
) -> tuple[list[Any] | None, list[Any]]:
    """Return the ids asked for as keys (None: none asked for) and those that cannot be.

    The key's type is seen in a key read from the table.
    """
    if not only:
        return None, []
    sample = conn.execute(sa.select(key).where(key.is_not(None)).limit(1)).scalar()
    return key_values(only, sample)


def count_keyless(conn: sa.Connection, source: sa.Table, company_id: int) -> int:
    """Return how many of the company's source rows have no key (NULL): none can be synced."""
    query = sa.select(sa.func.count()).select_from(source).where(source.c.id.is_(None))
    if "company_id" in source.c:
        query = query.where(source.c.company_id == company_id)
    return int(conn.execute(query).scalar_one())


def source_hash(row: Mapping[str, Any]) -> str:
    """Return a fingerprint of a source row, to notice when it changes; any value will do."""
    plain = {k: _plain(row[k]) for k in sorted(row)}
    text = json.dumps(plain, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _plain(value: Any) -> Any:
    """Return a value whose `str` says what it holds (a memoryview's gives its address)."""
    return bytes(value) if isinstance(value, memoryview | bytearray) else value


def copies_hash(rows: Sequence[Mapping[str, Any]]) -> str:
    """Return a fingerprint of rows that share a key, whatever order they were read in."""
    return source_hash({"copies": sorted(source_hash(row) for row in rows)})
