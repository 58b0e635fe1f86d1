"""The sandbox's platform profiles (lenient, normalizing, shopify, quickbooks), over real
HTTP on 127.0.0.1: what RootFi's API accepts, what each platform refuses and the form it keeps
records in."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from rootfi_sandbox import Faults, SandboxConfig, SandboxServer

from tests.sandbox.helpers import api_client, assert_error, create, customer, wait_for_sync

# The two values RootFi's docs show in their example create request, which the sandbox used
# to refuse; the rest of the record is filled in the docs' field formats.
DOCS_EXAMPLE = {
    "name": "John Doe",
    "email": "",
    "phone": "1234567890",
    "currency_id": "1234567890",
    "status": "ACTIVE",
    "created_at": "2024-01-22T05:07:31.465Z",
    "updated_at": "2024-01-22T05:07:31.465Z",
    "address": {"street": "1 Main St", "city": "Springfield", "pincode": "62701", "country": "US"},
}
# Values some platform refuses and RootFi's docs state no rule against.
LENIENT_CASES: list[dict[str, Any]] = [
    {"name": ""},
    {"name": "N" * 300},
    {"email": "a@b@example.com"},
    {"currency_id": "usd"},
    {"phone": "+1 555 CALL-ME"},
    {"address": {"country": "Atlantis"}},
]


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[SandboxServer]:
    with SandboxServer(SandboxConfig(async_delay_seconds=0.02)) as started:
        yield started


def on_platform(sandbox_server: SandboxServer, platform: str) -> None:
    sandbox_server.admin.set_faults(platform=platform)


def created(response: httpx.Response) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    record: dict[str, Any] = response.json()["data"][0]
    return record


def failed_jobs(client: httpx.Client, *records: dict[str, Any]) -> list[dict[str, Any] | None]:
    """Write `records` in one async create; return each job's error (None for a success)."""
    sync_id = create(client, *records, run_async=True).json()["sync_id"]
    wait_for_sync(client, sync_id)
    jobs = client.get(f"/core/syncs/{sync_id}/jobs").json()["data"]
    return [job["error"] for job in jobs]


def test_the_default_profile_is_lenient_and_accepts_the_docs_example_request(
    sandbox_server: SandboxServer, client: httpx.Client
) -> None:
    assert sandbox_server.admin.state()["faults"]["platform"] == "lenient"
    record = created(create(client, DOCS_EXAMPLE))
    assert {field: record[field] for field in DOCS_EXAMPLE} == DOCS_EXAMPLE
    assert failed_jobs(client, DOCS_EXAMPLE, DOCS_EXAMPLE) == [None, None]


@pytest.mark.parametrize("fields", LENIENT_CASES)
def test_lenient_stores_what_it_is_sent_where_the_docs_state_no_rule(
    client: httpx.Client, fields: dict[str, Any]
) -> None:
    record = created(create(client, customer(1, **fields)))
    assert {field: record[field] for field in fields} == fields


def test_shopify_keeps_phones_as_e164_countries_as_iso2_lower_case_emails_and_trimmed_names(
    sandbox_server: SandboxServer, client: httpx.Client
) -> None:
    on_platform(sandbox_server, "shopify")
    sent = {
        "name": "  Ana Souza ",
        "email": " Ana.Souza@Example.COM",
        "phone": "555-0107",
        "address": {"city": "Recife", "country": "BRA"},
    }
    record = created(create(client, {**sent, "address": {"country": "US"}}))
    assert (record["name"], record["email"], record["phone"]) == (
        "Ana Souza",
        "ana.souza@example.com",
        "+15550107",  # a national number is read in the address's country
    )
    abroad = {**sent, "phone": "+1 555 0107"}
    brazil = {**abroad, "address": {"country": "Brazil"}}
    assert failed_jobs(client, abroad, brazil) == [None, None]
    listed = client.get("/ecommerce/customers").json()["data"]
    assert [r["address"]["country"] for r in listed] == ["US", "BR", "BR"]
    assert {r["phone"] for r in listed} == {"+15550107"}
    assert listed[1]["address"]["city"] == "Recife"


def test_normalizing_keeps_records_in_platform_forms_where_it_can_read_them(
    sandbox_server: SandboxServer, client: httpx.Client
) -> None:
    on_platform(sandbox_server, "normalizing")
    sent = {
        "name": "  Ana Souza ",
        "email": " Ana.Souza@Example.COM",
        "phone": "555-0107",
        "currency_id": " brl",
        "address": {"city": "Recife", "country": "BRA"},
    }
    record = created(create(client, {**sent, "address": {"country": "US"}}))
    assert (record["name"], record["email"], record["phone"], record["currency_id"]) == (
        "Ana Souza",
        "ana.souza@example.com",
        "+15550107",
        "BRL",
    )
    assert record["address"] == {"country": "US"}
    assert failed_jobs(client, {**sent, "phone": "+1 555 0107"}) == [None]
    listed = client.get("/ecommerce/customers").json()["data"]
    assert listed[-1]["address"] == {"city": "Recife", "country": "BR"}


