"""The scheduled run's timeout: a run over it ends TimedOut, and nothing is sent twice."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from rootfi_sandbox import SandboxServer

from flows.scheduled_sync import TIMEOUT_SECONDS, scheduled_sync
from tests.factories import make_customer
from tests.integration.helpers import assert_exactly_once, ledger_rows, seed_source
from tests.waiting import attempts_older_than, leases_run_out

pytestmark = pytest.mark.usefixtures("prefect_server")


def test_the_scheduled_flow_is_sync_customers_stopped_before_the_next_quarter_hour() -> None:
    assert scheduled_sync.name == "sync-customers"
    assert scheduled_sync.timeout_seconds == TIMEOUT_SECONDS == 14 * 60


def test_a_run_over_its_timeout_ends_timed_out_and_the_next_run_sends_the_rest_once(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer() for _ in range(40)]
    seed_source(sqlite_url, rows)
    configure(sqlite_url, rootfi_concurrency=1, rootfi_batch_size=5, rootfi_lease_seconds=3)
    sandbox.admin.set_faults(latency_seconds=0.2)  # ~8 s for all: over the 4 s below

    state = scheduled_sync.with_options(timeout_seconds=4)(return_state=True)

    assert state.is_failed() and state.name == "TimedOut", state
    assert "exceeded timeout of 4" in (state.message or "")
    statuses = Counter(r.status for r in ledger_rows(sqlite_url).values())
    assert 0 < statuses["SYNCED"] < len(rows)  # stopped mid-way; a batch may be left SENDING
    sandbox.admin.set_faults(latency_seconds=0)
    leases_run_out(sqlite_url)  # the next run takes over the rest, looking up first what was
    # left SENDING (its answer never recorded, or never sent: the timeout may land between a
    # batch's intent and its send), once what was sent had its time to land (the skew, 5 s)
    attempts_older_than(sqlite_url, 5)

    assert scheduled_sync(return_state=True).is_completed()
    assert_exactly_once(sandbox, sqlite_url, rows)
