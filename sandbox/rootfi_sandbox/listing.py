"""Paging: `GET /v3/ecommerce/customers`'s filters, sort and keyset cursors, and the
position cursors of the other lists (companies, syncs, jobs); `parse_limit` serves every list.

A `next` cursor is URL-safe base64 of JSON holding the last sort key handed out
(rootfi_updated_at in ms, rootfi_id) and the filters and sort it was made under, so
following it is a bisect and stays correct while customers are being added.
"""

from __future__ import annotations

import base64
import binascii
import json
from bisect import bisect_left, bisect_right
from collections.abc import Mapping
from dataclasses import dataclass
from operator import attrgetter
from typing import Any

from rootfi_sandbox.errors import ApiError, invalid
from rootfi_sandbox.models import Customer
from rootfi_sandbox.timefmt import ms_from_iso

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
COMPANY = "rootfi_company_id[eq]"
UPDATED_GTE = "rootfi_updated_at[gte]"
SORT = "sort[rootfi_updated_at]"
SORT_CREATED = "sort[rootfi_created_at]"
FIRST_POSITION = base64.urlsafe_b64encode(b"0").decode()


@dataclass(frozen=True, slots=True)
class ListQuery:
    """One page request: filters, sort direction, page size and where to resume."""

    company_id: int | None = None
    updated_gte_ms: int | None = None
    descending: bool = False
    limit: int = DEFAULT_LIMIT
    after: tuple[int, int] | None = None
    return_count: bool = False


@dataclass(frozen=True, slots=True)
class Page:
    """The customers of one page, the cursor of the next one, the total when asked."""

    customers: list[Customer]
    next: str | None
    total_count: int | None


def parse_limit(params: Mapping[str, str], default: int = DEFAULT_LIMIT) -> int:
    """The `limit` query parameter of every list: `default` when absent, else 1..MAX_LIMIT."""
    raw = params.get("limit")
    if raw is None:
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise invalid("limit must be an integer", "limit") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise invalid(f"limit must be between 1 and {MAX_LIMIT}", "limit")
    return limit


def _parse_filters(params: Mapping[str, str]) -> tuple[int | None, int | None, bool]:
    company_id = gte = None
    if (raw := params.get(COMPANY)) is not None:
        try:
            company_id = int(raw)
        except ValueError:
            raise invalid(f"{COMPANY} must be an integer", "rootfi_company_id") from None
    if (raw := params.get(UPDATED_GTE)) is not None:
        try:
            gte = ms_from_iso(raw)
        except ValueError:
            raise invalid(f"{UPDATED_GTE} must be ISO 8601", "rootfi_updated_at") from None
    return company_id, gte, _descending(params)


def _descending(params: Mapping[str, str]) -> bool:
    """The sort direction; by rootfi_created_at is the same order as by rootfi_updated_at here
    (customers are never updated), so either parameter sets it, and two that differ are a 400."""
    sorts = {name: params[name].upper() for name in (SORT, SORT_CREATED) if name in params}
    for name, sort in sorts.items():
        if sort not in ("ASC", "DESC"):
            raise invalid(f"{name} must be ASC or DESC", "sort")
    if len(set(sorts.values())) > 1:
        raise invalid(f"{SORT} and {SORT_CREATED} ask for different orders", "sort")
    return "DESC" in sorts.values()


def not_imitated(params: Mapping[str, str], names: tuple[str, ...]) -> None:
    """A 400 NOT_IMITATED naming the first of these query parameters that was given."""
    for name in names:
        if params.get(name):
            message = f"{name} is not imitated by the sandbox (see its README)"
            raise ApiError(400, "NOT_IMITATED", message, name)


def include_deleted(params: Mapping[str, str]) -> None:
    """`include_deleted_records`: true or false; either lists the same (nothing is deleted)."""
    raw = params.get("include_deleted_records")
    if raw is not None and raw.lower() not in ("true", "false"):
        raise invalid("include_deleted_records must be true or false", "include_deleted_records")


