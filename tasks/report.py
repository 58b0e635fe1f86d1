"""Report: the run's counts as logs, UI artifacts and a Prefect event."""

from __future__ import annotations

import json

from prefect import get_run_logger, task
from prefect.artifacts import create_markdown_artifact, create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.events import emit_event

from rootfi_sync.orchestration.alerts import (
    ARTIFACTS,
    COMPANY_RESOURCE,
    FAILURE_SHARE,
    NEEDS_A_LOOK,
    RUN_COMPLETED,
    RUN_STOPPED,
)
from rootfi_sync.run.report import RunSummary


@task(name="publish-report", cache_policy=NO_CACHE)
def publish_report(summary: RunSummary, alert_failed_share: float = 0.1) -> None:
    """Log the counts, publish summary and failure tables, and emit the run's event."""
    counts = summary.counts()
    get_run_logger().info(
        "company %s: picked %s, synced %s (adopted %s), failed %s (invalid %s), in doubt %s, "
        "created with id unknown %s, duplicates found in RootFi %s, retry later %s, "
        "skipped %s in %.1fs (%.1f/s)%s",
        summary.company_id,
        summary.picked,
        summary.synced,
        summary.adopted,
        summary.failed,
        summary.rejected,
        summary.in_doubt,
        summary.created_unknown,
        summary.duplicates_found,
        summary.retry_later,
        summary.skipped,
        summary.duration_seconds,
        summary.rate,
        " [dry run]" if summary.dry_run else "",
    )
    key = f"{ARTIFACTS}{summary.company_id}"
    phases = counts.pop("phase_seconds")
    rows = [{"measure": k, "value": v} for k, v in counts.items() if k != "company_id"]
    rows += [{"measure": f"seconds in {phase}", "value": v} for phase, v in phases.items()]
    create_table_artifact(rows, key=f"{key}-summary", description="rootfi-sync run summary")
    nothing = [{"customer_id": "", "reason": "none: every customer synced", "attempts": 0}]
    create_table_artifact(  # always, so the key's latest version is this run's
        summary.failures or nothing,
        key=f"{key}-failures",
        description=f"Customers not synced in this run (first {len(summary.failures)} shown)",
    )
    _publish_attention(summary, key)
    if summary.preview:
        shown = json.dumps(summary.preview, indent=2, ensure_ascii=False)
        create_markdown_artifact(
            f"Dry run: would send {summary.would_send} customers and refuse {summary.rejected}."
            f" The first {len(summary.preview)} payloads:\n\n```json\n{shown}\n```",
            key=f"{key}-dry-run",
        )
    if summary.stopped:
        create_markdown_artifact(f"**Run stopped early.** {summary.stopped}", key=f"{key}-stopped")
    # Automations match labels, not payload values: the failure share is given as a label.
    share = summary.failed / summary.picked if summary.picked else 0.0
    emit_event(
        event=RUN_STOPPED if summary.stopped else RUN_COMPLETED,
        resource={
            "prefect.resource.id": f"{COMPANY_RESOURCE}.{summary.company_id}",
            FAILURE_SHARE: "high" if share > alert_failed_share else "normal",
        },
        payload=counts | {"failed_share": round(share, 4)},
    )


def _publish_attention(summary: RunSummary, key: str) -> None:
    """Publish the customers a person should look at in RootFi (a table, always, so the key's
    latest version is this run's) and, when there are any, an event listing them."""
    nothing = [{"customer_id": "", "what": "none", "sync_id": "", "rootfi_ids": ""}]
    create_table_artifact(
        summary.attention or nothing,
        key=f"{key}-attention",
        description=(
            "Customers to look at in RootFi: created with their id unknown (never sent again), "
            f"or matched by more than one record (first {len(summary.attention)} shown)"
        ),
    )
    if summary.attention:
        emit_event(
            event=NEEDS_A_LOOK,
            resource={"prefect.resource.id": f"{COMPANY_RESOURCE}.{summary.company_id}"},
            payload={
                "company_id": summary.company_id,
                "created_unknown": summary.created_unknown,
                "duplicates_found": summary.duplicates_found,
                "customers": summary.attention,
            },
        )
