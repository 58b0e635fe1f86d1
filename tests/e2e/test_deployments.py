"""prefect.yaml and the docs' commands against a real Prefect server and process workers.

The package's one `prefect server start` serves these tests (tests/e2e/conftest.py); they
drive it with the commands docs/running-on-prefect.md gives (`prefect deploy`, `prefect
deployment run`, `prefect worker start`) and read the results back with Prefect's client
(the two workers' test asks for its runs with the client: `prefect_server.start`).
Deployments are made from a clone and run by workers started in another folder: the code a
run imports comes from the git_clone pull step.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.schedules import CronSchedule
from pydantic import SecretStr
from rootfi_sandbox import SandboxServer

from rootfi_sync.orchestration.prefect_setup import setup_prefect
from tests.e2e.deployment import API_KEY, BRANCH, COMPANY, POOL, Deployed, worker_env
from tests.e2e.prefect_server import (
    CLONE_MARKER,
    PREFECT,
    REPO,
    PrefectServer,
    run,
    start,
    trigger,
    wait_for_runs,
    work,
    workers,
)
from tests.factories import make_customer, sandbox_for
from tests.integration.helpers import ledger_rows, seed_source

TAGS = ["rootfi-sync", "customers"]
MANUAL = "sync-customers/manual-sync"


def test_the_deployments_clone_the_repository_and_carry_schedule_slug_and_timeout(
    deployed: Deployed,
) -> None:
    scheduled, manual = deployed.scheduled, deployed.manual

    [schedule] = scheduled.schedules
    assert isinstance(schedule.schedule, CronSchedule)
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("*/15 * * * *", "UTC")
    assert schedule.slug == "every-15-minutes" and schedule.active
    assert scheduled.entrypoint == "flows/scheduled_sync.py:scheduled_sync"  # the 14-min timeout
    assert manual.entrypoint == "flows/sync_customers.py:sync_customers"
    assert scheduled.tags == manual.tags == TAGS
    assert scheduled.work_pool_name == manual.work_pool_name == POOL
    assert scheduled.parameters == {"batch_size": 100, "write_mode": "single", "dry_run": False}
    assert manual.schedules == [] and manual.parameters == {"dry_run": False}
    clone_step = {"id": "clone", "repository": f"file://{deployed.origin}", "branch": BRANCH}
    assert (
        scheduled.pull_steps
        == manual.pull_steps
        == [{"prefect.deployments.steps.git_clone": clone_step}]
    )
    assert str(REPO) not in json.dumps(manual.pull_steps)
    schema = manual.parameter_openapi_schema or {}
    assert list(schema["properties"])[:5] == [
        "company_id",
        "batch_size",
        "write_mode",
        "dry_run",
        "limit",
    ]
    assert manual.enforce_parameter_schema and scheduled.enforce_parameter_schema


def test_the_fan_out_is_deployed_with_its_schedule_off_a_slug_a_timeout_and_one_run_at_a_time(
    deployed: Deployed,
) -> None:
    with get_client(sync_client=True) as client:
        fan_out = client.read_deployment_by_name("sync-all-companies/all-companies")

    [schedule] = fan_out.schedules
    assert isinstance(schedule.schedule, CronSchedule)
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("*/15 * * * *", "UTC")
    assert schedule.slug == "all-companies-every-15-minutes" and not schedule.active
    assert fan_out.entrypoint == "flows/scheduled_sync.py:scheduled_all_companies"
    assert fan_out.global_concurrency_limit is not None
    assert fan_out.global_concurrency_limit.limit == 1
    assert fan_out.concurrency_options is not None
    assert fan_out.concurrency_options.collision_strategy == "CANCEL_NEW"
    assert (fan_out.tags, fan_out.work_pool_name) == (TAGS, POOL)
    assert fan_out.parameters == {"max_concurrent": 4}
    schema = fan_out.parameter_openapi_schema or {}
    assert {"group_companies", "group_customers"} <= set(schema["properties"])


def test_the_scheduled_entries_stop_before_the_next_tick_is_due() -> None:
    from flows.scheduled_sync import scheduled_all_companies, scheduled_sync

    assert scheduled_sync.timeout_seconds == scheduled_all_companies.timeout_seconds == 14 * 60
    assert scheduled_all_companies.name == "sync-all-companies"


def test_a_schedule_paused_in_the_ui_stays_paused_when_deploying_again(
    server: PrefectServer, deployed: Deployed
) -> None:
    with get_client(sync_client=True) as client:
        [schedule] = client.read_deployment_schedules(deployed.scheduled.id)
        client.update_deployment_schedule(deployed.scheduled.id, schedule.id, active=False)

        deploy = [PREFECT, "--no-prompt", "deploy", "--all"]
        again = run(deploy, deployed.deploy_env(server), cwd=deployed.clone, timeout=120)

        [after] = client.read_deployment_schedules(deployed.scheduled.id)
        client.pause_deployment(deployed.scheduled.id)  # still no scheduled run for the workers
        fan_out = client.read_deployment_by_name("sync-all-companies/all-companies")
    assert again.returncode == 0, again.stdout + again.stderr
    assert (after.id, after.slug, after.active) == (schedule.id, "every-15-minutes", False)
    assert [s.active for s in fan_out.schedules] == [False]  # deployed off again


def test_a_manual_run_picked_up_by_a_worker_elsewhere_syncs_the_customers_from_a_clone(
    server: PrefectServer,
    deployed: Deployed,
    sandbox: SandboxServer,
    source_url: str,
    worker_home: Path,
) -> None:
    rows = [make_customer() for _ in range(6)]
    rows[1]["email"] = "not-an-email"
    rows[3]["email"] = "refused.customer@refused.example"  # the platform says no
    seed_source(source_url, rows)
    wanted = [r["id"] for r in rows[:5]]  # rows[5] waits for the scheduled sync

    run_id, triggered = trigger(server, MANUAL, f"customer_ids={json.dumps(wanted)}")
    worker = work(POOL, worker_env(server, sandbox, source_url), cwd=worker_home)

    imported = re.findall(rf"{CLONE_MARKER} (\S+)", worker.stdout + worker.stderr)
    assert imported and all(not path.startswith(str(REPO)) for path in imported), imported
    ledger = ledger_rows(source_url)
    assert {k: r.status for k, r in ledger.items()} == {
        str(rows[0]["id"]): "SYNCED",
        str(rows[1]["id"]): "FAILED",
        str(rows[2]["id"]): "SYNCED",
        str(rows[3]["id"]): "FAILED",
        str(rows[4]["id"]): "SYNCED",
    }
    stored = sandbox.admin.customers(COMPANY)
    assert sorted(str(c["rootfi_id"]) for c in stored) == sorted(
        r.rootfi_id for r in ledger.values() if r.status == "SYNCED"
    )
    with get_client(sync_client=True) as client:
        flow_run = client.read_flow_run(run_id)
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[run_id]))
        )
        logs = client.read_logs(LogFilter(flow_run_id={"any_": [run_id]}), limit=200)
    assert flow_run.state is not None and flow_run.state.type == StateType.COMPLETED
    tables = {a.key: json.loads(str(a.data)) for a in artifacts if a.type == "table"}
    summary = {
        row["measure"]: row["value"] for row in tables[f"rootfi-sync-company-{COMPANY}-summary"]
    }
    assert (summary["picked"], summary["synced"], summary["failed"]) == (5, 3, 2)
    failures = tables[f"rootfi-sync-company-{COMPANY}-failures"]
    assert {f["customer_id"] for f in failures} == {str(rows[1]["id"]), str(rows[3]["id"])}
    assert any("Deployment step 'git_clone' completed successfully" in g.message for g in logs)
    assert any("picked 5, synced 3" in log.message for log in logs)
    seen = [log.message for log in logs] + [f"{a.data} {a.description}" for a in artifacts]
    seen += [worker.stdout, worker.stderr, triggered.stdout, json.dumps(flow_run.parameters)]
    assert not [text for text in seen if API_KEY in text]


def rate_limit_line(line: str, head: str, budget: int) -> None:
    """`line` is `head (...)` and gives a burst and a decay that add up to `budget` a minute."""
    pattern = rf"{re.escape(head)} \({budget} a minute: burst (\d+), slot decay ([\d.]+)/s\)"
    found = re.fullmatch(pattern, line)
    assert found, line
    assert int(found[1]) + float(found[2]) * 60 == pytest.approx(budget, abs=0.005 * 60), line


def test_setup_is_idempotent(deployed: Deployed) -> None:
    assert deployed.setup_lines[:2] == [
        f"created work pool {POOL} (process)",
        "saved Secret block rootfi-api-key",
    ]
    rate_limit_line(deployed.setup_lines[2], "created concurrency limit rootfi-api", 100)

    again = setup_prefect(work_pool=POOL, api_key=SecretStr(API_KEY), rate_limit_per_minute=100)
    faster = setup_prefect(work_pool=POOL, api_key=None, rate_limit_per_minute=120)

    assert len(deployed.setup_lines) == len(again) == len(faster) == 3
    assert again[:2] == [f"work pool {POOL} already exists", "updated Secret block rootfi-api-key"]
    rate_limit_line(again[2], "concurrency limit rootfi-api already set", 100)
    assert faster[1] == "no API key given: Secret block rootfi-api-key left as is"
    rate_limit_line(faster[2], "updated concurrency limit rootfi-api", 120)
    with get_client(sync_client=True) as client:
        pools = Counter(p.name for p in client.read_work_pools())
        blocks = Counter(b.name for b in client.read_block_documents(include_secrets=False))
        limits = {c.name: c for c in client.read_global_concurrency_limits(limit=100)}
    assert pools[POOL] == 1 and blocks["rootfi-api-key"] == 1
    assert [n for n in limits if n.startswith("rootfi")] == ["rootfi-api"]
    stored = limits["rootfi-api"]
    assert stored.limit >= 1  # a burst, refilled by the decay: together the budget a minute
    assert stored.limit + stored.slot_decay_per_second * 60 == pytest.approx(120)
    assert all(API_KEY not in line for line in deployed.setup_lines + again + faster)


def test_served_deployments_are_prefect_yaml_s(monkeypatch: pytest.MonkeyPatch) -> None:
    from deployments.serve import deployments

    monkeypatch.chdir(REPO)  # entrypoints are relative to the working directory

    declared = {
        d["name"]: d for d in yaml.safe_load((REPO / "prefect.yaml").read_text())["deployments"]
    }

    served_all = deployments()
    assert sorted(d.name for d in served_all) == sorted(declared)
    assert sorted(declared) == ["all-companies", "manual-sync", "scheduled-sync"]
    for served in served_all:
        spec = declared[served.name]
        assert served.entrypoint == spec["entrypoint"]
        assert (served.tags, served.description) == (spec["tags"], spec["description"])
        assert served.parameters == spec["parameters"]
        schedules = [(s.schedule, s.slug) for s in served.schedules or []]
        assert schedules == [
            (CronSchedule(cron=s["cron"], timezone=s["timezone"]), s["slug"])
            for s in spec["schedules"]
        ]
        assert served.concurrency_limit == (spec.get("concurrency_limit") or {}).get("limit")


@pytest.mark.postgres
def test_two_workers_share_a_fan_out_over_companies_and_send_every_customer_once(
    server: PrefectServer, deployed: Deployed, pg_url: str, worker_home: Path
) -> None:
    companies = (COMPANY, 2001, 2002)
    rows = [{**make_customer(), "company_id": companies[i % 3]} for i in range(120)]
    seed_source(pg_url, rows, source_company_column="tenant")
    with sandbox_for(API_KEY, *companies) as sandbox:
        env = worker_env(server, sandbox, pg_url) | {"SOURCE_COMPANY_COLUMN": "tenant"}
        fan_out = {"max_concurrent": 3, "group_customers": 40}  # a child run per company
        parent_id = start("sync-all-companies/all-companies", **fan_out)
        rival = start(MANUAL, company_id=COMPANY)  # races the fan-out's own
        with workers(POOL, env, worker_home, count=2, limit=3) as logs:
            states = wait_for_runs([parent_id, rival], timeout=240)
        stored = {c: [r["email"] for r in sandbox.admin.customers(c)] for c in companies}

    assert states == {parent_id: StateType.COMPLETED, rival: StateType.COMPLETED}
    for company in companies:
        expected = sorted(r["email"] for r in rows if r["company_id"] == company)
        assert sorted(stored[company]) == expected  # each once, none lost, none misplaced
    assert Counter(r.status for r in ledger_rows(pg_url).values()) == {"SYNCED": 120}
    # Both workers may pick up the same scheduled run; the server lets one of them move it to
    # PENDING and the other logs "Aborted submission". What counts is who actually ran it.
    submitted = []
    for log in logs:
        text = log.read_text()
        tried = re.findall(r"submitting flow run '([0-9a-f-]{36})'", text)
        aborted = set(re.findall(r"Aborted submission of flow run '([0-9a-f-]{36})'", text))
        submitted.append([run_id for run_id in tried if run_id not in aborted])
    every = [UUID(run_id) for ids in submitted for run_id in ids]
    assert len(every) == len(set(every)), submitted  # each run taken by exactly one worker
    assert {parent_id, rival} <= set(every)
    print(f"flow runs submitted per worker: {[len(ids) for ids in submitted]}")
