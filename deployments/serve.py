"""Serve prefect.yaml's deployments from this process, without a work pool.

    python -m deployments.serve          # from the repository root

The deployments are read from prefect.yaml (names, entrypoints, schedules and their slugs,
parameters, tags, concurrency), so they are declared once; only the work pool and the pull
step are not used: this process runs the code it has. Use `serve` or `prefect deploy`
against one server, not both: they register the same `<flow>/<deployment>` names.
"""

from __future__ import annotations

from typing import Any

from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron, Schedule

from rootfi_sync.orchestration import project


def deployments() -> list[RunnerDeployment]:
    """Return prefect.yaml's deployments, ready to serve (entrypoints relative to the cwd)."""
    return [_deployment(spec) for spec in project.deployments()]


def _deployment(spec: dict[str, Any]) -> RunnerDeployment:
    return RunnerDeployment.from_entrypoint(
        spec["entrypoint"],
        name=spec["name"],
        description=spec.get("description"),
        schedules=[_schedule(s) for s in spec.get("schedules") or []],
        parameters=spec.get("parameters") or {},
        tags=spec.get("tags") or [],
        concurrency_limit=_concurrency(spec.get("concurrency_limit")),
        enforce_parameter_schema=spec.get("enforce_parameter_schema", True),
    )


def _schedule(spec: dict[str, Any]) -> Schedule:
    return Cron(
        spec["cron"],
        timezone=spec.get("timezone"),
        active=spec.get("active", True),
        slug=spec.get("slug"),
    )


def _concurrency(spec: dict[str, Any] | None) -> ConcurrencyLimitConfig | None:
    if not spec:
        return None
    strategy = ConcurrencyLimitStrategy(spec.get("collision_strategy", "ENQUEUE"))
    return ConcurrencyLimitConfig(limit=spec["limit"], collision_strategy=strategy)


if __name__ == "__main__":
    from prefect import serve

    serve(*deployments())
