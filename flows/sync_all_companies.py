"""Fan out: one sync-customers run per company, at most `max_concurrent` at a time.

Each company is a task run of this flow (`sync-company-<id>`) on a thread pool of
`max_concurrent` workers. The task starts the company's run with `run_deployment` (a run of
the manual-sync deployment, which any worker of its pool may take), and Prefect links that
run to this one as its child; with `deployment=None` the company runs here as a subflow. The
table artifact `rootfi-sync-all-companies` gives each company's final state, and this run
fails, naming the companies, when any of theirs did not complete.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.schemas.objects import FlowRun, State
from prefect.deployments import run_deployment
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import unmapped
from pydantic import Field

from flows.sync_customers import sync_customers
from rootfi_sync.errors import CompanyRunsFailed
from rootfi_sync.settings import load_settings
from tasks.companies import list_companies

ARTIFACT_KEY = "rootfi-sync-all-companies"


@task(name="sync-company", task_run_name="sync-company-{company_id}", cache_policy=NO_CACHE)
def sync_company(company_id: int, deployment: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """Run one company's sync, as a child run of this flow run; return how it ended."""
    if deployment is None:
        state = sync_customers(company_id=company_id, **params, return_state=True)
        return _row(company_id, state, state.state_details.flow_run_id)
    child: FlowRun = run_deployment(  # type: ignore[assignment]  # sync here, never a coroutine
        deployment,
        parameters={"company_id": company_id, **params},
        as_subflow=True,
        poll_interval=2,
    )
    return _row(company_id, child.state, child.id)


def _row(company_id: int, state: State | None, flow_run_id: Any) -> dict[str, Any]:
    return {
        "company_id": company_id,
        "state": state.name if state else "Unknown",
        "completed": bool(state and state.is_completed()),
        "flow_run_id": str(flow_run_id),
        "message": ((state.message if state else None) or "")[:300],
    }


@flow(name="sync-all-companies")
def sync_all_companies(
    company_ids: list[int] | None = None,
    max_concurrent: Annotated[int, Field(ge=1, le=64)] = 4,
    deployment: str | None = "sync-customers/manual-sync",
    batch_size: Annotated[int | None, Field(ge=1, le=1000)] = None,
    write_mode: Literal["single", "batch"] | None = None,
) -> list[dict[str, Any]]:
    """Sync every company (listed, or found in SOURCE_COMPANY_COLUMN); return each run's end.

    With `deployment` set, each company is a run of that deployment, so the runs spread over
    every worker of its work pool; with `deployment=None` they run in this process.
    """
    companies = company_ids or list_companies(load_settings())
    params = {k: v for k, v in {"batch_size": batch_size, "write_mode": write_mode}.items() if v}
    get_run_logger().info("syncing %s companies, %s at a time", len(companies), max_concurrent)
    rows = _fan_out(companies, deployment, params, max_concurrent)
    create_table_artifact(rows, key=ARTIFACT_KEY, description="Each company's sync run")
    failed = [r for r in rows if not r["completed"]]
    if failed:
        named = ", ".join(f"{r['company_id']} ({r['state']})" for r in failed)
        raise CompanyRunsFailed(
            f"{len(failed)} of {len(rows)} company runs did not complete: {named}; "
            f"see the table artifact {ARTIFACT_KEY}"
        )
    return rows


def _fan_out(
    companies: list[int], deployment: str | None, params: dict[str, Any], max_concurrent: int
) -> list[dict[str, Any]]:
    """Run `sync_company` for each company, `max_concurrent` at a time; their rows, in order."""
    runner: ThreadPoolTaskRunner[dict[str, Any]] = ThreadPoolTaskRunner(max_concurrent)
    with runner:
        futures = runner.map(
            sync_company,
            {
                "company_id": companies,
                "deployment": unmapped(deployment),
                "params": unmapped(params),
            },
        )
        return [_outcome(c, future) for c, future in zip(companies, futures, strict=True)]


def _outcome(company_id: int, future: PrefectFuture[Any]) -> dict[str, Any]:
    """The company's row, also when its task failed before its run could end."""
    future.wait()
    if future.state.is_completed():
        row: dict[str, Any] = future.result()
        return row
    error = future.state.result(raise_on_failure=False)
    row = _row(company_id, future.state, None)
    return row | {"flow_run_id": "", "message": f"{type(error).__name__}: {error}"[:300]}


if __name__ == "__main__":
    sync_all_companies()
