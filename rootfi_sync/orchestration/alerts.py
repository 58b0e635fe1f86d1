"""The alerts `rootfi-sync setup --notify BLOCK` creates: Prefect automations, kept by name.

    rootfi-sync: run failed               a run of either flow ended Failed, Crashed or TimedOut
    rootfi-sync: circuit breaker          a run stopped by its circuit breaker (its state
                                          message says "circuit breaker")
    rootfi-sync: failure share high       a run's event is labelled `rootfi-sync.failure-share:
                                          high` (more than ROOTFI_ALERT_FAILED_SHARE failed)
    rootfi-sync: scheduled run cancelled  a run of scheduled-sync or all-companies was cancelled
                                          (e.g. the one before it was still running)
    rootfi-sync: no fresh sync            no run of scheduled-sync or all-companies completed in
                                          the last N minutes

All send through one notification block. Setup run again updates them in place (by name), so
there is always one of each.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import UUID

from rootfi_sync.errors import SettingsError

if TYPE_CHECKING:
    from prefect.client.orchestration import SyncPrefectClient
    from prefect.events.schemas.automations import AutomationCore, EventTrigger

PREFIX = "rootfi-sync: "
# What a run reports (tasks/report.py) and the alerts match: one definition for both sides.
RUN_COMPLETED, RUN_STOPPED = "rootfi-sync.run.completed", "rootfi-sync.run.stopped"
# Customers a person should look at in RootFi (created with their id unknown, duplicates
# found): one event a run that has any, its payload listing them.
NEEDS_A_LOOK = "rootfi-sync.customers.need-a-look"
COMPANY_RESOURCE = "rootfi-sync.company"  # `.{company_id}`: the resource a run's event is about
FAILURE_SHARE = "rootfi-sync.failure-share"  # the event's label: "high" or "normal"
ARTIFACTS = "rootfi-sync-company-"  # `{company_id}-summary`, `-failures`: a run's artifacts
FLOWS = {
    "prefect.resource.role": "flow",
    "prefect.resource.name": ["sync-customers", "sync-all-companies"],
}
# The two scheduled deployments: one company syncs with scheduled-sync, many companies pause
# it and run all-companies instead. An alert on scheduling watches whichever runs.
SCHEDULED = {
    "prefect.resource.role": "deployment",
    "prefect.resource.name": ["scheduled-sync", "all-companies"],
}
BREAKER = "*circuit breaker*"  # matches the state message of a run its breaker stopped
RUN_SUBJECT = "rootfi-sync: {{ flow.name }} run {{ flow_run.name }} is {{ flow_run.state.name }}"
BREAKER_SUBJECT = "rootfi-sync: circuit breaker stopped {{ flow.name }} run {{ flow_run.name }}"
CANCELLED_SUBJECT = "rootfi-sync: scheduled run {{ flow_run.name }} was cancelled"
RUN_BODY = """{{ flow.name }} run {{ flow_run.name }} ended {{ flow_run.state.name }}:
{{ flow_run.state.message }}

What it sent before it stopped is recorded in the ledger; the next run picks up the rest.
`rootfi-sync status` shows the ledger; `rootfi-sync doctor` checks the set-up."""
CANCELLED_BODY = """{{ flow.name }} run {{ flow_run.name }} was cancelled:
{{ flow_run.state.message }}

The deployment runs one at a time: a run due while the one before it still runs is cancelled.
Runs that keep taking longer than 15 minutes (they stop at 14) need a look at the latest runs."""
SHARE_SUBJECT = (
    "rootfi-sync: company {{ event.payload.company_id }}: {{ event.payload.failed }} of "
    "{{ event.payload.picked }} customers failed"
)
SHARE_BODY = (
    """picked {{ event.payload.picked }}, synced {{ event.payload.synced }},
failed {{ event.payload.failed }} (invalid {{ event.payload.rejected }}),
in doubt {{ event.payload.in_doubt }}, retry later {{ event.payload.retry_later }}.
The run's failures table: """
    + ARTIFACTS
    + "{{ event.payload.company_id }}-failures"
)
STALE_BODY = """No scheduled run (scheduled-sync, all-companies) completed in {minutes:g} minutes.
Check the pool's workers (`rootfi-sync doctor`), whether the schedule is paused, and the
latest runs of the deployment you use."""


def definitions(block_id: UUID, freshness_minutes: float) -> list[AutomationCore]:
    """Return the five automations, each sending through the notification block."""
    return [
        run_failed(block_id),
        circuit_breaker(block_id),
        failure_share(block_id),
        scheduled_cancelled(block_id),
        no_fresh_sync(block_id, freshness_minutes),
    ]


def run_failed(block_id: UUID) -> AutomationCore:
    """A run of either flow failed, crashed or timed out (the breaker has its own alert)."""
    trigger = _run_trigger(["Failed", "Crashed", "TimedOut"], message=f"!{BREAKER}")
    about = "A run of sync-customers or sync-all-companies could not complete."
    return _automation("run failed", about, trigger, RUN_SUBJECT, RUN_BODY, block_id)


