"""Many companies in one source table, synced by a parent flow that fans out per company."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from rootfi_sandbox import SandboxServer

from flows.sync_all_companies import sync_all_companies
from tests.factories import make_customer, sandbox_for
from tests.integration.conftest import API_KEY
from tests.integration.helpers import ledger_rows, seed_source

pytestmark = pytest.mark.usefixtures("prefect_server")
COMPANIES = (1089, 2001, 2002)


@pytest.fixture
def many_company_sandbox() -> Iterator[SandboxServer]:
    with sandbox_for(API_KEY, *COMPANIES) as server:
        yield server


def test_each_company_gets_its_own_customers_exactly_once(
    sqlite_url: str, many_company_sandbox: SandboxServer, configure: Any
) -> None:
    rows = [{**make_customer(), "company_id": COMPANIES[i % 3]} for i in range(45)]
    seed_source(sqlite_url, rows, source_company_column="tenant")
    configure(
        sqlite_url, source_company_column="tenant", rootfi_base_url=many_company_sandbox.api_url
    )

    results = sync_all_companies(deployment=None, max_concurrent=2)

    assert sorted(r["company_id"] for r in results) == list(COMPANIES)
    for company in COMPANIES:
        stored = many_company_sandbox.admin.customers(company)
        expected = {r["email"] for r in rows if r["company_id"] == company}
        assert Counter(c["email"] for c in stored) == Counter(expected)
    ledger = ledger_rows(sqlite_url)
    assert Counter(r.status for r in ledger.values()) == {"SYNCED": 45}
