"""prefect.yaml and the docs' commands against a real Prefect server and a process worker.

One `prefect server start` serves the module; each test drives it with the same commands
docs/running-on-prefect.md gives (`prefect deploy`, `prefect deployment run`, `prefect worker
start`), from the repository root, and reads the results back with Prefect's client.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import pytest
import yaml
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId, LogFilter
from prefect.client.schemas.objects import StateType
from prefect.client.schemas.responses import DeploymentResponse
from prefect.client.schemas.schedules import CronSchedule
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import SecretStr

from rootfi_sync.prefect_setup import setup_prefect
from rootfi_sync.sandbox import SandboxServer
from tests.e2e.prefect_server import (
    PREFECT,
    REPO,
    Finished,
    PrefectServer,
    WebhookReceiver,
    _stop,
    prefect_server,
    run,
)
from tests.factories import make_customer, sandbox_for
from tests.integration.helpers import ledger_rows, seed_source

pytestmark = pytest.mark.e2e

API_KEY = f"sk-e2e-{uuid.uuid4().hex}"  # unknown to any .env: a sync proves the block was read
COMPANY = 1089
POOL = "rootfi-sync"
TAGS = ["rootfi-sync", "customers"]


@dataclass(frozen=True)
class Deployed:
    setup_lines: list[str]
    deploy: Finished
    scheduled: DeploymentResponse
    manual: DeploymentResponse


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real `prefect server start` (SQLite, own PREFECT_HOME) for this module."""
    home = tmp_path_factory.mktemp("prefect-server") / "home"
    home.mkdir()
    with prefect_server(home) as started, temporary_settings({PREFECT_API_URL: started.api_url}):
        yield started


@pytest.fixture(scope="module")
def deployed(server: PrefectServer) -> Deployed:
    """`setup_prefect` then `prefect --no-prompt deploy --all`, as the docs do."""
    lines = setup_prefect(work_pool=POOL, api_key=SecretStr(API_KEY), rate_limit_per_minute=100)
    result = run([PREFECT, "--no-prompt", "deploy", "--all"], server.env(PWD=str(REPO)))
    assert result.returncode == 0, result.stdout + result.stderr
    with get_client(sync_client=True) as client:
        scheduled = client.read_deployment_by_name("sync-customers/scheduled-sync")
        manual = client.read_deployment_by_name("sync-customers/manual-sync")
        # No scheduled run may land on the workers these tests start.
        client.pause_deployment(scheduled.id)
    return Deployed(lines, result, scheduled, manual)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with sandbox_for(API_KEY, COMPANY) as started:
        yield started


@pytest.fixture
def source_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'source.db'}"


def worker_env(server: PrefectServer, sandbox: SandboxServer, source_url: str) -> dict[str, str]:
    env = server.env(
        SOURCE_DATABASE_URL=source_url, ROOTFI_BASE_URL=sandbox.api_url,
        ROOTFI_COMPANY_ID=str(COMPANY), ROOTFI_RATE_LIMIT_PER_MINUTE="0",
    )  # fmt: skip
    assert "ROOTFI_API_KEY" not in env  # the key comes from the Secret block only
    return env


def trigger(server: PrefectServer, *params: str) -> tuple[UUID, Finished]:
    """`prefect deployment run 'sync-customers/manual-sync' --param ...`; the run's id."""
    args = [PREFECT, "deployment", "run", "sync-customers/manual-sync"]
    for param in params:
        args += ["--param", param]
    result = run(args, server.env())
    assert result.returncode == 0, result.stdout + result.stderr
    found = re.search(r"UUID: ([0-9a-f-]{36})", result.stdout)
    assert found, result.stdout
    return UUID(found[1]), result


def work(env: dict[str, str]) -> Finished:
    """`prefect worker start --pool rootfi-sync --run-once`: runs what is due, then exits."""
    result = run([PREFECT, "worker", "start", "--pool", POOL, "--run-once"], env, timeout=150)
    assert result.returncode == 0, result.stdout + result.stderr
    return result


