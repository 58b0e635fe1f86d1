"""Lookup windows on RootFi's clock (issue 16, point 7): `doubt_since` is stamped on the
database's clock, records carry RootFi's `rootfi_updated_at`; with the database's clock far
ahead of RootFi's, a window on the database's clock alone missed the record that landed and
the customer was sent again. The skew is measured from RootFi's `Date` and logged."""

from __future__ import annotations

import logging
import re
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from rootfi_sandbox import SandboxServer

from rootfi_sync.models import CustomerPayload
from rootfi_sync.outcomes import Status
from rootfi_sync.rootfi.client import RootFiClient
from rootfi_sync.rootfi.decisions import Timing
from rootfi_sync.rootfi.delivery import BatchIncomplete, Delivery, FreeBook
from rootfi_sync.rootfi.lookup import Item
from tests.integration.conftest import API_KEY, COMPANY
from tests.waiting import stored

AHEAD = timedelta(minutes=10)


def database_clock() -> datetime:
    """The database's clock, ten minutes ahead of RootFi's (which is this machine's)."""
    return datetime.now(UTC) + AHEAD


@pytest.mark.parametrize("mode", ["single", "batch"])
def test_a_database_clock_far_ahead_of_rootfis_still_finds_the_record_that_landed(
    sandbox: SandboxServer, mode: str, caplog: pytest.LogCaptureFixture
) -> None:
    item = Item("c-1", CustomerPayload(name="Ada Lovelace", email="ada@example.com"))
    timing = Timing(sync_settle=0, async_settle=0, skew=timedelta(seconds=5))
    sandbox.admin.set_faults(lost_answer_rate=1.0, seed=1)
    with RootFiClient(sandbox.api_url, SecretStr(API_KEY)) as client, ThreadPoolExecutor(2) as pool:
        delivery = Delivery(
            client,
            COMPANY,
            mode,
            pool,
            book=FreeBook(clock=database_clock),
            timing=timing,
        )
        intent = database_clock()
        with pytest.raises(BatchIncomplete) as caught:  # created; the answer was lost
            delivery.deliver([item], intent)
        sent_at = caught.value.pending["c-1"].sent_at
        sandbox.admin.set_faults(lost_answer_rate=0.0)
        stored(sandbox, COMPANY, 1)  # the record landed
        in_doubt = replace(item, doubt_since=intent, last_sent=sent_at, last_mode=mode)

        with caplog.at_level(logging.DEBUG, logger="rootfi_sync.rootfi.lookup"):
            outcomes = delivery.deliver([in_doubt], database_clock())

    assert [(o.status, o.adopted) for o in outcomes] == [(Status.SYNCED, True)]
    assert sandbox.admin.state()["requests"]["creates"] == 1
    logged = re.search(
        r"database's clock is (\d+\.\d) s ahead of RootFi's: lookup windows are", caplog.text
    )
    # RootFi's Date is to the second, and a loaded machine adds its own delay to the reading.
    assert logged is not None and 599 <= float(logged[1]) <= 605
