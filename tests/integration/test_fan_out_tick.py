"""A fan-out tick over many companies on one key costs what is due: no run and no request for
a company with nothing due, one companies list per tick, small companies in shared runs.
Against the sandbox over real HTTP, on Prefect's test server, with the groups run in process."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from rootfi_sandbox import SandboxServer

from flows.sync_all_companies import sync_all_companies
from flows.sync_customers import sync_customers
from rootfi_sync.errors import CompanyRunsFailed
from rootfi_sync.ledger.db import make_engine, sample_for
from rootfi_sync.ledger.tables import ledger
from rootfi_sync.settings import load_settings
from tests.factories import make_customer, sandbox_for
from tests.integration.conftest import API_KEY
from tests.integration.helpers import ledger_rows, seed_source

pytestmark = pytest.mark.usefixtures("prefect_server")
COMPANIES = tuple(range(1, 121))


@pytest.fixture
def key_sandbox() -> Iterator[SandboxServer]:
    """A sandbox whose key reaches 120 companies."""
    with sandbox_for(API_KEY, *COMPANIES) as server:
        yield server


def seed_synced(url: str, synced: list[dict[str, Any]], new: list[dict[str, Any]]) -> None:
    """A source of `synced` customers (each with its SYNCED ledger row) and `new` ones."""
    seed_source(url, synced + new, source_company_column="tenant")
    if not synced:
        return
    now = datetime.now(UTC)
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            ledger.insert(),
            [
                {
                    "customer_id": str(row["id"]),
                    "company_id": row["company_id"],
                    "status": "SYNCED",
                    "rootfi_id": f"r{row['id']}",
                    "attempts": 1,
                    "updated_at": now,
                }
                for row in synced
            ],
        )
    engine.dispose()


def requests(sandbox: SandboxServer) -> Counter[str]:
    """The sandbox's /v3 requests so far: creates, and every other kind together."""
    counts = sandbox.admin.state()["requests"]
    return Counter(creates=counts["creates"], others=counts["total"] - counts["creates"])


def test_a_tick_over_120_companies_with_5_new_customers_makes_one_companies_request_and_3_runs(
    sqlite_url: str, key_sandbox: SandboxServer, configure: Any
) -> None:
    synced = [make_customer() | {"company_id": c} for c in COMPANIES]
    new = [make_customer() | {"company_id": c} for c in (3, 40, 41, 77, 120)]
    seed_synced(sqlite_url, synced, new)
    configure(sqlite_url, source_company_column="tenant", rootfi_base_url=key_sandbox.api_url)

    rows = sync_all_companies(deployment=None, max_concurrent=4)

    assert requests(key_sandbox) == {"creates": 5, "others": 1}  # at most 15: the bound
    assert [(r["company_id"], r["completed"], r["synced"]) for r in rows] == [
        (c, True, 1) for c in (3, 40, 41, 77, 120)
    ]
    assert len({r["flow_run_id"] for r in rows}) == 3  # five companies over four parallel runs
    stored = Counter(c["email"] for c in key_sandbox.admin.customers())
    assert stored == Counter(r["email"] for r in new)

    assert sync_all_companies(deployment=None) == []  # the next tick: nothing due
    assert requests(key_sandbox) == {"creates": 5, "others": 1}  # and no request
    assert Counter(r.status for r in ledger_rows(sqlite_url).values()) == {"SYNCED": 125}


def test_a_company_with_many_new_customers_runs_alone_and_small_ones_share_a_run(
    sqlite_url: str, key_sandbox: SandboxServer, configure: Any
) -> None:
    new = [make_customer() | {"company_id": 5} for _ in range(4)]
    new += [make_customer() | {"company_id": c} for c in (6, 7, 8)]
    seed_synced(sqlite_url, [], new)
    configure(sqlite_url, source_company_column="tenant", rootfi_base_url=key_sandbox.api_url)

    rows = sync_all_companies(
        deployment=None, max_concurrent=1, group_companies=2, group_customers=3
    )

    runs = {r["company_id"]: r["flow_run_id"] for r in rows}
    assert sorted(runs) == [5, 6, 7, 8]
    assert len(set(runs.values())) == 3  # [5], [6, 7], [8]
    assert runs[6] == runs[7] and len({runs[5], runs[6], runs[8]}) == 3
    assert {r["company_id"]: r["synced"] for r in rows} == {5: 4, 6: 1, 7: 1, 8: 1}
    assert requests(key_sandbox) == {"creates": 7, "others": 1}


