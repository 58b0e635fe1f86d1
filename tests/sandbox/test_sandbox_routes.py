"""The routes and parameters the official SDK has beside those the project uses: a company,
the syncs of a company, one job, `sort[rootfi_created_at]`, `include_deleted_records`, and a
400 naming what the sandbox does not imitate (`prev`, `select`, company filters)."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from rootfi_sandbox import Faults, SandboxConfig, SandboxServer

from tests.sandbox.helpers import (
    COMPANY,
    CUSTOMERS,
    api_client,
    assert_error,
    create,
    customer,
    wait_for_sync,
)

OTHER = 2002


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[SandboxServer]:
    config = SandboxConfig(company_ids=frozenset({COMPANY, OTHER}), async_delay_seconds=0.02)
    with SandboxServer(config) as started:
        yield started


def test_gets_one_company_with_its_connection_to_the_platform(client: httpx.Client) -> None:
    company = client.get(f"/core/companies/{OTHER}").json()["data"]
    assert (company["rootfi_id"], company["name"]) == (OTHER, "Sandbox company 2002")
    [connection] = company["connections"]
    assert (connection["integration_type"], connection["connection_status"]) == (
        "ROOTFI_SANDBOX",
        "HEALTHY",
    )
    assert_error(client.get("/core/companies/7"), 404, "COMPANY_NOT_FOUND", "company_id")


def test_the_connection_names_the_platform_profile() -> None:
    config = SandboxConfig(faults=Faults(platform="shopify"))
    with SandboxServer(config) as sandbox_server, api_client(sandbox_server) as client:
        company = client.get("/core/companies").json()["data"][0]
    assert company["connections"][0]["integration_type"] == "SHOPIFY"


def test_lists_the_syncs_of_a_company_and_each_is_writable(client: httpx.Client) -> None:
    mine = create(client, customer(1)).json()["sync_id"]
    theirs = create(client, customer(2), company_id=OTHER).json()["sync_id"]
    listed = client.get("/core/syncs", params={"rootfi_company_id": OTHER}).json()
    assert [s["sync_id"] for s in listed["data"]] == [theirs] and listed["next"] is None
    every = client.get("/core/syncs", params={"limit": 1}).json()
    assert [s["sync_id"] for s in every["data"]] == [mine] and every["next"] is not None
    assert [s["rootfi_company_id"] for s in listed["data"]] == [OTHER]


def test_gets_one_job_by_its_id_alone_or_under_its_sync(client: httpx.Client) -> None:
    sync_id = create(client, customer(1), customer(2), run_async=True).json()["sync_id"]
    wait_for_sync(client, sync_id)
    job = client.get(f"/core/syncs/{sync_id}/jobs").json()["data"][1]
    alone = client.get(f"/core/syncs/jobs/{job['rootfi_id']}").json()["data"]
    under = client.get(f"/core/syncs/{sync_id}/jobs/{job['rootfi_id']}").json()["data"]
    assert alone == under == job
    other = create(client, customer(3)).json()["sync_id"]
    response = client.get(f"/core/syncs/{other}/jobs/{job['rootfi_id']}")
    assert_error(response, 404, "JOB_NOT_FOUND", "job_id")
    assert_error(client.get("/core/syncs/jobs/999"), 404, "JOB_NOT_FOUND", "job_id")


def test_sorts_customers_by_rootfi_created_at_and_reads_include_deleted_records(
    client: httpx.Client,
) -> None:
    for n in range(3):
        create(client, customer(n))
    params = {"sort[rootfi_created_at]": "DESC", "include_deleted_records": "true"}
    names = [r["name"] for r in client.get(CUSTOMERS, params=params).json()["data"]]
    assert names == ["Customer 2", "Customer 1", "Customer 0"]


@pytest.mark.parametrize(
    ("path", "param"),
    [
        (CUSTOMERS, "prev"),
        (CUSTOMERS, "select"),
        ("/core/syncs", "prev"),
        ("/core/companies", "integrations"),
        ("/core/companies", "expand"),
    ],
)
def test_answers_400_naming_what_the_sandbox_does_not_imitate(
    client: httpx.Client, path: str, param: str
) -> None:
    response = client.get(path, params={param: "raw_data"})
    assert_error(response, 400, "NOT_IMITATED", param)
    assert param in response.json()["error"]["message"]
