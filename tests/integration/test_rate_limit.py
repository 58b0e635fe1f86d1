"""One request budget for the API key, shared by every run through Prefect's rate limit."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from rootfi_sync.prefect_setup import setup_prefect
from rootfi_sync.sandbox import SandboxConfig, SandboxServer
from tests.factories import make_customer
from tests.integration.conftest import API_KEY, COMPANY
from tests.integration.helpers import seed_source
from tests.integration.test_exactly_once import assert_exactly_once, start_flow_process

pytestmark = pytest.mark.usefixtures("prefect_server")
BUDGET = 1200  # requests a minute: 20 a second


@pytest.fixture
def limited_sandbox() -> Iterator[SandboxServer]:
    config = SandboxConfig(
        api_keys=frozenset({API_KEY}), company_ids=frozenset({COMPANY}),
        rate_limit_per_minute=BUDGET,
    )  # fmt: skip
    with SandboxServer(config) as server:
        yield server


def test_two_runs_together_stay_within_one_budget_and_are_never_throttled(
    sqlite_url: str, limited_sandbox: SandboxServer, configure: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    rows = [make_customer() for _ in range(400)]
    seed_source(sqlite_url, rows)
    configure(sqlite_url, rootfi_rate_limit_per_minute=BUDGET, rootfi_concurrency=8,
              rootfi_batch_size=50)  # fmt: skip
    monkeypatch.setenv("ROOTFI_BASE_URL", limited_sandbox.api_url)
    setup_prefect(work_pool="rootfi-sync-test", api_key=None, rate_limit_per_minute=BUDGET)

    started = time.monotonic()
    runs = [start_flow_process({}) for _ in range(2)]
    results = [run.communicate(timeout=300) for run in runs]
    elapsed = time.monotonic() - started

    assert [run.returncode for run in runs] == [0, 0], [e.decode()[-3000:] for _, e in results]
    by_status = limited_sandbox.admin.state()["requests"]["by_status"]
    assert by_status.get("429", 0) == 0
    assert elapsed >= 400 / (BUDGET / 60) * 0.9  # paced as one budget, not one each
    assert_exactly_once(limited_sandbox, sqlite_url, rows)
