"""The local RootFi sandbox, over real HTTP on 127.0.0.1 (rootfi_sandbox)."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import typer
from rootfi_sandbox import Faults, SandboxConfig, SandboxServer
from rootfi_sandbox import command as sandbox_command_module
from typer.testing import CliRunner

from tests.sandbox.helpers import (
    COMPANY,
    CUSTOMERS,
    KEY,
    api_client,
    assert_error,
    create,
    customer,
    wait_for_sync,
)

OTHER_COMPANY = 2002
ISO_MS_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


@pytest.fixture(scope="module")
def sandbox_server() -> Iterator[SandboxServer]:
    config = SandboxConfig(
        api_keys=frozenset({KEY, "second-key"}),
        company_ids=frozenset({COMPANY, OTHER_COMPANY}),
        async_delay_seconds=0.05,
    )
    with SandboxServer(config) as server:
        yield server


@pytest.fixture
def sandbox_fresh(sandbox_server: SandboxServer) -> SandboxServer:
    sandbox_server.admin.reset()
    return sandbox_server


@pytest.fixture(scope="module")
def sandbox_http(sandbox_server: SandboxServer) -> Iterator[httpx.Client]:
    with api_client(sandbox_server) as client:
        yield client


@pytest.fixture(scope="module")
def sandbox_bare() -> Iterator[httpx.Client]:
    """A client with no api_key and no base URL."""
    with httpx.Client(timeout=10, verify=False) as client:
        yield client


@pytest.fixture
def sandbox_client(sandbox_fresh: SandboxServer, sandbox_http: httpx.Client) -> httpx.Client:
    return sandbox_http


def wait_until_stored(server: SandboxServer, count: int, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stored: int = server.admin.state()["customers"]
        if stored >= count:
            return stored == count
        time.sleep(0.01)
    return False


def list_all(client: httpx.Client, **params: Any) -> tuple[list[dict[str, Any]], int]:
    """Follow `next` to the end; returns the records and the number of pages."""
    records: list[dict[str, Any]] = []
    pages, query = 0, dict(params)
    while pages < 100:
        body = client.get(CUSTOMERS, params=query).json()
        records += body["data"]
        pages += 1
        if body["next"] is None:
            return records, pages
        query = {"next": body["next"], "limit": params.get("limit", 50)}
    raise AssertionError("following next never ended")


def list_companies(client: httpx.Client, limit: int) -> list[list[dict[str, Any]]]:
    """Follow `next` through /core/companies; returns the pages."""
    pages: list[list[dict[str, Any]]] = []
    params: dict[str, Any] = {"limit": limit}
    while len(pages) < 100:
        body = client.get("/core/companies", params=params).json()
        pages.append(body["data"])
        if body["next"] is None:
            return pages
        params = {"limit": limit, "next": body["next"]}
    raise AssertionError("following next never ended")


def get_paths(client: httpx.Client) -> list[str]:
    """One path of each GET endpoint under /v3 (a sync is created for the two sync paths)."""
    sync_id = create(client, customer(99)).json()["sync_id"]
    return ["/core/companies", CUSTOMERS, f"/core/syncs/{sync_id}", f"/core/syncs/{sync_id}/jobs"]


def get_or_lost(client: httpx.Client, path: str) -> int | str:
    """The status of a GET, or "lost" when the connection dropped with no answer."""
    try:
        return client.get(path).status_code
    except httpx.RemoteProtocolError:
        return "lost"


def wait_for_customers(server: SandboxServer, count: int, timeout: float = 10.0) -> list[Any]:
    """Poll the admin API until `count` customers are stored; returns them."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        stored = server.admin.customers()
        if len(stored) >= count:
            return stored
        time.sleep(0.05)
    raise AssertionError(f"{count} customers were not stored within {timeout} s")


# --- auth, companies, error shapes ---------------------------------------------------------


def test_lists_the_configured_companies(sandbox_client: httpx.Client) -> None:
    body = sandbox_client.get("/core/companies").json()
    assert [(c["rootfi_id"], c["name"]) for c in body["data"]] == [
        (COMPANY, "Sandbox company 1089"),
        (OTHER_COMPANY, "Sandbox company 2002"),
    ]
    assert body["next"] is None and "total_count" not in body  # the SDK declares none


def test_pages_companies_by_rootfi_id_a_hundred_at_a_time_until_next_is_null() -> None:
    config = SandboxConfig(company_ids=frozenset(range(1, 152)))
    with SandboxServer(config) as server, api_client(server) as client:
        first = client.get("/core/companies").json()
        second = client.get("/core/companies", params={"next": first["next"]}).json()
        by_fifty = list_companies(client, limit=50)
    assert [c["rootfi_id"] for c in first["data"]] == list(range(1, 101))
    assert first["next"] is not None
    assert [c["rootfi_id"] for c in second["data"]] == list(range(101, 152))
    assert second["next"] is None
    sizes = [len(page) for page in by_fifty]
    ids = [c["rootfi_id"] for page in by_fifty for c in page]
    assert sizes == [50, 50, 50, 1] and ids == list(range(1, 152))


