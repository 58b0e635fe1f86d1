"""One request budget for the API key, shared by every run through Prefect's rate limit."""

from __future__ import annotations

import bisect
import logging
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rootfi_sandbox import SandboxServer
from rootfi_sandbox.timefmt import ms_from_iso

from rootfi_sync.orchestration.prefect_setup import setup_prefect
from rootfi_sync.rootfi.governor import SharedRateLimit, TokenBucket
from tests.factories import make_customer, sandbox_for
from tests.integration.conftest import API_KEY, COMPANY
from tests.integration.helpers import (
    assert_exactly_once,
    counts_of,
    seed_source,
    start_flow_process,
    wait_for_claim_owners,
)

pytestmark = pytest.mark.usefixtures("prefect_server")
BUDGET = 1200  # requests a minute: 20 a second
WINDOW_MS = 10_000


@pytest.fixture
def limited_sandbox() -> Iterator[SandboxServer]:
    with sandbox_for(API_KEY, COMPANY, rate_limit_per_minute=BUDGET) as server:
        yield server


def test_two_runs_together_stay_within_one_budget_and_are_never_throttled(
    sqlite_url: str, limited_sandbox: SandboxServer, configure: Any, tmp_path: Path
) -> None:
    rows = [make_customer() for _ in range(400)]
    seed_source(sqlite_url, rows)
    configure(
        sqlite_url,
        rootfi_base_url=limited_sandbox.api_url,
        rootfi_concurrency=8,
        rootfi_rate_limit_per_minute=BUDGET,
        rootfi_batch_size=50,
    )
    setup_prefect(work_pool="rootfi-sync-test", api_key=None, rate_limit_per_minute=BUDGET)

    # A flow process can take many seconds to start on a busy machine, and the first one alone
    # sends 400 customers in 20 s: slow RootFi down until both runs have claimed customers.
    limited_sandbox.admin.set_faults(latency_seconds=1.0)
    runs = [start_flow_process({}, tmp_path) for _ in range(2)]
    try:
        wait_for_claim_owners(sqlite_url, owners=2, runs=runs)
    finally:
        limited_sandbox.admin.set_faults(latency_seconds=0.0)
    results = [run.communicate(timeout=300) for run in runs]

    assert [run.returncode for run in runs] == [0, 0], [e.decode()[-3000:] for _, e in results]
    assert all(counts_of(out)["picked"] > 0 for out, _ in results)  # both runs sent, together
    by_status = limited_sandbox.admin.state()["requests"]["by_status"]
    assert by_status.get("429", 0) == 0
    assert_exactly_once(limited_sandbox, sqlite_url, rows)
    # Paced as one budget, not one each: the sandbox's own creation times, in any 10 seconds.
    stamps = sorted(ms_from_iso(c["rootfi_created_at"]) for c in limited_sandbox.admin.customers())
    busiest = max(bisect.bisect_left(stamps, t + WINDOW_MS) - i for i, t in enumerate(stamps))
    assert busiest <= 1.15 * BUDGET * WINDOW_MS / 60_000, f"{busiest} creates in 10 s"


@pytest.fixture
def stuck_limit() -> Iterator[str]:
    """A global limit whose slots are all taken and never decay (PrefectHQ/prefect#20187)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import GlobalConcurrencyLimitCreate

    name = f"rootfi-stuck-{uuid.uuid4().hex[:8]}"
    with get_client(sync_client=True) as client:
        client.create_global_concurrency_limit(
            GlobalConcurrencyLimitCreate(name=name, limit=2, slot_decay_per_second=0)
        )
        client.increment_concurrency_slots([name], 2, "concurrency")
        yield name
        client.delete_global_concurrency_limit_by_name(name)


def test_a_shared_limit_whose_slots_never_free_is_waited_for_a_bounded_time_then_run_alone(
    stuck_limit: str, caplog: pytest.LogCaptureFixture
) -> None:
    local = TokenBucket(6000, burst=100)
    governor = SharedRateLimit(
        stuck_limit, local, chunk=1, decay=1.0, max_wait=1.5, logger=logging.getLogger("t")
    )
    started = time.monotonic()
    with caplog.at_level(logging.WARNING, logger="t"):
        for _ in range(20):
            governor.acquire()
    waited = time.monotonic() - started
    governor.close()

    assert governor.alone
    assert 1.5 <= waited < 6.0, waited  # the bound, once: then the local bucket's pace
    [warning] = [r.getMessage() for r in caplog.records if "no free slot" in r.getMessage()]
    assert stuck_limit in warning and "paces itself alone, at 6000 requests a minute" in warning
