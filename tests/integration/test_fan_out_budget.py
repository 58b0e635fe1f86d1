"""A fan-out tick whose work needs more requests than the key's budget allows: the oldest work
goes first, the rest is reported and taken by later ticks, each customer created once, and
RootFi never throttles the key. Against the sandbox over real HTTP, limited to the key's
budget, on Prefect's test server (groups run in process), with the shared rate limit set up."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterKey
from prefect.client.schemas.sorting import ArtifactSort
from rootfi_sandbox import SandboxServer

from flows.sync_all_companies import ARTIFACT_KEY, sync_all_companies
from rootfi_sync.orchestration.prefect_setup import setup_prefect
from tests.factories import make_customer, sandbox_for
from tests.integration.conftest import API_KEY
from tests.integration.helpers import ledger_rows, seed_source

pytestmark = pytest.mark.usefixtures("prefect_server")
PER_MINUTE = 60
LIMIT_NAME = "rootfi-api-budget-test"
DAY = timedelta(days=1)
NOW = datetime(2026, 12, 1)


@pytest.fixture
def budget_sandbox() -> Iterator[SandboxServer]:
    """A sandbox whose key reaches companies 1-4 and allows PER_MINUTE requests a minute."""
    with sandbox_for(API_KEY, 1, 2, 3, 4, rate_limit_per_minute=PER_MINUTE) as server:
        yield server


def customer(company: int, days_ago: int) -> dict[str, Any]:
    return make_customer(created_at=NOW - days_ago * DAY) | {"company_id": company}


def tick() -> list[tuple[int, str, int]]:
    """One fan-out tick with a budget of 2 requests (60 a minute over 4 s, less 10 %, less the
    companies list); each company's (id, state, synced)."""
    rows = sync_all_companies(deployment=None, max_concurrent=2, budget_seconds=4)
    return [(r["company_id"], r["state"], r["synced"]) for r in rows]


def last_description() -> str:
    """The description of the newest fan-out table artifact."""
    with get_client(sync_client=True) as client:
        [artifact] = client.read_artifacts(
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[ARTIFACT_KEY])),
            sort=ArtifactSort.CREATED_DESC,
            limit=1,
        )
    return artifact.description or ""


def test_a_budget_too_small_for_a_tick_takes_the_oldest_work_first_and_later_ticks_the_rest(
    sqlite_url: str, budget_sandbox: SandboxServer, configure: Any
) -> None:
    rows = [customer(1, 10), customer(1, 1), customer(2, 9), customer(3, 8), customer(4, 7)]
    seed_source(sqlite_url, rows, source_company_column="tenant")
    configure(
        sqlite_url,
        source_company_column="tenant",
        rootfi_base_url=budget_sandbox.api_url,
        rootfi_rate_limit_per_minute=PER_MINUTE,
        rootfi_rate_limit_name=LIMIT_NAME,
    )
    setup_prefect(
        work_pool="rootfi-sync-test",
        api_key=None,
        rate_limit_per_minute=PER_MINUTE,
        rate_limit_name=LIMIT_NAME,
    )

    # 1's oldest customer and 2's go first; 3 and 4 wait, reported
    assert tick() == [
        (1, "Completed", 1),
        (2, "Completed", 1),
        (3, "Waiting", 0),
        (4, "Waiting", 0),
    ]
    told = last_description()
    assert "budget 2 requests (60 a minute over 4 s" in told, told
    assert "taken: 2 companies, 2 customers, estimated 2 requests" in told, told
    assert "left for the next tick: 3 companies, 3 customers" in told, told
    # 3 and 4 have now waited longer than 1's second customer
    assert tick() == [(1, "Waiting", 0), (3, "Completed", 1), (4, "Completed", 1)]
    assert tick() == [(1, "Completed", 1)]
    assert tick() == []  # nothing left: no run, no request

    state = budget_sandbox.admin.state()["requests"]
    assert state["by_status"].get("429", 0) == 0
    assert state["creates"] == 5 and state["total"] == 5 + 3  # and one companies page a tick
    stored = Counter(c["email"] for c in budget_sandbox.admin.customers())
    assert stored == Counter(r["email"] for r in rows)
    assert Counter(r.status for r in ledger_rows(sqlite_url).values()) == {"SYNCED": 5}


def test_without_a_company_column_each_company_given_is_taken_whole_its_work_uncounted(
    sqlite_url: str, budget_sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer(), make_customer()]
    seed_source(sqlite_url, rows)
    configure(sqlite_url, rootfi_base_url=budget_sandbox.api_url)

    done = sync_all_companies(company_ids=[3], deployment=None)

    assert [(r["company_id"], r["state"], r["synced"]) for r in done] == [(3, "Completed", 2)]
    assert "taken: 1 companies, 0 customers, estimated 0 requests" in last_description()
