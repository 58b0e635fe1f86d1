"""The alerts `rootfi-sync setup --notify` creates, firing on a real server: a failed run, a
circuit breaker, a high failure share, a cancelled scheduled run and no fresh scheduled sync
each reach a webhook once, the key in none."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from rootfi_sandbox import SandboxServer

from tests.e2e.deployment import API_KEY, COMPANY, POOL, Deployed, worker_env
from tests.e2e.prefect_server import REPO, PrefectServer, WebhookReceiver, run, start, work
from tests.factories import make_customer
from tests.integration.helpers import seed_source

ROOTFI_SYNC = str(REPO / ".venv" / "bin" / "rootfi-sync")
MANUAL = "sync-customers/manual-sync"
SCHEDULED = "sync-customers/scheduled-sync"


@pytest.fixture
def hook(server: PrefectServer) -> Iterator[WebhookReceiver]:
    """A webhook on 127.0.0.1 behind the notification block `rootfi-sync-alerts`; the alerts
    are deleted afterwards, so they fire at no other test."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    with WebhookReceiver() as receiver:
        CustomWebhookNotificationBlock(
            name="rootfi-sync-alerts",
            url=receiver.url,
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
        ).save("rootfi-sync-alerts", overwrite=True)
        yield receiver
        with get_client(sync_client=True) as client:
            for automation in client.read_automations():
                if automation.name.startswith("rootfi-sync: "):
                    client.delete_automation(automation.id)


def notes_within(hook: WebhookReceiver, wanted: int, timeout: float) -> dict[str, str]:
    """The distinct subjects received, each with its first body, once `wanted` arrived."""
    deadline = time.monotonic() + timeout
    while True:
        notes: dict[str, str] = {}
        for note in map(json.loads, list(hook.bodies)):
            notes.setdefault(note["subject"], note["body"])
        if len(notes) >= wanted or time.monotonic() > deadline:
            return notes
        time.sleep(0.5)


def one(notes: dict[str, str], pattern: str) -> str:
    """The body of the one note whose subject matches `pattern`."""
    [subject] = [s for s in notes if re.fullmatch(pattern, s)]
    return notes[subject]


def test_setup_notify_alerts_fire_each_for_its_own_trouble(
    server: PrefectServer,
    deployed: Deployed,
    sandbox: SandboxServer,
    source_url: str,
    worker_home: Path,
    hook: WebhookReceiver,
) -> None:
    rows = [make_customer() for _ in range(3)]
    rows[0]["name"] = "   "
    refused = [make_customer(email=f"r{i}@refused.example") for i in range(25)]
    seed_source(source_url, rows + refused)
    args = ["setup", "--notify", "rootfi-sync-alerts", "--freshness-minutes", "0.5"]
    setup = run([ROOTFI_SYNC, *args], server.env())
    assert setup.returncode == 0, setup.stdout + setup.stderr
    assert setup.stdout.count("created automation") == 5, setup.stdout

    for _ in range(2):  # one runs and fails (no such company), the other is cancelled
        start(SCHEDULED, company_id=999)
    start(MANUAL, limit=3)  # 1 of 3 customers invalid: a high failure share
    start(MANUAL, customer_ids=[r["id"] for r in refused])  # the circuit breaker
    work(POOL, worker_env(server, sandbox, source_url), cwd=worker_home)
    notes = notes_within(hook, 5, timeout=90)

    run_name = r"company-\d+-\d{8}-\d{6}"
    assert "999" in one(notes, rf"rootfi-sync: sync-customers run {run_name} is Failed")
    body = one(notes, rf"rootfi-sync: circuit breaker stopped sync-customers run {run_name}")
    assert "circuit breaker: RootFi refused 25 of 25 customers sent" in body
    cancelled = one(notes, r"rootfi-sync: scheduled run \S+ was cancelled")  # never started,
    assert "concurrency" in cancelled  # so never named after its company
    assert f"rootfi-sync: company {COMPANY}: 1 of 3 customers failed" in notes
    stale = notes["rootfi-sync: no scheduled run completed in 0.5 minutes"]
    assert "whether the schedule is paused" in stale
    assert len(notes) == 5, notes  # the breaker's failed run has its own alert only
    assert all(API_KEY not in body for body in hook.bodies)