def test_a_company_the_key_cannot_reach_fails_the_tick_named_without_a_run_of_its_own(
    sqlite_url: str, key_sandbox: SandboxServer, configure: Any
) -> None:
    new = [make_customer() | {"company_id": c} for c in (7, 9999)]
    seed_synced(sqlite_url, [], new)
    configure(sqlite_url, source_company_column="tenant", rootfi_base_url=key_sandbox.api_url)

    state = sync_all_companies(deployment=None, return_state=True)

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, CompanyRunsFailed)
    assert "1 of 2 companies did not complete: 9999 (Failed: company 9999 is not" in str(error)
    assert [c["email"] for c in key_sandbox.admin.customers(7)] == [new[0]["email"]]
    assert requests(key_sandbox) == {"creates": 1, "others": 1}
    assert {r.company_id: r.status for r in ledger_rows(sqlite_url).values()} == {7: "SYNCED"}


def test_a_manual_run_checks_its_company_and_a_run_the_fan_out_vouched_for_does_not(
    sqlite_url: str, key_sandbox: SandboxServer, configure: Any
) -> None:
    new = [make_customer() | {"company_id": c} for c in (7, 8)]
    seed_synced(sqlite_url, [], new)
    configure(sqlite_url, source_company_column="tenant", rootfi_base_url=key_sandbox.api_url)

    sync_customers(company_id=7)
    assert requests(key_sandbox) == {"creates": 1, "others": 1}  # the companies list
    sync_customers(company_ids=[8], reachable=[8])
    assert requests(key_sandbox) == {"creates": 2, "others": 1}


def test_with_the_ledger_in_a_database_of_its_own_only_the_company_with_a_new_customer_runs(
    sqlite_url: str, tmp_path: Any, key_sandbox: SandboxServer, configure: Any
) -> None:
    ledger_url = f"sqlite:///{tmp_path / 'ledger.db'}"
    rows = [make_customer() | {"company_id": c} for c in (1, 2, 2)]
    seed_source(sqlite_url, rows, source_company_column="tenant", ledger_database_url=ledger_url)
    configure(
        sqlite_url,
        source_company_column="tenant",
        ledger_database_url=ledger_url,
        rootfi_base_url=key_sandbox.api_url,
    )
    assert [r["synced"] for r in sync_all_companies(deployment=None)] == [1, 2]
    rows.append(make_customer() | {"company_id": 2})
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sample_for(load_settings()).insert(), [rows[-1]])
    engine.dispose()

    later = sync_all_companies(deployment=None)

    assert [(r["company_id"], r["synced"]) for r in later] == [(2, 1)]
    assert requests(key_sandbox) == {"creates": 4, "others": 2}
    assert Counter(r.status for r in ledger_rows(ledger_url).values()) == {"SYNCED": 4}


def test_a_company_failing_in_a_shared_run_fails_the_run_named_and_the_others_still_sync(
    sqlite_url: str, key_sandbox: SandboxServer, configure: Any
) -> None:
    new = [make_customer() | {"company_id": c} for c in (9999, 7)]
    seed_synced(sqlite_url, [], new)
    configure(sqlite_url, source_company_column="tenant", rootfi_base_url=key_sandbox.api_url)

    state = sync_customers(company_ids=[9999, 7], reachable=[7], return_state=True)

    assert state.is_failed()
    error = state.result(raise_on_failure=False)
    assert isinstance(error, CompanyRunsFailed)
    named = "9999 (Failed: SettingsError: company 9999 is not among"
    assert f"1 of 2 companies did not complete: {named}" in str(error)
    assert [c["email"] for c in key_sandbox.admin.customers(7)] == [new[1]["email"]]
    assert requests(key_sandbox) == {"creates": 1, "others": 1}  # 9999 checked (one page)
