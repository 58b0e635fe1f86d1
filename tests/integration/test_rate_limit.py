"""One request budget for the API key, shared by every run through Prefect's rate limit."""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rootfi_sync.prefect_setup import setup_prefect
from rootfi_sync.sandbox import SandboxServer
from rootfi_sync.sandbox.timefmt import ms_from_iso
from tests.factories import make_customer, sandbox_for
from tests.integration.conftest import API_KEY, COMPANY
from tests.integration.helpers import (
    assert_exactly_once,
    counts_of,
    seed_source,
    start_flow_process,
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
    configure(sqlite_url, rootfi_base_url=limited_sandbox.api_url, rootfi_concurrency=8,
              rootfi_rate_limit_per_minute=BUDGET, rootfi_batch_size=50)  # fmt: skip
    setup_prefect(work_pool="rootfi-sync-test", api_key=None, rate_limit_per_minute=BUDGET)

    runs = [start_flow_process({}, tmp_path) for _ in range(2)]
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
