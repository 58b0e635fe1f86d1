"""`rootfi-sync setup --notify`: the alerts, created once and updated in place, on Prefect's
test server. (tests/e2e/test_deployments.py makes them fire on a real server.)"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest
from prefect.client.orchestration import get_client
from prefect.events.actions import SendNotification
from prefect.events.schemas.automations import EventTrigger, Posture
from typer.testing import CliRunner

from rootfi_sync.cli.commands import app
from tests.e2e.prefect_server import WebhookReceiver
from tests.integration.conftest import API_KEY

pytestmark = pytest.mark.usefixtures("prefect_server")
POOL = "rootfi-sync-alerts-test"
NAMES = [
    "rootfi-sync: run failed",
    "rootfi-sync: circuit breaker",
    "rootfi-sync: failure share high",
    "rootfi-sync: scheduled run cancelled",
    "rootfi-sync: no fresh sync",
]


@pytest.fixture
def alerts_block(monkeypatch: pytest.MonkeyPatch) -> Iterator[UUID]:
    """A webhook notification block that posts to a listener on 127.0.0.1; what setup made
    is removed afterwards (the test server is shared by the session)."""
    from prefect.blocks.notifications import CustomWebhookNotificationBlock

    monkeypatch.setenv("ROOTFI_RATE_LIMIT_PER_MINUTE", "0")  # no global limit made here

    with WebhookReceiver() as hook:
        block = CustomWebhookNotificationBlock(
            name="rootfi-sync-alerts",
            url=hook.url,
            json_data={"subject": "{{subject}}", "body": "{{body}}"},
        )
        from prefect.blocks.system import Secret

        Secret(value="not a channel").save("rootfi-sync-key", overwrite=True)
        yield block.save("rootfi-sync-alerts", overwrite=True)
    with get_client(sync_client=True) as client:
        for automation in client.read_automations():
            if automation.name.startswith("rootfi-sync: "):
                client.delete_automation(automation.id)
        if any(pool.name == POOL for pool in client.read_work_pools()):
            client.delete_work_pool(POOL)


def setup(*args: str) -> list[str]:
    result = CliRunner().invoke(app, ["setup", "--work-pool", POOL, *args])
    assert result.exit_code == 0, result.output
    assert API_KEY not in result.output
    return result.output.splitlines()


def ours() -> dict[str, Any]:
    with get_client(sync_client=True) as client:
        found = [a for a in client.read_automations() if a.name.startswith("rootfi-sync: ")]
    assert Counter(a.name for a in found) == Counter(NAMES)  # one of each, nothing else
    return {a.name: a for a in found}


def test_setup_notify_creates_the_alerts_once_and_updates_them_when_run_again(
    alerts_block: UUID,
) -> None:
    first = setup("--notify", "rootfi-sync-alerts")
    created = ours()
    again = setup("--notify", "custom-webhook/rootfi-sync-alerts", "--freshness-minutes", "30")
    updated = ours()

    assert [line for line in first if "automation" in line] == [
        f"created automation {name!r} (notifies rootfi-sync-alerts)" for name in NAMES
    ]
    assert sum("updated automation" in line for line in again) == 5
    assert {n: a.id for n, a in updated.items()} == {n: a.id for n, a in created.items()}
    for automation in updated.values():
        [action] = automation.actions
        assert isinstance(action, SendNotification) and action.block_document_id == alerts_block
        assert automation.enabled
    stale = updated["rootfi-sync: no fresh sync"].trigger
    assert isinstance(stale, EventTrigger) and stale.posture == Posture.Proactive
    assert stale.within == timedelta(minutes=30)  # was 60: updated in place
    assert created["rootfi-sync: no fresh sync"].trigger.within == timedelta(minutes=60)  # type: ignore[union-attr]


def test_the_alerts_match_what_each_is_for(alerts_block: UUID) -> None:
    setup("--notify", "rootfi-sync-alerts")
    triggers = {name: a.trigger for name, a in ours().items()}

    def spec(name: str) -> dict[str, Any]:
        trigger = triggers[name]
        assert isinstance(trigger, EventTrigger)
        return json.loads(trigger.model_dump_json(include={"expect", "match", "match_related"}))

    failed = spec("rootfi-sync: run failed")
    assert sorted(failed["expect"]) == [
        "prefect.flow-run.Crashed",
        "prefect.flow-run.Failed",
        "prefect.flow-run.TimedOut",
    ]
    assert failed["match"]["prefect.state-message"] == "!*circuit breaker*"
    assert failed["match_related"][0]["prefect.resource.name"] == [
        "sync-customers",
        "sync-all-companies",
    ]
    assert spec("rootfi-sync: circuit breaker")["match"]["prefect.state-message"] == (
        "*circuit breaker*"
    )
    share = spec("rootfi-sync: failure share high")
    assert share["expect"] == ["rootfi-sync.run.completed"]
    assert share["match"]["rootfi-sync.failure-share"] == "high"
    cancelled = spec("rootfi-sync: scheduled run cancelled")
    assert cancelled["expect"] == ["prefect.flow-run.Cancelled"]
    assert {
        "prefect.resource.role": "deployment",
        "prefect.resource.name": ["scheduled-sync", "all-companies"],
    } in cancelled["match_related"]


def run_event(state: str, flow: str, deployment: str) -> Any:
    """A flow-run state event as Prefect's server receives it, of a run of `deployment`."""
    from prefect.server.events.schemas.events import ReceivedEvent

    related = [("flow", flow), ("deployment", deployment)]
    return ReceivedEvent(
        id=uuid4(),
        occurred=datetime.now(UTC),
        event=f"prefect.flow-run.{state}",
        resource={"prefect.resource.id": f"prefect.flow-run.{uuid4()}"},
        related=[
            {
                "prefect.resource.id": f"prefect.{role}.{uuid4()}",
                "prefect.resource.role": role,
                "prefect.resource.name": name,
            }
            for role, name in related
        ],
    )


def test_the_scheduled_alerts_watch_both_scheduled_deployments_and_not_manual_runs(
    alerts_block: UUID,
) -> None:
    from prefect.server.events.schemas.automations import EventTrigger as ServerTrigger

    setup("--notify", "rootfi-sync-alerts")
    found = ours()
    for name, state in [
        ("rootfi-sync: scheduled run cancelled", "Cancelled"),
        ("rootfi-sync: no fresh sync", "Completed"),
    ]:
        trigger = ServerTrigger.model_validate(found[name].trigger.model_dump(mode="json"))
        covers = {
            deployment: trigger.covers(run_event(state, flow, deployment))
            for flow, deployment in [
                ("sync-customers", "scheduled-sync"),
                ("sync-all-companies", "all-companies"),
                ("sync-customers", "manual-sync"),
            ]
        }
        assert covers == {"scheduled-sync": True, "all-companies": True, "manual-sync": False}, name


def test_setup_refuses_an_unknown_block_or_one_that_cannot_notify_changing_nothing(
    alerts_block: UUID,
) -> None:
    for name, error in [
        ("no-such-block", "no block of that name"),
        ("secret/rootfi-sync-key", "a Secret block cannot notify"),
    ]:
        result = CliRunner().invoke(app, ["setup", "--work-pool", POOL, "--notify", name])
        assert result.exit_code == 2 and error in " ".join(result.output.split()), result.output
    with get_client(sync_client=True) as client:
        assert POOL not in [pool.name for pool in client.read_work_pools()]
        assert not [a for a in client.read_automations() if a.name.startswith("rootfi-sync: ")]
