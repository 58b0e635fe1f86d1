"""The terminal, shared by the CLI and the demo: its two consoles, a run's counts as tables,
and running the sync flow in this process."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text

from rootfi_sync.errors import SettingsError
from rootfi_sync.orchestration import project

console = Console()
err = Console(stderr=True)


def error(message: object, *, prefix: str = "error:") -> None:
    """Print an error on stderr: the message is text, never read as markup (a reason such as
    `[email.invalid]` or a path with brackets is printed as it is)."""
    err.print(f"[red]{prefix}[/]", Text(str(message)), soft_wrap=True)


COUNTS = (
    "picked",
    "synced",
    "adopted",
    "failed",
    "rejected",
    "in_doubt",
    "retry_later",
    "lease_lost",
    "skipped",
    "duration_seconds",
    "rate_per_second",
)
DRY_RUN_COUNTS = ("picked", "would_send", "rejected", "skipped", "duration_seconds")


def run_flow(**params: Any) -> dict[str, Any]:
    """Run the manual-sync deployment's flow here with `params`; return its counts, or exit
    1 when the run failed (2 for bad settings), printing why."""
    sync_customers = project.load_flow(project.MANUAL_SYNC)
    try:
        state = sync_customers(**params, return_state=True)
    finally:
        flush_logs()
    result = state.result(raise_on_failure=False)
    if not state.is_completed() or not isinstance(result, dict):
        error(result, prefix="run failed:")
        raise typer.Exit(2 if isinstance(result, SettingsError) else 1)
    return result


def flush_logs() -> None:
    """Send the run's logs still queued to the Prefect API now, before this process (or the
    temporary server it started) stops: otherwise the UI can miss the end of a run."""
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()


def print_counts(counts: dict[str, Any]) -> None:
    """Print a run's counts and its failures as tables."""
    dry_run = bool(counts.get("dry_run"))
    table = Table(title=f"rootfi-sync, company {counts['company_id']}" + " (dry run)" * dry_run)
    table.add_column("measure")
    table.add_column("value", justify="right")
    for key in DRY_RUN_COUNTS if dry_run else COUNTS:
        table.add_row(key.replace("_", " "), str(counts.get(key)))
    console.print(table)
    if counts.get("preview"):
        console.print_json(data=counts["preview"][:5])
        console.print(
            f"(first {min(5, len(counts['preview']))} of {counts['would_send']} payloads)"
        )
    if counts.get("failures"):
        failures = Table(title="not synced")
        for col in ("customer", "reason", "attempts"):
            failures.add_column(col)
        for f in counts["failures"]:
            failures.add_row(Text(str(f["customer_id"])), Text(f["reason"]), str(f["attempts"]))
        console.print(failures)
