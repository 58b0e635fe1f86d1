"""The project around the package: its root folder and the flows that `prefect.yaml` names.

flows/, tasks/ and deployments/ are the project's top layers, not installed packages (the
wheel holds `rootfi_sync` alone, so no generic top-level `flows` or `tasks` reaches a user's
environment). Like a Prefect worker, the CLI finds a flow by the entrypoint of its deployment
in `prefect.yaml`, a path from the project's root: one definition of each deployment.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import yaml  # type: ignore[import-untyped]  # (PyYAML ships no types)

from rootfi_sync.errors import RootFiSyncError

MANUAL_SYNC = "manual-sync"
"""The deployment whose flow `rootfi-sync run`, `retry` and the demo run in-process."""


def root() -> Path:
    """Return the project's root: the checkout this package runs from, else the working
    folder; either way the folder holding `prefect.yaml` and `flows/`."""
    for folder in (Path(__file__).resolve().parents[2], Path.cwd()):
        if (folder / "prefect.yaml").is_file() and (folder / "flows").is_dir():
            return folder
    raise RootFiSyncError(
        "cannot find the rootfi-sync project (prefect.yaml and flows/): run this command from "
        "the project's folder, as Prefect's workers do"
    )


@cache
def deployments() -> tuple[dict[str, Any], ...]:
    """Return the deployments `prefect.yaml` declares, as written there."""
    specs: list[dict[str, Any]] = yaml.safe_load((root() / "prefect.yaml").read_text())[
        "deployments"
    ]
    return tuple(specs)


def entrypoint(deployment: str) -> str:
    """Return `<path from the root>:<function>` of the named deployment's flow."""
    for spec in deployments():
        if spec["name"] == deployment:
            return str(spec["entrypoint"])
    raise RootFiSyncError(f"prefect.yaml declares no deployment named {deployment!r}")


@cache
def load_flow(deployment: str) -> Any:
    """Return the flow of the named deployment, loaded from its file as a worker would (once
    a process)."""
    from prefect.flows import load_flow_from_entrypoint

    path, function = entrypoint(deployment).rsplit(":", 1)
    return load_flow_from_entrypoint(f"{root() / path}:{function}")
