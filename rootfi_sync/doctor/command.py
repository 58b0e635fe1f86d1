"""The `rootfi-sync doctor` command: print the checks, exit 1 when one failed."""

from __future__ import annotations

import json
from typing import Annotated

import typer


def doctor_command(
    work_pool: Annotated[str, typer.Option(help="The work pool runs use.")] = "rootfi-sync",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of lines.")] = False,
) -> None:
    """Check settings, databases, RootFi and Prefect in one go; send and write nothing."""
    from rootfi_sync.doctor import run_checks

    checks = run_checks(work_pool)
    failed = [c for c in checks if c.status == "fail"]
    if as_json:
        body = {"ok": not failed, "checks": [c.as_dict() for c in checks]}
        typer.echo(json.dumps(body, indent=2))
    else:
        for check in checks:
            typer.echo(check.line())
        typer.echo(f"{len(failed)} of {len(checks)} checks failed" if failed else "all checks ok")
    if failed:
        raise typer.Exit(1)
