"""`python -m rootfi_sandbox [options]`: the sandbox command without the project CLI."""

from __future__ import annotations

import typer

from rootfi_sandbox.command import sandbox_command


def main() -> None:
    """Run `sandbox_command` as a standalone typer app."""
    typer.run(sandbox_command)


if __name__ == "__main__":
    main()