def test_scheduled_deployment_carries_its_cron_and_timezone(deployed: Deployed) -> None:
    scheduled, manual = deployed.scheduled, deployed.manual

    [schedule] = scheduled.schedules
    assert isinstance(schedule.schedule, CronSchedule)
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("*/15 * * * *", "UTC")
    assert schedule.active and not scheduled.paused
    assert scheduled.tags == manual.tags == TAGS
    assert scheduled.work_pool_name == manual.work_pool_name == POOL
    assert scheduled.parameters == {"batch_size": 100, "write_mode": "single", "dry_run": False}
    assert manual.schedules == [] and manual.parameters == {"dry_run": False}
    assert manual.pull_steps == [
        {"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}
    ]
    schema = manual.parameter_openapi_schema or {}
    assert list(schema["properties"]) == [
        "company_id", "batch_size", "write_mode", "dry_run", "limit", "customer_ids",
    ]  # fmt: skip
    assert manual.enforce_parameter_schema


def test_a_manual_run_picked_up_by_a_process_worker_syncs_the_customers(
    server: PrefectServer, deployed: Deployed, sandbox: SandboxServer, source_url: str
) -> None:
    rows = [make_customer() for _ in range(6)]
    rows[1]["email"] = "not-an-email"
    rows[3]["email"] = "refused.customer@refused.example"  # the platform says no
    seed_source(source_url, rows)
    wanted = [r["id"] for r in rows[:5]]  # rows[5] waits for the scheduled sync

    run_id, triggered = trigger(server, f"customer_ids={json.dumps(wanted)}")
    worker = work(worker_env(server, sandbox, source_url))

    ledger = ledger_rows(source_url)
    assert {k: r.status for k, r in ledger.items()} == {
        str(rows[0]["id"]): "SYNCED", str(rows[1]["id"]): "FAILED",
        str(rows[2]["id"]): "SYNCED", str(rows[3]["id"]): "FAILED",
        str(rows[4]["id"]): "SYNCED",
    }  # fmt: skip
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


def test_the_documented_automations_alert_on_a_failed_run_and_a_high_failure_share(
    server: PrefectServer, deployed: Deployed, sandbox: SandboxServer, source_url: str,
    tmp_path: Path,
) -> None:  # fmt: skip
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    rows = [make_customer() for _ in range(3)]
    rows[0]["name"] = "   "
    seed_source(source_url, rows)
    with WebhookReceiver() as hook:
        block_id = CustomWebhookNotificationBlock(
            name="rootfi-sync-alerts", url=hook.url,
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
        ).save("rootfi-sync-alerts", overwrite=True)  # fmt: skip
        text = (REPO / "deployments" / "automations.yaml").read_text()
        automations = tmp_path / "automations.yaml"
        automations.write_text(
            text.replace("NOTIFICATION_BLOCK_ID", str(block_id)).replace(
                "enabled: false", "enabled: true"
            )
        )
        created = run(
            [PREFECT, "automation", "create", "--from-file", str(automations)], server.env()
        )
        assert created.returncode == 0 and "Created 3 automation(s)" in created.stdout, created

        trigger(server, "company_id=999")  # a company the key cannot reach: the run fails
        trigger(server, "limit=3")
        work(worker_env(server, sandbox, source_url))
        notes = [json.loads(body) for body in hook.wait_for(2, timeout=30)]

    subjects = sorted(note["subject"] for note in notes)
    assert len(subjects) == 2, notes
    assert subjects[0] == f"rootfi-sync: company {COMPANY}: 1 of 3 customers failed"
    assert re.fullmatch(r"rootfi-sync: run \S+ is Failed", subjects[1]), subjects
    assert "999" in next(n["body"] for n in notes if "Failed" in n["subject"])
    assert all(API_KEY not in json.dumps(note) for note in notes)


def test_served_deployments_match_prefect_yaml(monkeypatch: pytest.MonkeyPatch) -> None:
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
        schedules = [(s.schedule, s.active) for s in served.schedules or []]
        assert schedules == [
            (CronSchedule(cron=s["cron"], timezone=s["timezone"]), s["active"])
            for s in spec["schedules"]
        ]
        assert served.concurrency_limit == (spec.get("concurrency_limit") or {}).get("limit")


@pytest.mark.postgres
def test_two_workers_share_a_fan_out_over_companies_and_send_every_customer_once(
    server: PrefectServer, deployed: Deployed, pg_url: str, tmp_path: Path
) -> None:
    companies = (COMPANY, 2001, 2002)
    rows = [{**make_customer(), "company_id": companies[i % 3]} for i in range(120)]
    seed_source(pg_url, rows, source_company_column="tenant")
    with sandbox_for(API_KEY, *companies) as sandbox:
        env = worker_env(server, sandbox, pg_url) | {"SOURCE_COMPANY_COLUMN": "tenant"}
        parent = run([PREFECT, "deployment", "run", "sync-all-companies/all-companies",
                      "--param", "max_concurrent=3"], server.env())  # fmt: skip
        assert parent.returncode == 0, parent.stdout + parent.stderr
        parent_id = UUID(re.search(r"UUID: ([0-9a-f-]{36})", parent.stdout)[1])  # type: ignore[index]
        rival, _ = trigger(server, f"company_id={COMPANY}")  # races the fan-out's own run
        logs = [(tmp_path / f"worker{i}.log").open("w") for i in (1, 2)]
        workers = [
            subprocess.Popen(
                [PREFECT, "worker", "start", "--pool", POOL, "--limit", "3", "--name", f"w{i}"],
                cwd=tmp_path, env=env, start_new_session=True, stdout=log,
                stderr=subprocess.STDOUT, text=True,
            )
            for i, log in enumerate(logs, start=1)
        ]  # fmt: skip
        try:
            states = wait_for_runs([parent_id, rival], timeout=240)
        finally:
            for worker in workers:
                _stop(worker)
            for log in logs:
                log.close()
        stored = {c: [r["email"] for r in sandbox.admin.customers(c)] for c in companies}

    assert states == {parent_id: StateType.COMPLETED, rival: StateType.COMPLETED}
    for company in companies:
        expected = sorted(r["email"] for r in rows if r["company_id"] == company)
        assert sorted(stored[company]) == expected  # each once, none lost, none misplaced
    assert Counter(r.status for r in ledger_rows(pg_url).values()) == {"SYNCED": 120}
    # Both workers may pick up the same scheduled run; the server lets one of them move it to
    # PENDING and the other logs "Aborted submission". What counts is who actually ran it.
    submitted = []
    for i in (1, 2):
        log = (tmp_path / f"worker{i}.log").read_text()
        tried = re.findall(r"submitting flow run '([0-9a-f-]{36})'", log)
        aborted = set(re.findall(r"Aborted submission of flow run '([0-9a-f-]{36})'", log))
        submitted.append([run_id for run_id in tried if run_id not in aborted])
    every = [UUID(run_id) for ids in submitted for run_id in ids]
    assert len(every) == len(set(every)), submitted  # each run taken by exactly one worker
    assert {parent_id, rival} <= set(every)
    print(f"flow runs submitted per worker: {[len(ids) for ids in submitted]}")


def wait_for_runs(ids: list[UUID], timeout: float) -> dict[UUID, StateType]:
    """Wait until these flow runs (and the children they started) are final; their states."""
    deadline = time.monotonic() + timeout
    with get_client(sync_client=True) as client:
        while True:
            runs = client.read_flow_runs()
            pending = [r for r in runs if r.state and not r.state.is_final()]
            states = {r.id: r.state.type for r in runs if r.id in ids and r.state}
            if not pending and len(states) == len(ids):
                return states
            assert time.monotonic() < deadline, f"runs not final after {timeout}s: {pending}"
            time.sleep(1.0)