BAD_COMPANY_PARAMS = [{"limit": 0}, {"limit": 1001}, {"limit": "ten"}, {"next": "not a cursor"}]


@pytest.mark.parametrize("params", BAD_COMPANY_PARAMS)
def test_refuses_bad_company_list_parameters(
    sandbox_client: httpx.Client, params: dict[str, Any]
) -> None:
    response = sandbox_client.get("/core/companies", params=params)
    assert_error(response, 400, "INVALID_REQUEST", next(iter(params)))


@pytest.mark.parametrize("headers", [{}, {"api_key": "wrong"}, {"Authorization": f"Bearer {KEY}"}])
def test_refuses_any_v3_path_without_a_configured_api_key(
    sandbox_fresh: SandboxServer, sandbox_bare: httpx.Client, headers: dict[str, str]
) -> None:
    for method, path in [("GET", "/core/companies"), ("POST", CUSTOMERS), ("GET", "/nowhere")]:
        response = sandbox_bare.request(
            method, sandbox_fresh.api_url + path, headers=headers, json={}
        )
        assert_error(response, 401, "UNAUTHORIZED", "")
    assert sandbox_fresh.admin.state()["requests"]["by_status"] == {"401": 3}


def test_accepts_every_configured_api_key(
    sandbox_fresh: SandboxServer, sandbox_bare: httpx.Client
) -> None:
    response = sandbox_bare.get(
        f"{sandbox_fresh.api_url}/core/companies", headers={"api_key": "second-key"}
    )
    assert response.status_code == 200


def test_answers_an_unknown_path_or_method_in_the_error_shape(sandbox_client: httpx.Client) -> None:
    assert_error(sandbox_client.get("/core/nothing-here"), 404, "NOT_FOUND", "")
    assert_error(sandbox_client.delete(CUSTOMERS), 405, "METHOD_NOT_ALLOWED", "")


def test_answers_404_for_an_unknown_company(sandbox_client: httpx.Client) -> None:
    assert_error(
        create(sandbox_client, customer(), company_id=7), 404, "COMPANY_NOT_FOUND", "company_id"
    )
    listing = sandbox_client.get(CUSTOMERS, params={"rootfi_company_id[eq]": 7})
    assert_error(listing, 404, "COMPANY_NOT_FOUND", "company_id")


# --- synchronous creates ---------------------------------------------------------------------


def test_creates_one_customer_synchronously_with_rootfi_fields(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    sent = customer(1, phone="+1 (555) 010-0100", currency_id="USD", status="ACTIVE")
    response = create(sandbox_client, sent)
    assert response.status_code == 200
    body = response.json()
    [record] = body["data"]
    assert {k: record[k] for k in sent} == sent
    assert record["rootfi_company_id"] == COMPANY and record["rootfi_deleted_at"] is None
    assert ISO_MS_Z.fullmatch(record["rootfi_created_at"])
    assert record["rootfi_updated_at"] == record["rootfi_created_at"]
    assert record["platform_id"] == f"{record['platform_unique_id']}_1"
    sync = sandbox_client.get(f"/core/syncs/{body['sync_id']}").json()["data"]
    assert (sync["status"], sync["total_count"], sync["success_count"]) == ("SUCCESS", 1, 1)
    assert sandbox_fresh.admin.customers() == [record]


def test_gives_each_created_customer_a_larger_rootfi_id(sandbox_client: httpx.Client) -> None:
    ids = [create(sandbox_client, customer(n)).json()["data"][0]["rootfi_id"] for n in range(5)]
    assert ids == sorted(ids) and len(set(ids)) == 5


def test_accepts_every_documented_field(sandbox_client: httpx.Client) -> None:
    address = {
        "rootfi_id": 3,
        "platform_id": "a1",
        "street": "1 Main St",
        "locality": "Centre",
        "city": "Pune",
        "state": "MH",
        "pincode": "411001",
        "country": "IN",
    }
    sent = customer(
        1,
        name="N" * 255,
        phone="+91 98 7654 3210",
        currency_id="INR",
        status="ARCHIVED",
        created_at="2024-01-22T05:07:31.465Z",
        updated_at="2024-01-22T05:07:31+05:30",
        address=address,
    )
    response = create(sandbox_client, sent)
    assert response.status_code == 200, response.text
    assert response.json()["data"][0]["address"] == address


def test_refuses_a_multi_record_synchronous_create(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    response = create(sandbox_client, customer(1), customer(2))
    assert_error(response, 400, "BATCH_NOT_SUPPORTED", "data")
    assert response.json()["error"]["message"] == "Batch writes only supported for Async writes"
    assert sandbox_fresh.admin.state()["customers"] == 0


@pytest.mark.parametrize(
    ("content", "field"),
    [
        (b"{not json", ""),
        (b"[1, 2]", ""),
        (b'{"data": [{"name": "A"}]}', "company_id"),
        (b'{"company_id": "1089", "data": [{"name": "A"}]}', "company_id"),
        (b'{"company_id": 1089, "data": {"name": "A"}}', "data"),
        (b'{"company_id": 1089, "data": []}', "data"),
        (b'{"company_id": 1089, "data": [{"name": "A"}], "run_async": "yes"}', "run_async"),
    ],
)
def test_refuses_a_malformed_body_as_an_invalid_request(
    sandbox_client: httpx.Client, content: bytes, field: str
) -> None:
    response = sandbox_client.post(CUSTOMERS, content=content)
    assert_error(response, 400, "INVALID_REQUEST", field)


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"nickname": "x"}, "nickname"),
        ({"name": 42}, "name"),
        ({"name": ["N"]}, "name"),
        ({"status": "DELETED"}, "status"),
        ({"currency_id": 840}, "currency_id"),
        ({"email": ["a@example.com"]}, "email"),
        ({"created_at": "22/01/2024"}, "created_at"),
        ({"updated_at": "yesterday"}, "updated_at"),
        ({"address": {"zip": "1"}}, "address.zip"),
        ({"address": {"rootfi_id": "3"}}, "address.rootfi_id"),
    ],
)
@pytest.mark.parametrize("run_async", [False, True])
def test_refuses_the_whole_request_when_a_record_breaks_the_schema(
    sandbox_fresh: SandboxServer,
    sandbox_client: httpx.Client,
    fields: dict[str, Any],
    field: str,
    run_async: bool,
) -> None:
    records = [customer(1, **fields)] if not run_async else [customer(1), customer(2, **fields)]
    index = len(records) - 1
    response = create(sandbox_client, *records, run_async=run_async)
    assert_error(response, 400, "VALIDATION_ERROR", f"data[{index}].{field}")
    assert sandbox_fresh.admin.state()["syncs"] == 0


