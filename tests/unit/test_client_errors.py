"""Error mapping of the RootFi client, through httpx's MockTransport (no network)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest
from pydantic import SecretStr

from rootfi_sync import errors
from rootfi_sync.rootfi.client import RootFiClient, retry_after_seconds

KEY = "sk-test-secret"


def client_for(handler: Callable[[httpx.Request], httpx.Response]) -> RootFiClient:
    return RootFiClient(
        "http://127.0.0.1:9/v3",
        SecretStr(KEY),
        transport=httpx.MockTransport(handler),
        max_rate_limit_wait=0.05,
    )


def error(status: int, code: str, field: str | None = None, **headers: str) -> httpx.Response:
    body = {"error": {"message": f"{code} happened", "code": code, "field": field}}
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("status", "kind"),
    [
        (400, errors.Refused),
        (422, errors.Refused),
        (404, errors.Refused),
        (401, errors.AuthError),
        (403, errors.AuthError),
        (500, errors.ServerError),
        (503, errors.ServerError),
        (429, errors.RateLimited),
    ],
)
def test_maps_each_error_status_to_its_exception(status: int, kind: type[Exception]) -> None:
    with client_for(lambda r: error(status, "X", "email")) as client, pytest.raises(kind) as caught:
        client.create_customer(1089, {"name": "A"})
    assert caught.value.status_code == status  # type: ignore[attr-defined]
    assert "X happened" in str(caught.value) and KEY not in str(caught.value)


def test_keeps_the_error_code_and_field_from_rootfis_body() -> None:
    client = client_for(lambda r: error(400, "PLATFORM_ERROR", "email"))
    with client, pytest.raises(errors.Refused) as caught:
        client.create_customer(1089, {"name": "A"})
    assert (caught.value.code, caught.value.field) == ("PLATFORM_ERROR", "email")


def test_sends_the_key_only_in_the_api_key_header_and_run_async_in_query_and_body() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(
            200,
            json={"sync_id": "s1", "data": []},
            headers={"Date": "Sat, 28 Nov 2026 16:00:05 GMT"},
        )

    with client_for(handler) as client:
        sync_id, accepted_at = client.create_customers_async(1089, [{"name": "A"}, {"name": "B"}])
    assert sync_id == "s1"
    assert accepted_at == datetime(2026, 11, 28, 16, 0, 5, tzinfo=UTC)
    request = seen[0]
    assert request.headers["api_key"] == KEY
    assert KEY not in str(request.url)
    assert request.url.params["run_async"] == "true"
    assert json.loads(request.content)["run_async"] is True
    assert KEY not in repr(client)


def test_waits_out_a_429_and_asks_again() -> None:
    answers = [error(429, "RATE_LIMITED", **{"Retry-After": "0.01"})]

    def handler(request: httpx.Request) -> httpx.Response:
        if answers:
            return answers.pop()
        return httpx.Response(200, json={"data": [{"rootfi_id": 7, "name": "A"}], "sync_id": "s"})

    with client_for(handler) as client:
        assert client.create_customer(1089, {"name": "A"})["rootfi_id"] == 7


def test_gives_up_on_429s_past_its_wait_budget() -> None:
    client = client_for(lambda r: error(429, "RATE_LIMITED", **{"Retry-After": "1"}))
    with client, pytest.raises(errors.RateLimited) as caught:
        client.create_customer(1089, {"name": "A"})
    assert caught.value.retry_after == 1.0


@pytest.mark.parametrize(
    ("failure", "sent"),
    [
        (httpx.ConnectError, False),  # the connection never opened: surely not sent
        (httpx.RemoteProtocolError, True),  # the answer was lost: in doubt
    ],
)
def test_a_transport_failure_says_whether_the_request_may_have_been_sent(
    failure: type[httpx.TransportError], sent: bool
) -> None:
    def fail(request: httpx.Request) -> httpx.Response:
        raise failure("it broke", request=request)

    with client_for(fail) as client, pytest.raises(errors.TransportError) as caught:
        client.create_customer(1089, {"name": "A"})
    assert caught.value.sent is sent


def test_follows_next_cursors_until_null() -> None:
    pages = {None: (["a", "b"], "c1"), "c1": (["c"], "c2"), "c2": ([], None)}

    def handler(request: httpx.Request) -> httpx.Response:
        data, nxt = pages[request.url.params.get("next")]
        return httpx.Response(200, json={"data": [{"rootfi_id": d} for d in data], "next": nxt})

    with client_for(handler) as client:
        assert [r["rootfi_id"] for r in client.iter_customers(1089)] == ["a", "b", "c"]


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({"Retry-After": "3"}, 3.0),
        ({"X-RateLimit-Reset": "2000000010"}, 10.0),
        ({"X-RateLimit-Reset": "5"}, 5.0),
        ({}, None),
        ({"Retry-After": "soon"}, None),
    ],
)
def test_reads_the_wait_from_retry_after_or_rate_limit_reset(
    headers: dict[str, str], expected: float | None
) -> None:
    response = httpx.Response(429, headers=headers)
    assert retry_after_seconds(response, now=2_000_000_000) == expected


@pytest.fixture
def no_pause(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("rootfi_sync.rootfi.client.GET_RETRY_PAUSE", 0.0)


@pytest.mark.usefixtures("no_pause")
def test_asks_a_failed_get_again_since_a_get_changes_nothing() -> None:
    answers = [error(500, "BOOM"), httpx.RemoteProtocolError("lost"), None]
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer or httpx.Response(200, json={"data": {"status": "SUCCESS"}})

    with client_for(handler) as client:
        assert client.get_sync("s-1")["status"] == "SUCCESS"
    assert seen == ["GET", "GET", "GET"]


@pytest.mark.usefixtures("no_pause")
def test_never_resends_a_failed_create_itself_and_gives_a_get_three_more_tries() -> None:
    seen: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.method)
        return error(503, "DOWN")

    with client_for(handler) as client:
        with pytest.raises(errors.ServerError):
            client.create_customer(1089, {"name": "A"})
        with pytest.raises(errors.ServerError):
            client.get_sync("s-1")
    assert seen == ["POST", "GET", "GET", "GET", "GET"]
