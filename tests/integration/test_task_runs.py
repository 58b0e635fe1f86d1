"""What the Prefect UI shows of a run: its task runs, the edges between them, its progress
bar. The session's test server records no task runs (`_quiet_server`): these flows run in a
process of their own against `task_run_server`, which does. The module goes whole to one
xdist worker (tests/conftest.py), so that server starts once."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

from prefect.client.orchestration import PrefectClient, SyncPrefectClient
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from rootfi_sandbox import SandboxServer

from tests.factories import make_customer
from tests.integration.helpers import seed_source, start_flow_process

STEPS = ("claim-batch", "build-payloads", "record-intent", "send-batch", "record-outcomes")
RUN = (
    "import json; from flows.sync_customers import sync_customers; "
    "state = sync_customers(return_state=True); "
    "print(json.dumps([str(state.state_details.flow_run_id), state.result()], default=str))"
)


def synced_run(api_url: str, cwd: Path, sqlite_url: str, customers: int) -> str:
    """Seed `customers` new customers, run sync-customers on them in a process of its own
    against `api_url`, check it synced them all; return its flow run id."""
    seed_source(sqlite_url, [make_customer() for _ in range(customers)])
    process = start_flow_process({"PREFECT_API_URL": api_url}, cwd, code=RUN)
    out, err = process.communicate(timeout=300)
    assert process.returncode == 0, err.decode()[-3000:]
    flow_run_id, counts = json.loads(out.decode().strip().splitlines()[-1])
    assert counts["synced"] == customers, counts
    return str(flow_run_id)


def task_runs(api_url: str, flow_run_id: str, wanted: set[str]) -> dict[str, Any]:
    """The flow run's task runs by name (without the suffix Prefect gives a task run not
    named by the task), once the server has those `wanted` (they reach it as events)."""

    async def read() -> dict[str, Any]:
        flow_runs = FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        async with PrefectClient(api_url) as client:
            for _ in range(300):
                runs = await client.read_task_runs(flow_run_filter=flow_runs)
                named = {re.sub(r"-[0-9a-f]{3}$", "", r.name): r for r in runs}
                if wanted <= set(named):
                    return named
                await asyncio.sleep(0.1)
        return named

    return asyncio.run(read())


def progress_bars(api_url: str, flow_run_id: str) -> list[Any]:
    with SyncPrefectClient(api_url) as client:
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
        )
    return [a for a in artifacts if a.type == "progress"]


def test_a_run_of_one_page_runs_its_batch_s_steps_and_its_report_and_nothing_more(
    sqlite_url: str, sandbox: SandboxServer, configure: Any, task_run_server: str, tmp_path: Path
) -> None:
    # Before 2026-12-03 every run also counted what was pending (a task and a progress
    # artifact), claimed a second, empty page and looked for orphans (two more task runs):
    # in a fan-out over many small companies that was a third of each company's Prefect API
    # load.
    configure(sqlite_url, rootfi_batch_size=5)

    flow_run_id = synced_run(task_run_server, tmp_path, sqlite_url, customers=3)

    every = {f"{step}-1" for step in STEPS} | {"check-access", "publish-report"}
    assert set(task_runs(task_run_server, flow_run_id, every)) == every
    assert progress_bars(task_run_server, flow_run_id) == []


def test_the_ui_draws_each_batch_as_claim_build_intent_send_record(
    sqlite_url: str, sandbox: SandboxServer, configure: Any, task_run_server: str, tmp_path: Path
) -> None:
    """Each task run names the one before it among its inputs (what the UI draws as edges)."""
    configure(sqlite_url, rootfi_batch_size=2)

    flow_run_id = synced_run(task_run_server, tmp_path, sqlite_url, customers=4)

    wanted = {f"{step}-{batch}" for step in STEPS for batch in (1, 2)} | {"publish-report"}
    runs = task_runs(task_run_server, flow_run_id, wanted)
    # The second page was the last (no third claim), and there was a second: a progress bar.
    assert "claim-batch-3" not in runs and "count-pending" in runs
    assert len(progress_bars(task_run_server, flow_run_id)) == 1

    def upstream(name: str) -> set[str]:
        ids = {i.id for inputs in runs[name].task_inputs.values() for i in inputs}
        return {r.name for r in runs.values() if r.id in ids}

    for batch in (1, 2):  # the batch's own step before is among each one's inputs
        assert f"claim-batch-{batch}" in upstream(f"build-payloads-{batch}")
        assert f"build-payloads-{batch}" in upstream(f"record-intent-{batch}")
        assert f"record-intent-{batch}" in upstream(f"send-batch-{batch}")
        assert f"send-batch-{batch}" in upstream(f"record-outcomes-{batch}")