def test_accepts_a_customer_without_a_name(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    nameless = {"email": "nameless@example.com"}
    response = create(sandbox_client, nameless)
    assert response.status_code == 200, response.text
    [record] = response.json()["data"]
    assert "name" not in record and record["email"] == nameless["email"]
    assert create(sandbox_client, {"name": None, "email": "null@example.com"}).status_code == 200
    sync_id = create(sandbox_client, nameless, {"phone": "+1 555 0100"}, run_async=True).json()[
        "sync_id"
    ]
    assert wait_for_sync(sandbox_client, sync_id)["success_count"] == 2
    assert sandbox_fresh.admin.state()["customers"] == 4


@pytest.mark.parametrize("email", ["a@refused.example", "b@shop.invalid", "c@REFUSED.example"])
def test_platform_refuses_a_synchronous_create_for_a_refused_email_domain(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client, email: str
) -> None:
    response = create(sandbox_client, customer(1, email=email))
    assert_error(response, 400, "PLATFORM_VALIDATION_ERROR", "email")
    domain = email.split("@")[1].lower()
    expected = f"Platform rejected the customer: email domain {domain} is not accepted"
    assert response.json()["error"]["message"] == expected
    assert sandbox_fresh.admin.state()["customers"] == 0


# --- asynchronous creates, syncs and jobs ------------------------------------------------------


def test_runs_an_async_create_from_created_to_success() -> None:
    config = SandboxConfig(async_delay_seconds=0.5)
    with SandboxServer(config) as server, api_client(server) as client:
        response = create(client, customer(1), customer(2), customer(3), run_async=True)
        assert response.status_code == 200
        body = response.json()
        sync_id = body["sync_id"]
        assert body["data"] == []  # the docs' top-level sync_id; the SDK's list of customers
        first = client.get(f"/core/syncs/{sync_id}").json()["data"]
        assert (first["status"], first["pending_count"], first["total_count"]) == ("CREATED", 3, 3)
        assert first["config_mode"] == "CREATE"
        assert first["sync_data_models"] == ["ECOMMERCE_CUSTOMERS"]
        jobs = client.get(f"/core/syncs/{sync_id}/jobs").json()["data"]
        assert [job["status"] for job in jobs] == ["CREATED"] * 3
        assert server.admin.state()["customers"] == 0
        done = wait_for_sync(client, sync_id)
        assert (done["status"], done["success_count"], done["failed_count"]) == ("SUCCESS", 3, 0)
        assert (done["running_count"], done["pending_count"]) == (0, 0)
        names = [c["name"] for c in server.admin.customers()]
        assert names == ["Customer 1", "Customer 2", "Customer 3"]


def test_treats_run_async_in_the_query_string_as_async(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    body = {"company_id": COMPANY, "data": [customer(1), customer(2)]}
    response = sandbox_client.post(CUSTOMERS, params={"run_async": "true"}, json=body)
    assert response.status_code == 200, response.text
    assert wait_for_sync(sandbox_client, response.json()["sync_id"])["success_count"] == 2


def test_marks_a_platform_refused_record_as_a_failed_job(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    records = [customer(1), customer(2, email="x@refused.example"), customer(3)]
    sync_id = create(sandbox_client, *records, run_async=True).json()["sync_id"]
    done = wait_for_sync(sandbox_client, sync_id)
    assert (done["status"], done["success_count"], done["failed_count"]) == ("FAILED", 2, 1)
    jobs = sandbox_client.get(f"/core/syncs/{sync_id}/jobs").json()
    assert jobs["next"] is None
    assert [j["status"] for j in jobs["data"]] == ["SUCCESS", "FAILED", "SUCCESS"]
    assert [j["error"] for j in jobs["data"]][::2] == [None, None]
    assert jobs["data"][1]["error"] == {
        "message": "Platform rejected the customer: email domain refused.example is not accepted",
        "code": "PLATFORM_VALIDATION_ERROR",
        "field": "email",
    }
    job = jobs["data"][0]
    assert (job["data_model"], job["job_type"]) == ("ECOMMERCE_CUSTOMERS", "PUSH")
    assert (job["retry_count"], job["rate_limit_sleep_time"]) == (0, 0)
    assert [c["name"] for c in sandbox_fresh.admin.customers()] == ["Customer 1", "Customer 3"]


def test_pages_through_sync_jobs_in_the_order_records_were_sent(
    sandbox_client: httpx.Client,
) -> None:
    records = [customer(n) for n in range(7)]
    sync_id = create(sandbox_client, *records, run_async=True).json()["sync_id"]
    wait_for_sync(sandbox_client, sync_id)
    jobs, params = [], {"limit": 3}
    for _ in range(10):
        page = sandbox_client.get(f"/core/syncs/{sync_id}/jobs", params=params).json()
        assert len(page["data"]) <= 3
        jobs += page["data"]
        if page["next"] is None:
            break
        params = {"limit": 3, "next": page["next"]}
    ids = [job["rootfi_id"] for job in jobs]
    assert len(ids) == 7 and ids == sorted(ids)


def test_answers_404_for_an_unknown_sync(sandbox_client: httpx.Client) -> None:
    assert_error(sandbox_client.get("/core/syncs/nope"), 404, "SYNC_NOT_FOUND", "sync_id")
    assert_error(sandbox_client.get("/core/syncs/nope/jobs"), 404, "SYNC_NOT_FOUND", "sync_id")


# --- listing -------------------------------------------------------------------------------


def test_lists_customers_to_the_end_by_following_next(sandbox_client: httpx.Client) -> None:
    wait_for_sync(
        sandbox_client,
        create(sandbox_client, *[customer(n) for n in range(25)], run_async=True).json()["sync_id"],
    )
    first = sandbox_client.get(CUSTOMERS, params={"limit": 7, "return_count": "true"}).json()
    assert (len(first["data"]), first["total_count"], first["prev"]) == (7, 25, None)
    assert sandbox_client.get(CUSTOMERS).json()["total_count"] is None
    records, pages = list_all(sandbox_client, limit=7)
    assert pages == 4
    ids = [r["rootfi_id"] for r in records]
    assert len(ids) == 25 and ids == sorted(set(ids))
    assert [r["name"] for r in records] == [f"Customer {n}" for n in range(25)]


def test_sorts_customers_by_rootfi_updated_at_descending(sandbox_client: httpx.Client) -> None:
    for n in range(6):
        create(sandbox_client, customer(n))
    ascending, _ = list_all(sandbox_client, limit=4)
    descending, pages = list_all(sandbox_client, limit=4, **{"sort[rootfi_updated_at]": "DESC"})
    assert pages == 2 and descending == ascending[::-1]
    keys = [(r["rootfi_updated_at"], r["rootfi_id"]) for r in ascending]
    assert keys == sorted(keys)


def test_filters_customers_by_company_and_updated_at(sandbox_client: httpx.Client) -> None:
    for n in range(3):
        create(sandbox_client, customer(n))
        create(sandbox_client, customer(n), company_id=OTHER_COMPANY)
    time.sleep(0.01)
    later = [create(sandbox_client, customer(n)).json()["data"][0] for n in (3, 4)]
    other, _ = list_all(sandbox_client, **{"rootfi_company_id[eq]": OTHER_COMPANY})
    assert len(other) == 3 and {r["rootfi_company_id"] for r in other} == {OTHER_COMPANY}
    since = {
        "rootfi_company_id[eq]": COMPANY,
        "rootfi_updated_at[gte]": later[0]["rootfi_updated_at"],
        "return_count": "true",
        "limit": 1,
    }
    body = sandbox_client.get(CUSTOMERS, params=since).json()
    assert body["total_count"] == 2
    records, pages = list_all(sandbox_client, **since)
    assert records == later and pages == 2
    everyone, _ = list_all(sandbox_client, limit=1000)
    assert len(everyone) == 8


def test_keeps_pagination_correct_while_customers_are_added(sandbox_client: httpx.Client) -> None:
    for n in range(5):
        create(sandbox_client, customer(n))
    page = sandbox_client.get(CUSTOMERS, params={"limit": 3}).json()
    seen = page["data"]
    for n in range(5, 9):
        create(sandbox_client, customer(n))
    for _ in range(10):
        if page["next"] is None:
            break
        page = sandbox_client.get(CUSTOMERS, params={"limit": 3, "next": page["next"]}).json()
        seen += page["data"]
    assert [r["name"] for r in seen] == [f"Customer {n}" for n in range(9)]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"limit": 0}, "limit"),
        ({"limit": 1001}, "limit"),
        ({"limit": "ten"}, "limit"),
        ({"sort[rootfi_updated_at]": "UP"}, "sort"),
        ({"rootfi_updated_at[gte]": "last week"}, "rootfi_updated_at"),
        ({"rootfi_company_id[eq]": "x"}, "rootfi_company_id"),
        ({"next": "not-a-cursor"}, "next"),
        ({"sort[rootfi_created_at]": "DESC", "sort[rootfi_updated_at]": "ASC"}, "sort"),
        ({"include_deleted_records": "maybe"}, "include_deleted_records"),
    ],
)
def test_refuses_bad_list_parameters(
    sandbox_client: httpx.Client, params: dict[str, Any], field: str
) -> None:
    assert_error(sandbox_client.get(CUSTOMERS, params=params), 400, "INVALID_REQUEST", field)


