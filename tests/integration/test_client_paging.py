"""The RootFi client's listings against the sandbox over real HTTP: they follow `next` to the
end, at RootFi's own page size once it refuses the one asked for, and end with an error
naming the endpoint, never a loop, when a cursor comes back (the sandbox's
`repeat_cursor`). Also the SDK's 60 s timeout."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import islice
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from rootfi_sandbox import SandboxServer

from rootfi_sync import errors
from rootfi_sync.rootfi.client import RootFiClient
from rootfi_sync.settings import Settings
from tests.factories import sandbox_for
from tests.waiting import sync_ended

KEY = "sk-paging-secret"
COMPANY = 1089
Listing = Callable[[RootFiClient, str], Iterator[dict[str, Any]]]


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with sandbox_for(KEY, COMPANY, 2002, 3003) as server:
        yield server


def written(sandbox: SandboxServer, count: int) -> str:
    """An async write of `count` customers, finished; returns its sync id."""
    records = [{"name": f"Customer {n}"} for n in range(count)]
    with RootFiClient(sandbox.api_url, SecretStr(KEY)) as client:
        sync_id, _ = client.create_customers_async(COMPANY, records)
    sync_ended(sandbox, sync_id, KEY)
    return sync_id


LISTINGS: dict[str, tuple[str, Listing]] = {
    "customers": ("/ecommerce/customers", lambda c, _: c.iter_customers(COMPANY)),
    "companies": ("/core/companies", lambda c, _: c.iter_companies()),
    "jobs": ("/core/syncs/", lambda c, sync_id: c.iter_sync_jobs(sync_id)),
}


@pytest.mark.parametrize("name", LISTINGS)
def test_a_listing_whose_cursor_comes_back_ends_with_an_error_naming_the_endpoint(
    sandbox: SandboxServer, name: str
) -> None:
    sync_id = written(sandbox, 3)
    path, listing = LISTINGS[name]
    sandbox.admin.set_faults(repeat_cursor=True)
    client = RootFiClient(sandbox.api_url, SecretStr(KEY))
    with client, pytest.raises(errors.PagingError, match=f"GET {path}") as raised:
        # Bounded, so that a client that loops fails the test instead of hanging it.
        list(islice(listing(client, sync_id), 1000))
    assert KEY not in str(raised.value)


def test_a_refused_limit_makes_the_client_read_at_rootfis_own_page_size(
    sandbox: SandboxServer,
) -> None:
    sync_id = written(sandbox, 120)
    seen: list[httpx.Request] = []
    with RootFiClient(sandbox.api_url, SecretStr(KEY)) as client:
        client._http.event_hooks["request"].append(seen.append)
        assert len(list(client.iter_customers(COMPANY))) == 120  # one page of up to 1,000
        asked = [r.url.params.get("limit") for r in seen]
        # The sandbox refuses a limit over 1,000 (400, field "limit"), as RootFi may its own.
        customers = list(client.iter_customers(COMPANY, page_size=5000))
        jobs = list(client.iter_sync_jobs(sync_id))
    assert asked == ["1000"]
    assert [c["name"] for c in customers] == [f"Customer {n}" for n in range(120)]
    assert len(jobs) == 120
    later = [r.url.params.get("limit") for r in seen[len(asked) :]]
    assert later[0] == "5000" and set(later[1:]) == {None} and len(later) > 4


def test_the_default_timeout_is_the_official_sdks_60_seconds() -> None:
    assert Settings.model_fields["rootfi_timeout_seconds"].default == 60.0
    with RootFiClient("http://127.0.0.1:9/v3", SecretStr(KEY)) as client:
        assert client._http.timeout.read == 60.0