def encode_cursor(query: ListQuery, key: tuple[int, int]) -> str:
    """The opaque `next` cursor after the customer whose sort key is `key`."""
    state = [query.company_id, query.updated_gte_ms, query.descending, *key]
    return base64.urlsafe_b64encode(json.dumps(state).encode()).decode()


def first_page_cursor(query: ListQuery) -> str:
    """A `next` cursor that leads to the first page of `query` again (for `repeat_cursor`)."""
    before_all = (2**62, 2**62) if query.descending else (-1, -1)
    return encode_cursor(query, before_all)


def _decode_cursor(cursor: str) -> tuple[int | None, int | None, bool, tuple[int, int]]:
    try:
        company_id, gte, descending, ms, rid = json.loads(base64.urlsafe_b64decode(cursor))
        ok = all(isinstance(v, int | None) for v in (company_id, gte)) and isinstance(
            descending, bool
        )
        if not ok or type(ms) is not int or type(rid) is not int:
            raise ValueError
    except (ValueError, TypeError, binascii.Error):
        raise invalid("next is not a cursor this API handed out", "next") from None
    return company_id, gte, descending, (ms, rid)


def parse_list_query(params: Mapping[str, str]) -> ListQuery:
    """Read the query string; a `next` cursor carries (and overrides) filters and sort."""
    not_imitated(params, ("prev", "select"))
    include_deleted(params)
    limit = parse_limit(params)
    return_count = params.get("return_count", "").lower() == "true"
    cursor = params.get("next")
    if cursor:
        company_id, gte, descending, after = _decode_cursor(cursor)
        return ListQuery(company_id, gte, descending, limit, after, return_count)
    company_id, gte, descending = _parse_filters(params)
    return ListQuery(company_id, gte, descending, limit, None, return_count)


_key = attrgetter("key")  # Customer.key: (updated_ms, rootfi_id)


def page_of(customers: list[Customer], query: ListQuery) -> Page:
    """Slice one page out of customers sorted by (updated_ms, rootfi_id)."""
    low = 0
    if query.updated_gte_ms is not None:
        low = bisect_left(customers, (query.updated_gte_ms, -1), key=_key)
    total = len(customers) - low if query.return_count else None
    if query.descending:
        high = len(customers)
        if query.after is not None:
            high = bisect_left(customers, query.after, key=_key)
        start = max(low, high - query.limit)
        chunk = customers[start:high][::-1]
        more = start > low
    else:
        start = low
        if query.after is not None:
            start = max(low, bisect_right(customers, query.after, key=_key))
        chunk = customers[start : start + query.limit]
        more = start + query.limit < len(customers)
    cursor = encode_cursor(query, chunk[-1].key) if more and chunk else None
    return Page(chunk, cursor, total)


def page_json(page: Page) -> dict[str, Any]:
    """The answer body."""
    return {
        "data": [customer.record for customer in page.customers],
        "next": page.next,
        "prev": None,
        "total_count": page.total_count,
    }


def window(params: Mapping[str, str], default_limit: int) -> tuple[int, int]:
    """(limit, index to start at) of a list paged by position; `next` is base64 of that index."""
    limit = parse_limit(params, default_limit)
    cursor = params.get("next")
    if not cursor:
        return limit, 0
    try:
        start = int(base64.urlsafe_b64decode(cursor))
    except (ValueError, binascii.Error):
        raise invalid("next is not a valid cursor", "next") from None
    return limit, max(0, start)


def next_position(end: int, total: int) -> str | None:
    """The `next` cursor of a page that ends before index `end`, or None on the last page."""
    return base64.urlsafe_b64encode(str(end).encode()).decode() if end < total else None


def repeated_cursor(asked: str | None, following: str | None, first: str) -> str:
    """The `next` the `repeat_cursor` fault hands back: the cursor asked with, else the one a
    page would give, else the first page's, so a client that follows it never gets further."""
    return asked or following or first