# --- rate limit ------------------------------------------------------------------------------


def test_omits_rate_limit_headers_when_no_limit_is_configured(sandbox_client: httpx.Client) -> None:
    headers = sandbox_client.get("/core/companies").headers
    assert not [name for name in headers if name.lower().startswith("x-ratelimit")]


def test_sends_rate_limit_headers_and_a_429_with_retry_after_when_over_budget(
    sandbox_bare: httpx.Client,
) -> None:
    with SandboxServer(SandboxConfig(rate_limit_per_minute=3)) as server:
        url = f"{server.api_url}/core/companies"
        answers = [sandbox_bare.get(url, headers={"api_key": KEY}) for _ in range(4)]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        assert [a.headers["X-RateLimit-Remaining"] for a in answers] == ["2", "1", "0", "0"]
        assert {a.headers["X-RateLimit-Limit"] for a in answers} == {"3"}
        reset = int(answers[0].headers["X-RateLimit-Reset"])
        assert time.time() < reset <= time.time() + 61
        assert_error(answers[3], 429, "RATE_LIMITED", "")
        assert 1 <= int(answers[3].headers["Retry-After"]) <= 60
        unauthorized = sandbox_bare.get(url)
        assert unauthorized.status_code == 401 and "X-RateLimit-Limit" not in unauthorized.headers
        server.admin.set_rate_limit(10)
        assert (
            sandbox_bare.get(url, headers={"api_key": KEY}).headers["X-RateLimit-Remaining"] == "9"
        )


