"""What the Prefect UI shows of a run: its task runs, the edges between them, its progress
bar. These tests read task runs, which the session's test server does not record
(`_quiet_server`): they run against `task_runs_recorded`'s server, all on one xdist worker
(tests/conftest.py), so that server starts once."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest
from prefect import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from rootfi_sandbox import SandboxServer

from flows.sync_customers import sync_customers
from tests.factories import make_customer
from tests.integration.helpers import seed_source

pytestmark = pytest.mark.usefixtures("prefect_server", "task_runs_recorded")


STEPS = ("claim-batch", "build-payloads", "record-intent", "send-batch", "record-outcomes")


def task_runs(flow_run_id: Any, wanted: set[str]) -> dict[str, Any]:
    """The flow run's task runs by name (without the suffix Prefect gives a task run not
    named by the task), once the server has those `wanted` (they reach it as events)."""

    async def read() -> dict[str, Any]:
        flow_runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        async with get_client() as client:
            for _ in range(300):
                runs = await client.read_task_runs(flow_run_filter=flow_runs)
                named = {re.sub(r"-[0-9a-f]{3}$", "", r.name): r for r in runs}
                if wanted <= set(named):
                    return named
                await asyncio.sleep(0.1)
        return named

    return asyncio.run(read())


def progress_bars(flow_run_id: Any) -> list[Any]:
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return [a for a in artifacts if a.type == "progress"]


def test_a_run_of_one_page_runs_its_batch_s_steps_and_its_report_and_nothing_more(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    # Before 2026-12-03 every run also counted what was pending (a task and a progress
    # artifact), claimed a second, empty page and looked for orphans (two more task runs):
    # in a fan-out over many small companies that was a third of each company's Prefect API
    # load.
    seed_source(sqlite_url, [make_customer() for _ in range(3)])
    configure(sqlite_url, rootfi_batch_size=5)

    state = sync_customers(return_state=True)  # type: ignore[call-overload]

    assert state.is_completed() and state.result()["synced"] == 3
    flow_run_id = state.state_details.flow_run_id
    every = {f"{step}-1" for step in STEPS} | {"check-access", "publish-report"}
    assert set(task_runs(flow_run_id, every)) == every
    assert progress_bars(flow_run_id) == []


def test_the_ui_draws_each_batch_as_claim_build_intent_send_record(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    """Each task run names the one before it among its inputs (what the UI draws as edges)."""
    seed_source(sqlite_url, [make_customer() for _ in range(4)])
    configure(sqlite_url, rootfi_batch_size=2)

    state = sync_customers(return_state=True)  # type: ignore[call-overload]

    wanted = {f"{step}-{batch}" for step in STEPS for batch in (1, 2)} | {"publish-report"}
    runs = task_runs(state.state_details.flow_run_id, wanted)
    # The second page was the last (no third claim), and there was a second: a progress bar.
    assert "claim-batch-3" not in runs and "count-pending" in runs
    assert len(progress_bars(state.state_details.flow_run_id)) == 1

    def upstream(name: str) -> set[str]:
        ids = {i.id for inputs in runs[name].task_inputs.values() for i in inputs}
        return {r.name for r in runs.values() if r.id in ids}

    for batch in (1, 2):  # the batch's own step before is among each one's inputs
        assert f"claim-batch-{batch}" in upstream(f"build-payloads-{batch}")
        assert f"build-payloads-{batch}" in upstream(f"record-intent-{batch}")
        assert f"record-intent-{batch}" in upstream(f"send-batch-{batch}")
        assert f"send-batch-{batch}" in upstream(f"record-outcomes-{batch}")