def circuit_breaker(block_id: UUID) -> AutomationCore:
    """A run stopped by its circuit breaker: its state message names it."""
    trigger = _run_trigger(["Failed"], message=BREAKER)
    about = "RootFi refused more than ROOTFI_MAX_REFUSED_SHARE of what a run sent."
    return _automation("circuit breaker", about, trigger, BREAKER_SUBJECT, RUN_BODY, block_id)


def failure_share(block_id: UUID) -> AutomationCore:
    """A run's event says more than ROOTFI_ALERT_FAILED_SHARE of its customers failed."""
    from prefect.events.schemas.automations import EventTrigger

    trigger = EventTrigger(
        expect={RUN_COMPLETED},
        match={"prefect.resource.id": f"{COMPANY_RESOURCE}.*", FAILURE_SHARE: "high"},
        posture="Reactive",
        threshold=1,
        within=timedelta(0),
    )
    about = "More than ROOTFI_ALERT_FAILED_SHARE of the customers a run picked failed."
    return _automation("failure share high", about, trigger, SHARE_SUBJECT, SHARE_BODY, block_id)


def scheduled_cancelled(block_id: UUID) -> AutomationCore:
    """A scheduled run (of either deployment) was cancelled (one at a time: a late one is)."""
    trigger = _run_trigger(["Cancelled"], related=[FLOWS, SCHEDULED])
    about = "A scheduled run was cancelled, e.g. while the run before it still ran."
    subject, body = CANCELLED_SUBJECT, CANCELLED_BODY
    return _automation("scheduled run cancelled", about, trigger, subject, body, block_id)


def no_fresh_sync(block_id: UUID, minutes: float) -> AutomationCore:
    """Proactive: no run of either scheduled deployment reached Completed within `minutes`."""
    from prefect.events.schemas.automations import EventTrigger

    trigger = EventTrigger(
        expect={"prefect.flow-run.Completed"},
        match={"prefect.resource.id": "prefect.flow-run.*"},
        match_related=[FLOWS, SCHEDULED],
        posture="Proactive",
        threshold=1,
        within=timedelta(minutes=minutes),
    )
    subject = f"rootfi-sync: no scheduled run completed in {minutes:g} minutes"
    body = STALE_BODY.format(minutes=minutes)
    return _automation("no fresh sync", body.splitlines()[0], trigger, subject, body, block_id)


def _run_trigger(
    states: list[str], *, message: str | None = None, related: list[dict[str, Any]] | None = None
) -> EventTrigger:
    """Fire on each flow-run state event named in `states`, of our flows."""
    from prefect.events.schemas.automations import EventTrigger

    match: dict[str, Any] = {"prefect.resource.id": "prefect.flow-run.*"}
    if message is not None:
        match["prefect.state-message"] = message
    return EventTrigger(
        expect={f"prefect.flow-run.{state}" for state in states},
        match=match,
        match_related=related or [FLOWS],
        posture="Reactive",
        threshold=1,
        within=timedelta(0),
    )


def _automation(
    name: str, about: str, trigger: EventTrigger, subject: str, body: str, block_id: UUID
) -> AutomationCore:
    from prefect.events.actions import SendNotification
    from prefect.events.schemas.automations import AutomationCore

    action = SendNotification(block_document_id=block_id, subject=subject, body=body)
    return AutomationCore(
        name=PREFIX + name, description=about, enabled=True, trigger=trigger, actions=[action]
    )


def notification_block_id(client: SyncPrefectClient, name: str) -> UUID:
    """Return the id of the notification block called `name` (or `type-slug/name`)."""
    slug, _, block_name = name.rpartition("/")
    found = [
        doc
        for doc in client.read_block_documents(include_secrets=False)
        if doc.name == block_name and (not slug or _slug(doc) == slug)
    ]
    if len(found) > 1:
        kinds = ", ".join(f"{_slug(d)}/{d.name}" for d in found)
        raise SettingsError(f"--notify {name}: several blocks have that name; give one of {kinds}")
    if not found:
        raise SettingsError(
            f"--notify {name}: no block of that name; save a notification block first "
            "(Slack, Microsoft Teams, e-mail, custom webhook: UI → Blocks, or in Python)"
        )
    [doc] = found
    if "notify" not in (doc.block_schema.capabilities if doc.block_schema else []):
        raise SettingsError(f"--notify {name}: a {doc.block_type_name} block cannot notify")
    return doc.id


def _slug(doc: Any) -> str:
    return str(doc.block_type.slug) if doc.block_type else ""


def ensure_automations(
    client: SyncPrefectClient, block_id: UUID, block_name: str, freshness_minutes: float
) -> list[str]:
    """Create the automations, or update those that exist (one of each); one line per step."""
    lines = []
    for automation in definitions(block_id, freshness_minutes):
        existing = client.read_automations_by_name(automation.name)
        if not existing:
            client.create_automation(automation)
            lines.append(f"created automation {automation.name!r} (notifies {block_name})")
            continue
        client.update_automation(existing[0].id, automation)
        for extra in existing[1:]:
            client.delete_automation(extra.id)
        lines.append(f"updated automation {automation.name!r} (notifies {block_name})")
    return lines