# --- faults --------------------------------------------------------------------------------


def test_a_500_fault_stores_nothing(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    sandbox_fresh.admin.set_faults(error_500_rate=1.0)
    assert_error(create(sandbox_client, customer()), 500, "INTERNAL_SERVER_ERROR", "")
    assert_error(
        create(sandbox_client, customer(), customer(2), run_async=True),
        500,
        "INTERNAL_SERVER_ERROR",
        "",
    )
    assert (
        sandbox_fresh.admin.state()["customers"] == 0 and sandbox_fresh.admin.state()["syncs"] == 0
    )
    assert sandbox_client.get("/core/companies").status_code == 200  # GETs have their own rates


def test_a_429_fault_stores_nothing_and_asks_to_retry_after_one_second(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    sandbox_fresh.admin.set_faults(error_429_rate=1.0, error_500_rate=1.0)
    response = create(sandbox_client, customer())
    assert_error(response, 429, "RATE_LIMITED", "")
    assert response.headers["Retry-After"] == "1"
    assert sandbox_fresh.admin.state()["customers"] == 0


def test_a_lost_answer_drops_the_connection_but_stores_the_customer(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    sandbox_fresh.admin.set_faults(lost_answer_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        create(sandbox_client, customer(1))
    assert [c["name"] for c in sandbox_fresh.admin.customers()] == ["Customer 1"]
    assert sandbox_fresh.admin.state()["requests"]["by_status"] == {"lost": 1}
    sandbox_fresh.admin.set_faults(lost_answer_rate=0.0)
    assert create(sandbox_client, customer(2)).status_code == 200  # the client recovers


@pytest.mark.parametrize("landing_seconds", [0.0, 60.0])
def test_a_lost_answer_on_an_async_create_still_runs_the_sync(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client, landing_seconds: float
) -> None:
    sandbox_fresh.admin.set_faults(
        lost_answer_rate=1.0, lost_answer_landing_seconds=landing_seconds
    )
    with pytest.raises(httpx.RemoteProtocolError):
        create(sandbox_client, customer(1), customer(2), run_async=True)
    assert wait_until_stored(sandbox_fresh, 2)
    assert sandbox_fresh.admin.state()["syncs"] == 1


def test_a_slow_answer_is_stored_before_it_is_answered(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    sandbox_fresh.admin.set_faults(slow_answer_rate=1.0, slow_answer_seconds=0.6)
    answers: list[httpx.Response] = []
    sender = threading.Thread(target=lambda: answers.append(create(sandbox_client, customer())))
    started = time.monotonic()
    sender.start()
    assert wait_until_stored(sandbox_fresh, 1)
    answered_while_stored = len(answers)
    sender.join(5)
    assert answered_while_stored == 0
    assert [a.status_code for a in answers] == [200]
    assert time.monotonic() - started >= 0.6


def test_latency_is_added_to_every_v3_request_but_not_to_admin(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client, sandbox_bare: httpx.Client
) -> None:
    sandbox_fresh.admin.set_faults(latency_seconds=0.25)
    started = time.monotonic()
    assert sandbox_client.get("/core/companies").status_code == 200
    assert sandbox_bare.get(sandbox_fresh.api_url + "/core/companies").status_code == 401
    assert time.monotonic() - started >= 0.5
    started = time.monotonic()
    sandbox_fresh.admin.state()
    assert time.monotonic() - started < 0.25


def test_the_same_seed_gives_the_same_faults(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    def run() -> list[int]:
        sandbox_fresh.admin.set_faults(error_500_rate=0.3, error_429_rate=0.2, seed=7)
        return [create(sandbox_client, customer(n)).status_code for n in range(30)]

    first, second = run(), run()
    assert first == second
    assert {200, 429, 500} <= set(first)
    sandbox_fresh.admin.set_faults(seed=8)
    third = [create(sandbox_client, customer(n)).status_code for n in range(30)]
    assert third != first


def test_refuses_invalid_faults_from_the_admin_api(
    sandbox_fresh: SandboxServer, sandbox_bare: httpx.Client
) -> None:
    bodies = [
        {"error_500_rate": 2},
        {"surprise": 1},
        {"get_error_429_rate": -0.1},
        {"lost_answer_landing_seconds": -1},
        {"async_write_seconds": "long"},
    ]
    for body in bodies:
        response = sandbox_bare.put(f"{sandbox_fresh.url}/_sandbox/faults", json=body)
        assert_error(response, 400, "VALIDATION_ERROR", next(iter(body)))
    assert sandbox_fresh.admin.state()["faults"] == Faults().model_dump()


def test_lost_answer_landing_seconds_stores_the_customer_only_after_the_drop(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    before = create(sandbox_client, customer(1)).json()["data"][0]
    sandbox_fresh.admin.set_faults(lost_answer_rate=1.0, lost_answer_landing_seconds=2.0)
    with pytest.raises(httpx.RemoteProtocolError):
        create(sandbox_client, customer(2))
    sandbox_fresh.admin.set_faults(lost_answer_rate=0.0)
    after = create(sandbox_client, customer(3)).json()["data"][0]
    assert [c["name"] for c in sandbox_fresh.admin.customers()] == ["Customer 1", "Customer 3"]
    landed = wait_for_customers(sandbox_fresh, 3)[-1]
    assert landed["name"] == "Customer 2" and landed["rootfi_id"] > after["rootfi_id"]
    assert landed["rootfi_created_at"] == landed["rootfi_updated_at"]
    assert landed["rootfi_created_at"] >= after["rootfi_created_at"] >= before["rootfi_created_at"]
    assert sandbox_fresh.admin.state()["requests"]["by_status"] == {"200": 2, "lost": 1}
    listed, _ = list_all(sandbox_client, limit=2)
    assert [r["name"] for r in listed] == ["Customer 1", "Customer 3", "Customer 2"]


def test_reset_cancels_a_customer_that_has_not_landed_yet(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    sandbox_fresh.admin.set_faults(lost_answer_rate=1.0, lost_answer_landing_seconds=0.5)
    with pytest.raises(httpx.RemoteProtocolError):
        create(sandbox_client, customer(1))
    sandbox_fresh.admin.reset()
    time.sleep(1.0)  # past the landing time: a landing that was not cancelled shows up
    assert sandbox_fresh.admin.state()["customers"] == 0


def test_an_async_write_stays_running_for_async_write_seconds(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    sandbox_fresh.admin.set_faults(async_write_seconds=2.0)
    sync_id = create(sandbox_client, customer(1), customer(2), run_async=True).json()["sync_id"]
    deadline = time.monotonic() + 10
    sync = sandbox_client.get(f"/core/syncs/{sync_id}").json()["data"]
    while sync["status"] == "CREATED" and time.monotonic() < deadline:
        sync = sandbox_client.get(f"/core/syncs/{sync_id}").json()["data"]
    assert (sync["status"], sync["running_count"], sync["success_count"]) == ("RUNNING", 2, 0)
    jobs = sandbox_client.get(f"/core/syncs/{sync_id}/jobs").json()["data"]
    assert [job["status"] for job in jobs] == ["RUNNING", "RUNNING"]
    assert sandbox_fresh.admin.state()["customers"] == 0
    assert wait_for_sync(sandbox_client, sync_id, timeout=10)["success_count"] == 2
    assert sandbox_fresh.admin.state()["customers"] == 2


@pytest.mark.parametrize(
    ("faults", "status", "code"),
    [
        ({"get_error_429_rate": 1.0, "get_error_500_rate": 1.0}, 429, "RATE_LIMITED"),
        ({"get_error_500_rate": 1.0}, 500, "INTERNAL_SERVER_ERROR"),
    ],
)
def test_get_faults_answer_every_v3_get_with_the_error_body(
    sandbox_fresh: SandboxServer,
    sandbox_client: httpx.Client,
    faults: dict[str, float],
    status: int,
    code: str,
) -> None:
    paths = get_paths(sandbox_client)
    sandbox_fresh.admin.set_faults(**faults)
    for path in paths:
        response = sandbox_client.get(path)
        assert_error(response, status, code, "")
        assert response.headers.get("Retry-After") == ("1" if status == 429 else None)
    assert create(sandbox_client, customer(2)).status_code == 200  # creates have their own rates
    sandbox_fresh.admin.reset()
    assert sandbox_client.get("/core/companies").status_code == 200


def test_a_lost_get_answer_drops_the_connection_on_every_v3_get(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    paths = get_paths(sandbox_client)
    sandbox_fresh.admin.set_faults(get_lost_answer_rate=1.0)
    assert [get_or_lost(sandbox_client, path) for path in paths] == ["lost"] * 4
    assert sandbox_fresh.admin.state()["requests"]["by_status"] == {"200": 1, "lost": 4}
    sandbox_fresh.admin.set_faults(get_lost_answer_rate=0.0)
    assert sandbox_client.get(CUSTOMERS).status_code == 200  # the client recovers


def test_get_faults_are_seeded_and_leave_the_create_faults_of_a_seed_unchanged(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    create_faults = {"error_500_rate": 0.3, "error_429_rate": 0.2, "seed": 7}
    get_faults = {"get_error_500_rate": 0.2, "get_error_429_rate": 0.2, "get_lost_answer_rate": 0.2}

    def run(**faults: Any) -> tuple[list[int], list[int | str]]:
        sandbox_fresh.admin.set_faults(**create_faults, **faults)
        creates, gets = [], []
        for n in range(30):
            creates.append(create(sandbox_client, customer(n)).status_code)
            gets.append(get_or_lost(sandbox_client, CUSTOMERS))
        return creates, gets

    alone, _ = run()
    first, second = run(**get_faults), run(**get_faults)
    assert first == second and first[0] == alone
    assert {200, 429, 500, "lost"} <= set(first[1])


def test_latency_is_added_to_every_v3_get(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    paths = get_paths(sandbox_client)
    sandbox_fresh.admin.set_faults(latency_seconds=0.2)
    for path in paths:
        started = time.monotonic()
        assert sandbox_client.get(path).status_code == 200
        assert time.monotonic() - started >= 0.2, path


# --- admin -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rate_limit_per_minut": 5}, "rate_limit_per_minut"),
        ({"rate_limit_per_minute": 5, "burst": 10}, "burst"),
        ({}, "rate_limit_per_minute"),
    ],
)
def test_refuses_a_rate_limit_body_without_exactly_its_one_key(
    sandbox_fresh: SandboxServer, sandbox_bare: httpx.Client, body: dict[str, Any], field: str
) -> None:
    sandbox_fresh.admin.set_rate_limit(50)
    response = sandbox_bare.put(f"{sandbox_fresh.url}/_sandbox/rate-limit", json=body)
    assert_error(response, 400, "VALIDATION_ERROR", field)
    assert sandbox_fresh.admin.state()["rate_limit_per_minute"] == 50
    with api_client(sandbox_fresh) as client:
        assert client.get("/core/companies").headers["X-RateLimit-Limit"] == "50"


def test_reports_state_and_forgets_it_on_reset(
    sandbox_fresh: SandboxServer, sandbox_client: httpx.Client
) -> None:
    create(sandbox_client, customer(1))
    create(sandbox_client, customer(2), company_id=OTHER_COMPANY)
    create(sandbox_client, customer(3), customer(4))
    sync_id = create(sandbox_client, customer(5), customer(6), run_async=True).json()["sync_id"]
    sandbox_client.get(f"/core/syncs/{sync_id}")
    sandbox_client.get(f"/core/syncs/{sync_id}/jobs")
    sandbox_client.get("/ecommerce/customers")
    sandbox_client.get("/core/companies")
    sandbox_fresh.admin.set_faults(error_500_rate=0.5)
    state = sandbox_fresh.admin.state()
    assert state["customers_by_company"]["2002"] == 1 and state["syncs"] == 3
    kinds = {"create": 4, "sync": 1, "sync_jobs": 1, "list_customers": 1, "companies": 1}
    assert state["requests"] == {
        "total": 8,
        "by_status": {"200": 7, "400": 1},
        "by_kind": kinds,
        "creates": 4,
    }
    assert state["faults"]["error_500_rate"] == 0.5
    assert [c["name"] for c in sandbox_fresh.admin.customers(OTHER_COMPANY)] == ["Customer 2"]
    after = sandbox_fresh.admin.reset()
    assert (after["customers"], after["syncs"], after["requests"]["total"]) == (0, 0, 0)
    assert after["faults"] == Faults().model_dump()


# --- persistence, lifecycle, command --------------------------------------------------------


def test_keeps_customers_syncs_and_jobs_across_a_restart_with_a_db_path(tmp_path: Any) -> None:
    config = SandboxConfig(db_path=str(tmp_path / "sandbox_fresh.sqlite"), async_delay_seconds=0.05)
    with SandboxServer(config) as server, api_client(server) as client:
        first = create(client, customer(1)).json()["data"][0]
        sync_id = create(
            client, customer(2), customer(3, email="z@x.invalid"), run_async=True
        ).json()["sync_id"]
        wait_for_sync(client, sync_id)
        before, _ = list_all(client)
    with SandboxServer(config) as server, api_client(server) as client:
        assert list_all(client)[0] == before and before[0] == first
        assert client.get(f"/core/syncs/{sync_id}").json()["data"]["status"] == "FAILED"
        jobs = client.get(f"/core/syncs/{sync_id}/jobs").json()["data"]
        assert jobs[1]["error"]["code"] == "PLATFORM_VALIDATION_ERROR"
        newest = create(client, customer(4)).json()["data"][0]
        assert newest["rootfi_id"] > max(r["rootfi_id"] for r in before)
        ids = [c["rootfi_id"] for c in server.admin.customers()]
        assert ids == sorted(ids) and len(ids) == 3


def test_resumes_an_unfinished_async_write_after_a_restart(
    tmp_path: Any, sandbox_bare: httpx.Client
) -> None:
    path = str(tmp_path / "sandbox_fresh.sqlite")
    with SandboxServer(SandboxConfig(db_path=path, async_delay_seconds=30)) as server:
        body = {"company_id": COMPANY, "data": [customer(1)], "run_async": True}
        url = f"{server.api_url}{CUSTOMERS}"
        response = sandbox_bare.post(url, headers={"api_key": KEY}, json=body)
    with SandboxServer(SandboxConfig(db_path=path, async_delay_seconds=0.05)) as server:
        with api_client(server) as client:
            assert wait_for_sync(client, response.json()["sync_id"])["status"] == "SUCCESS"
        assert server.admin.state()["customers"] == 1


def test_stops_quickly_and_quietly_with_a_slow_answer_in_flight(
    capfd: pytest.CaptureFixture[str], sandbox_bare: httpx.Client
) -> None:
    server = SandboxServer(
        SandboxConfig(faults=Faults(slow_answer_rate=1.0, slow_answer_seconds=30))
    )
    server.start()
    answers: list[int] = []
    body = {"company_id": COMPANY, "data": [customer()]}
    url, headers = f"{server.api_url}{CUSTOMERS}", {"api_key": KEY}
    sender = threading.Thread(
        target=lambda: answers.append(
            sandbox_bare.post(url, json=body, headers=headers).status_code
        )
    )
    sender.start()
    assert wait_until_stored(server, 1)
    started = time.monotonic()
    server.stop()
    sender.join(5)
    assert time.monotonic() - started < 3
    assert answers == [200]
    assert capfd.readouterr().err == ""


def test_the_command_builds_its_config_from_options_and_env_vars(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[tuple[SandboxConfig, str, int]] = []

    def fake_serve(config: SandboxConfig, host: str, port: int, **kwargs: Any) -> None:
        seen.append((config, host, port))
        kwargs["on_ready"](f"http://{host}:{port}")

    monkeypatch.setattr(sandbox_command_module, "serve", fake_serve)
    app = typer.Typer()
    app.command("sandbox")(sandbox_command_module.sandbox_command)
    app.command("other")(lambda: None)
    args = [
        "sandbox",
        "--port",
        "9001",
        "--api-key",
        "k1",
        "--api-key",
        "k2",
        "--company-id",
        "5",
        "--rate-limit",
        "100",
        "--lose-answers",
        "0.25",
        "--seed",
        "3",
    ]
    result = CliRunner().invoke(app, args, env={"ROOTFI_SANDBOX_FAIL_500": "0.5"})
    assert result.exit_code == 0, result.output
    assert "http://127.0.0.1:9001" in result.output
    config, host, port = seen[0]
    assert (host, port) == ("127.0.0.1", 9001)
    assert config.api_keys == {"k1", "k2"} and config.company_ids == {5}
    assert config.rate_limit_per_minute == 100
    assert config.faults == Faults(error_500_rate=0.5, lost_answer_rate=0.25, seed=3)


def test_the_command_reads_the_get_landing_and_async_write_faults(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[SandboxConfig] = []
    monkeypatch.setattr(
        sandbox_command_module, "serve", lambda config, *args, **kwargs: seen.append(config)
    )
    app = typer.Typer()
    app.command("sandbox")(sandbox_command_module.sandbox_command)
    app.command("other")(lambda: None)
    args = [
        "sandbox",
        "--get-fail-500",
        "0.1",
        "--get-lose-answers",
        "0.3",
        "--lost-landing-seconds",
        "4",
    ]
    env = {"ROOTFI_SANDBOX_GET_FAIL_429": "0.2", "ROOTFI_SANDBOX_ASYNC_WRITE_SECONDS": "1.5"}
    result = CliRunner().invoke(app, args, env=env)
    assert result.exit_code == 0, result.output
    assert seen[0].faults == Faults(
        get_error_500_rate=0.1,
        get_error_429_rate=0.2,
        get_lost_answer_rate=0.3,
        lost_answer_landing_seconds=4.0,
        async_write_seconds=1.5,
    )
