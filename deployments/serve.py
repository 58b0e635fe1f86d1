"""Serve the deployments from this process, without a work pool: `python -m deployments.serve`.

The same three deployments as prefect.yaml (names, schedule, tags, parameters); use one or the
other against a Prefect server, since they share the names `<flow>/<deployment>`.
"""

from __future__ import annotations

from typing import cast

from prefect import serve
from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
from prefect.deployments.runner import RunnerDeployment
from prefect.schedules import Cron

from flows.sync_all_companies import sync_all_companies
from flows.sync_customers import sync_customers

TAGS = ["rootfi-sync", "customers"]


def deployments() -> list[RunnerDeployment]:
    """Return the scheduled and manual deployments of sync-customers and the fan-out."""
    scheduled = sync_customers.to_deployment(
        name="scheduled-sync",
        description="Every 15 minutes (UTC): create the company's new customers in RootFi, "
        "once each, and record every outcome in the ledger table.",
        schedules=[Cron("*/15 * * * *", timezone="UTC")],
        parameters={"batch_size": 100, "write_mode": "single", "dry_run": False},
        concurrency_limit=ConcurrencyLimitConfig(
            limit=1, collision_strategy=ConcurrencyLimitStrategy.CANCEL_NEW
        ),
        tags=TAGS,
    )
    manual = sync_customers.to_deployment(
        name="manual-sync",
        description='On demand, for support ("where is my customer?"): run with '
        "`customer_ids` (a list of source ids) or `limit` (at most that many new customers); "
        "`dry_run` sends nothing.",
        parameters={"dry_run": False},
        tags=TAGS,
    )
    fan_out = sync_all_companies.to_deployment(
        name="all-companies",
        description="Fan out: one manual-sync run per company (listed in `company_ids`, or "
        "found in the source's SOURCE_COMPANY_COLUMN), at most `max_concurrent` at a time. "
        "The runs go to the work pool, so every worker of the pool shares them.",
        parameters={"max_concurrent": 4},
        tags=TAGS,
    )
    # Called from sync code, to_deployment returns the deployment itself (not a coroutine).
    return cast(list[RunnerDeployment], [scheduled, manual, fan_out])


if __name__ == "__main__":
    serve(*deployments())