@pytest.mark.parametrize("fields", [*LENIENT_CASES, {"phone": "12"}])
def test_normalizing_refuses_nothing_shopify_or_quickbooks_refuses_and_keeps_it_as_sent(
    sandbox_server: SandboxServer, client: httpx.Client, fields: dict[str, Any]
) -> None:
    on_platform(sandbox_server, "normalizing")
    record = created(create(client, customer(1, **fields)))
    if "currency_id" in fields:  # the one rewrite that applies to any text
        fields = {"currency_id": fields["currency_id"].upper()}
    assert {field: record[field] for field in fields} == fields
    assert failed_jobs(client, customer(2, **fields)) == [None]


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"email": "a@b@example.com"}, "email"),
        ({"email": "no-at-sign.example.com"}, "email"),
        ({"phone": "+1 555 CALL-ME"}, "phone"),
        ({"phone": "12"}, "phone"),
        ({"name": "N" * 256}, "name"),
        ({"address": {"country": "Atlantis"}}, "address.country"),
    ],
)
def test_shopify_refuses_what_shopify_refuses_synchronously_and_as_a_failed_job(
    sandbox_server: SandboxServer, client: httpx.Client, fields: dict[str, Any], field: str
) -> None:
    on_platform(sandbox_server, "shopify")
    assert_error(create(client, customer(1, **fields)), 400, "PLATFORM_VALIDATION_ERROR", field)
    [ok, error] = failed_jobs(client, customer(2), customer(3, **fields))
    assert ok is None and error is not None
    assert (error["code"], error["field"]) == ("PLATFORM_VALIDATION_ERROR", field)
    assert [c["name"] for c in sandbox_server.admin.customers()] == ["Customer 2"]


def test_quickbooks_keeps_names_trimmed_currencies_upper_case_and_countries_as_iso3(
    sandbox_server: SandboxServer, client: httpx.Client
) -> None:
    on_platform(sandbox_server, "quickbooks")
    sent = {"name": " Bo Li ", "currency_id": "eur", "address": {"country": "DE"}}
    record = created(create(client, sent))
    assert (record["name"], record["currency_id"], record["address"]) == (
        "Bo Li",
        "EUR",
        {"country": "DEU"},
    )


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"name": "N" * 101}, "name"),
        ({"name": "   "}, "name"),
        ({"name": None}, "name"),
        ({"email": "a@b@example.com"}, "email"),
        ({"phone": "+1 555 CALL-ME"}, "phone"),
        ({"currency_id": "1234567890"}, "currency_id"),
    ],
)
def test_quickbooks_refuses_what_quickbooks_refuses_synchronously_and_as_a_failed_job(
    sandbox_server: SandboxServer, client: httpx.Client, fields: dict[str, Any], field: str
) -> None:
    on_platform(sandbox_server, "quickbooks")
    assert_error(create(client, customer(1, **fields)), 400, "PLATFORM_VALIDATION_ERROR", field)
    [error, ok] = failed_jobs(client, customer(2, **fields), customer(3))
    assert ok is None and error is not None
    assert (error["code"], error["field"]) == ("PLATFORM_VALIDATION_ERROR", field)


@pytest.mark.parametrize("platform", ["lenient", "normalizing", "shopify", "quickbooks"])
def test_every_profile_refuses_an_email_at_a_reserved_test_domain(
    sandbox_server: SandboxServer, client: httpx.Client, platform: str
) -> None:
    on_platform(sandbox_server, platform)
    response = create(client, customer(1, email="x@refused.example"))
    assert_error(response, 400, "PLATFORM_VALIDATION_ERROR", "email")


def test_a_lost_answer_lands_in_the_form_the_platform_keeps(
    sandbox_server: SandboxServer, client: httpx.Client
) -> None:
    sandbox_server.admin.set_faults(platform="shopify", lost_answer_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        create(client, customer(1, email="Loud@Example.com"))
    assert [c["email"] for c in sandbox_server.admin.customers()] == ["loud@example.com"]


def test_the_platform_is_chosen_at_start_and_a_reset_goes_back_to_it() -> None:
    config = SandboxConfig(faults=Faults(platform="quickbooks"))
    with SandboxServer(config) as sandbox_server, api_client(sandbox_server) as client:
        assert create(client, customer(1, name="N" * 101)).status_code == 400
        sandbox_server.admin.set_faults(platform="lenient")
        assert create(client, customer(2, name="N" * 101)).status_code == 200
        sandbox_server.admin.reset()
        assert sandbox_server.admin.state()["faults"]["platform"] == "quickbooks"


def test_refuses_an_unknown_platform_from_the_admin_api(
    sandbox_server: SandboxServer, client: httpx.Client
) -> None:
    response = httpx.put(f"{sandbox_server.url}/_sandbox/faults", json={"platform": "sap"})
    assert_error(response, 400, "VALIDATION_ERROR", "platform")
