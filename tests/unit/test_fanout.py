"""How a fan-out groups the companies with work due into child runs, and which companies it
finds the key reaches (one pass over the companies list, stopping early)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from rootfi_sync.errors import SettingsError
from rootfi_sync.ledger.due import Due
from rootfi_sync.rootfi.client import RootFiClient
from rootfi_sync.run.fanout import not_reached, plan_groups, reachable


def due(*sizes: int) -> list[Due]:
    """Companies 1, 2, ... with these many new customers each."""
    return [Due(i, new=n) for i, n in enumerate(sizes, start=1)]


@pytest.mark.parametrize(
    ("sizes", "max_companies", "max_customers", "groups"),
    [
        ((), 3, 10, []),
        ((1, 1, 1, 1, 1), 3, 10, [[1, 2, 3], [4, 5]]),  # bounded by companies
        ((4, 4, 4, 1), 10, 10, [[1, 2], [3, 4]]),  # bounded by customers
        ((1, 50, 1), 10, 10, [[2], [1, 3]]),  # a large company runs alone
        ((10,), 10, 10, [[1]]),  # exactly the bound is large
        ((1,) * 1000, 50, 200, [list(range(i, i + 50)) for i in range(1, 1001, 50)]),
    ],
)
def test_plan_groups_runs_large_companies_alone_and_packs_the_rest_within_both_bounds(
    sizes: tuple[int, ...], max_companies: int, max_customers: int, groups: list[list[int]]
) -> None:
    assert plan_groups(due(*sizes), max_companies, max_customers) == groups


@pytest.mark.parametrize(
    ("companies", "spread", "sizes"),
    [
        (5, 4, [2, 2, 1]),  # five small companies over four parallel runs: two at most each
        (50, 4, [13, 13, 13, 11]),
        (3, 4, [1, 1, 1]),
        (1000, 4, [50] * 20),  # max_companies still bounds a run
    ],
)
def test_plan_groups_spreads_small_companies_over_the_runs_that_go_in_parallel(
    companies: int, spread: int, sizes: list[int]
) -> None:
    groups = plan_groups(due(*[1] * companies), 50, 200, spread)
    assert [len(g) for g in groups] == sizes
    assert [c for g in groups for c in g] == list(range(1, companies + 1))


def test_plan_groups_counts_waiting_ledger_rows_with_new_customers() -> None:
    work = [Due(7, new=2, waiting=3), Due(8, waiting=1)]
    assert plan_groups(work, 10, 5) == [[7], [8]]


def companies_api(total: int, seen: list[str]) -> httpx.MockTransport:
    """A companies list of ids 1..total, paged by `limit`; `seen` gets each request's query."""

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(str(request.url.query, "ascii"))
        limit = int(request.url.params["limit"])
        start = int(request.url.params.get("next", "0"))
        ids = range(start + 1, min(total, start + limit) + 1)
        more = start + limit < total
        body: dict[str, Any] = {"data": [{"rootfi_id": i} for i in ids]}
        body["next"] = str(start + limit) if more else None
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handle)


@pytest.mark.parametrize(
    ("wanted", "found", "pages"),
    [
        ([], set(), 0),  # nothing due: no request
        ([5, 999], {5, 999}, 1),
        ([5, 2500], {5, 2500}, 3),  # stops on the page holding the last one wanted
        ([5, 99999], {5}, 3),  # one the key cannot reach costs the whole list
    ],
)
def test_reachable_reads_the_companies_list_once_and_stops_when_all_wanted_are_seen(
    wanted: list[int], found: set[int], pages: int
) -> None:
    seen: list[str] = []
    transport = companies_api(2500, seen)
    with RootFiClient("http://rootfi.test/v3", SecretStr("k"), transport=transport) as client:
        assert reachable(client, wanted) == found
    assert len(seen) == pages
    assert all("limit=1000" in query for query in seen)


@pytest.mark.parametrize(
    ("company", "configured", "named"),
    [
        (1089, 1089, "ROOTFI_COMPANY_ID 1089 is not among"),
        (2002, 1089, "company 2002 is not among"),  # a source's company, not the setting's
        (2002, None, "company 2002 is not among"),
    ],
)
def test_not_reached_names_rootfi_company_id_only_for_its_own_company(
    company: int, configured: int | None, named: str
) -> None:
    assert not_reached(company, configured).startswith(named)


def test_reachable_says_a_refused_key_is_a_settings_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(401, json={"error": "invalid key"})

    transport = httpx.MockTransport(refuse)
    client = RootFiClient("http://rootfi.test/v3", SecretStr("k"), transport=transport)
    with client, pytest.raises(SettingsError, match="ROOTFI_API_KEY was refused by RootFi"):
        reachable(client, [5])
