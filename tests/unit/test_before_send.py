"""The client asks `before_send` right before each POST leaves, the first and each one after a
429 (issue 16, point 5): a run whose lease the database no longer vouches for sends nothing."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from rootfi_sync import errors
from rootfi_sync.rootfi.client import RootFiClient

RECORD = {"rootfi_id": 7, "name": "Ada"}


def client_with(answers: list[httpx.Response], posts: list[httpx.Request]) -> RootFiClient:
    def handler(request: httpx.Request) -> httpx.Response:
        posts.append(request)
        return answers.pop(0)

    return RootFiClient(
        "http://127.0.0.1:9/v3", SecretStr("sk-test"), transport=httpx.MockTransport(handler)
    )


def throttled() -> httpx.Response:
    return httpx.Response(
        429, json={"error": {"message": "slow down"}}, headers={"retry-after": "0"}
    )


def test_a_post_after_a_429_is_not_sent_once_the_lease_is_no_longer_vouched_for() -> None:
    posts: list[httpx.Request] = []
    vouched = [True, False]  # held for the first try; lost while it waited out the 429
    client = client_with([throttled(), throttled()], posts)
    with client, pytest.raises(errors.LeaseLost):
        client.create_customer(1089, {"name": "Ada"}, before_send=lambda: vouched.pop(0))

    assert len(posts) == 1
    assert vouched == []


@pytest.mark.parametrize("run_async", [False, True])
def test_every_post_is_vouched_for_right_before_it_leaves(run_async: bool) -> None:
    posts: list[httpx.Request] = []
    asked: list[int] = []
    ok = httpx.Response(200, json={"data": [RECORD], "sync_id": "s-1"})
    with client_with([throttled(), ok], posts) as client:

        def before_send() -> bool:
            asked.append(len(posts))  # how many POSTs had left when it was asked
            return True

        if run_async:
            client.create_customers_async(1089, [{"name": "Ada"}], before_send=before_send)
        else:
            client.create_customer(1089, {"name": "Ada"}, before_send=before_send)

    assert asked == [0, 1]
    assert len(posts) == 2


def test_nothing_leaves_when_the_lease_is_gone_before_the_first_post() -> None:
    posts: list[httpx.Request] = []
    with client_with([], posts) as client, pytest.raises(errors.LeaseLost):
        client.create_customers_async(1089, [{"name": "Ada"}], before_send=lambda: False)

    assert posts == []
