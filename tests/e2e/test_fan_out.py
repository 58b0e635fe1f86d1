"""The all-companies fan-out on a real server and a process worker: each group of companies
is a child run of the fan-out's run, at most `max_concurrent` run at once, a company the key
cannot reach gets no run and fails the parent, named, with a table of every company's end."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from uuid import UUID

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
from prefect.client.schemas.objects import FlowRun, StateType

from tests.e2e.deployment import API_KEY, POOL, Deployed, worker_env
from tests.e2e.prefect_server import PrefectServer, start, wait_for_runs, workers
from tests.factories import make_customer, sandbox_for
from tests.integration.helpers import ledger_rows, seed_source

pytestmark = pytest.mark.e2e
KNOWN, UNKNOWN = (1089, 2001, 2003), 2002  # the key cannot reach 2002: it fails, with no run


def children_of(parent_id: UUID) -> list[FlowRun]:
    """The flow runs whose parent task run belongs to the run `parent_id`."""
    with get_client(sync_client=True) as client:
        runs = [r for r in client.read_flow_runs() if r.parent_task_run_id is not None]
        return [
            r for r in runs if client.read_task_run(r.parent_task_run_id).flow_run_id == parent_id
        ]


def most_at_once(runs: list[FlowRun]) -> int:
    """The most runs that were running at the same moment."""
    spans = [(r.start_time, r.end_time) for r in runs if r.start_time and r.end_time]
    assert len(spans) == len(runs)
    return max(sum(1 for s, e in spans if s <= start < e) for start, _ in spans)


def test_each_group_is_a_child_run_an_unreachable_company_fails_the_parent_named(
    server: PrefectServer, deployed: Deployed, source_url: str, worker_home: Path
) -> None:
    companies = (*KNOWN, UNKNOWN)
    rows = [{**make_customer(), "company_id": companies[i % 4]} for i in range(40)]
    seed_source(source_url, rows, source_company_column="tenant")
    with sandbox_for(API_KEY, *KNOWN) as sandbox:
        env = worker_env(server, sandbox, source_url) | {"SOURCE_COMPANY_COLUMN": "tenant"}
        # Ten new customers each, and groups of at most ten: each company runs alone.
        parent_id = start("sync-all-companies/all-companies", max_concurrent=2, group_customers=10)
        with workers(POOL, env, worker_home, count=1, limit=4):
            states = wait_for_runs([parent_id], timeout=240)
        stored = Counter(c["email"] for c in sandbox.admin.customers())
        requests = sandbox.admin.state()["requests"]

    children = children_of(parent_id)
    with get_client(sync_client=True) as client:
        parent = client.read_flow_run(parent_id)
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[parent_id]))
        )
    [artifact] = [a for a in artifacts if a.key == "rootfi-sync-all-companies"]
    assert states == {parent_id: StateType.FAILED}
    assert parent.state is not None and parent.state.message is not None
    named = f"{UNKNOWN} (Failed: company {UNKNOWN} is not among"
    assert f"1 of 4 companies did not complete: {named}" in parent.state.message
    assert sorted(c.parameters["company_ids"] for c in children) == [[c] for c in KNOWN]
    assert all(c.parameters["reachable"] == c.parameters["company_ids"] for c in children)
    assert {c.state.type for c in children if c.state} == {StateType.COMPLETED}
    assert most_at_once(children) <= 2
    table = {row["company_id"]: row for row in json.loads(str(artifact.data))}
    assert {c: (r["state"], r["completed"], r["synced"]) for c, r in table.items()} == {
        1089: ("Completed", True, 10),
        2001: ("Completed", True, 10),
        2002: ("Failed", False, 0),
        2003: ("Completed", True, 10),
    }
    assert "company 2002 is not among" in table[UNKNOWN]["message"]  # not ROOTFI_COMPANY_ID's
    assert table[UNKNOWN]["flow_run_id"] == ""
    assert {table[c]["flow_run_id"] for c in KNOWN} == {str(c.id) for c in children}
    expected = Counter(r["email"] for r in rows if r["company_id"] in KNOWN)
    assert stored == expected  # each known company's customers, once
    assert requests["total"] - requests["creates"] == 1  # one companies list, by the parent
    assert {r.status for r in ledger_rows(source_url).values()} == {"SYNCED"}
