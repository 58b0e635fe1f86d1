"""The send cache's key holds the API, the company, the mode and the payloads, and nothing else
(tasks/load.py `send_key`; the cache itself, across runs: tests/integration/test_send_cache.py)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from rootfi_sync.models import CustomerPayload
from rootfi_sync.rootfi.delivery import Item
from tasks.load import SendRequest, send_key

EARLIER = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def request(*names: str, **fields: object) -> SendRequest:
    items = tuple(Item(str(n), CustomerPayload(name=name)) for n, name in enumerate(names))
    base = SendRequest("https://api.example/v3", 1089, "single", 1, items)
    return replace(base, **fields)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "changed",
    [
        {"base_url": "https://other.example/v3"},
        {"company_id": 1090},
        {"mode": "batch"},
        {"items": request("Ada", "Bob").items},
    ],
    ids=["api-url", "company", "mode", "payload"],
)
def test_a_request_that_differs_in_what_is_sent_or_where_has_another_key(
    changed: dict[str, object],
) -> None:
    assert send_key(request("Ada", "Bo", **changed)) != send_key(request("Ada", "Bo"))


def test_the_batch_number_stays_out_of_the_key() -> None:
    assert send_key(request("Ada", "Bo", batch_no=7)) == send_key(request("Ada", "Bo"))


@pytest.mark.parametrize(
    "history",
    [{"doubt_since": EARLIER, "last_sent": EARLIER, "sent_keys": ("k",)}, {"sync_id": "s-1"}],
    ids=["in-doubt", "held-by-an-async-write"],
)
def test_a_batch_holding_a_customer_whose_ledger_state_needs_a_lookup_has_no_cache_key(
    history: dict[str, object],
) -> None:
    items = request("Ada", "Bo").items
    doubtful = (items[0], replace(items[1], **history))  # type: ignore[arg-type]
    assert send_key(request("Ada", "Bo", items=doubtful)) is None
