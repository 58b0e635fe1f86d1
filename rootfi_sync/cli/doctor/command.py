"""The `rootfi-sync doctor` command: print the checks, exit 1 when one failed (a warning
alone exits 0: runs work)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Annotated

import typer

if TYPE_CHECKING:
    from rootfi_sync.cli.doctor import Check


def doctor_command(
    work_pool: Annotated[str, typer.Option(help="The work pool runs use.")] = "rootfi-sync",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of lines.")] = False,
) -> None:
    """Check settings, databases, RootFi and Prefect in one go; send and write nothing."""
    from rootfi_sync.cli.doctor import run_checks

    checks = run_checks(work_pool)
    failed = [c for c in checks if c.status == "fail"]
    if as_json:
        body = {"ok": not failed, "checks": [c.as_dict() for c in checks]}
        typer.echo(json.dumps(body, indent=2))
    else:
        for check in checks:
            typer.echo(check.line())
        typer.echo(summary(checks))
    if failed:
        raise typer.Exit(1)


def summary(checks: list[Check]) -> str:
    """The closing line: how many checks failed, else how many warn, else all ok."""
    failed = sum(c.status == "fail" for c in checks)
    if failed:
        return f"{failed} of {len(checks)} checks failed"
    warned = sum(c.status == "warn" for c in checks)
    if warned:
        return f"no check failed; {warned} warning{'s' if warned > 1 else ''}"
    return "all checks ok"
