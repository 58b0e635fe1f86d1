"""Fan out: a tick over every company of the key costs what is due, not what exists.

1. One query over the source and the ledger finds the companies with work due (new customers,
   or ledger rows due for a retry, a lookup or a sync poll): no other company gets a run.
2. One pass over the key's companies list (stopping once every due company was seen) says
   which of them the key reaches; a company it does not reach fails here, named, with no run.
3. The key's budget until the next tick decides what is taken (`rootfi_sync.run.budget`): the
   companies whose oldest work waited longest first, each with a share of the budget (its
   run's `limit`) and its write mode (the cheaper one, unless `write_mode` or
   ROOTFI_WRITE_MODE says which); the rest wait for the next tick.
4. The companies taken are grouped, by write mode (`rootfi_sync.run.fanout.plan_groups`): a
   company with `group_customers` customers taken or more runs alone, the others share runs
   of at most `group_companies` companies and `group_customers` customers, spread over at
   least `max_concurrent` runs when there are that many companies (a run's companies go one
   after the other, parallel runs do not).
5. Each group is a task run of this flow (`sync-companies-<first company>`) on a thread pool
   of `max_concurrent` workers. It starts a run of the manual-sync deployment (which any
   worker of its pool may take) with the group's `company_ids`, their `limits`, its
   `write_mode` and, as `reachable`, the companies this tick vouched for, so the child makes
   no companies request; Prefect links that run to this one as its child. With
   `deployment=None` the group runs here, a subflow.

The table artifact `rootfi-sync-all-companies` gives each company's end (its child run, its
counts, what it was given of the budget, or that it waits for the next tick); its description
and the log say the budget, the estimated cost of what was taken and what was left. This run
fails, naming the companies, when any of them did not complete.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal
from uuid import UUID

from prefect import flow, get_run_logger, runtime, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NO_CACHE
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import (
    ArtifactFilter,
    ArtifactFilterKey,
    FlowRunFilter,
    FlowRunFilterId,
)
from prefect.client.schemas.objects import FlowRun, State
from prefect.context import FlowRunContext
from prefect.deployments import run_deployment
from prefect.futures import PrefectFuture
from prefect.task_runners import ThreadPoolTaskRunner
from prefect.utilities.annotations import unmapped
from pydantic import Field

from flows.sync_customers import sync_customers
from rootfi_sync.orchestration.prefect_setup import resolve_api_key
from rootfi_sync.run.budget import (
    BUDGET_MARGIN,
    TICK_SECONDS,
    Costs,
    Share,
    TickPlan,
    plan_tick,
    plan_unmeasured,
    tick_budget,
)
from rootfi_sync.run.fanout import (
    COMPANIES_PAGE,
    GROUP_ARTIFACT_KEY,
    GROUP_COMPANIES,
    GROUP_CUSTOMERS,
    group_row,
    not_reached,
    plan_groups,
    raise_if_failed,
)
from rootfi_sync.settings import Settings, load_settings
from tasks.companies import find_due, list_reachable

ARTIFACT_KEY = "rootfi-sync-all-companies"


def group_name() -> str:
    """Name a group's task run after its first company and its size."""
    companies = runtime.task_run.parameters.get("companies") or ["none"]
    more = f"-and-{len(companies) - 1}-more" if len(companies) > 1 else ""
    return f"sync-companies-{companies[0]}{more}"


@task(name="sync-companies", task_run_name=group_name, cache_policy=NO_CACHE)
def sync_companies(
    companies: list[int], deployment: str | None, params: dict[str, Any]
) -> list[dict[str, Any]]:
    """Run one group's sync, as a child run of this flow run; return each company's row."""
    params = params | {"company_ids": companies, "reachable": companies}
    params = {k: v for k, v in params.items() if v is not None}
    if deployment is None:
        state = sync_customers(**params, return_state=True)
        return company_rows(companies, state, state.state_details.flow_run_id)
    child: FlowRun = run_deployment(  # type: ignore[assignment]  # sync here, never a coroutine
        deployment, parameters=params, as_subflow=True, poll_interval=2
    )
    return company_rows(companies, child.state, child.id)


def company_rows(
    companies: list[int], state: State | None, flow_run_id: UUID | None
) -> list[dict[str, Any]]:
    """Each company's row, as its child run's table artifact gives it; when the run ended
    without one (it crashed, or never started), from the run's state."""
    told = {row["company_id"]: row for row in _group_table(flow_run_id)}
    message = ((state.message if state else None) or "no table of its companies")[:300]
    rows = []
    for company in companies:
        row = told.get(company) or group_row(company, False, message)
        if company not in told:
            row["state"] = state.name if state else "Unknown"
        rows.append(row | {"flow_run_id": str(flow_run_id or "")})
    return rows


def _group_table(flow_run_id: UUID | None) -> list[dict[str, Any]]:
    """The rows of the run's GROUP_ARTIFACT_KEY table artifact (none: no such artifact)."""
    if flow_run_id is None:
        return []
    with get_client(sync_client=True) as client:
        artifacts = client.read_artifacts(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])),
            artifact_filter=ArtifactFilter(key=ArtifactFilterKey(any_=[GROUP_ARTIFACT_KEY])),
        )
    if not artifacts:
        return []
    data = artifacts[0].data
    rows = json.loads(data) if isinstance(data, str) else data  # a table is stored as JSON
    return list(rows) if isinstance(rows, list) else []


@flow(name="sync-all-companies")
def sync_all_companies(
    company_ids: list[int] | None = None,
    max_concurrent: Annotated[int, Field(ge=1, le=64)] = 4,
    deployment: str | None = "sync-customers/manual-sync",
    batch_size: Annotated[int | None, Field(ge=1, le=1000)] = None,
    write_mode: Literal["single", "batch"] | None = None,
    group_companies: Annotated[int, Field(ge=1, le=1000)] = GROUP_COMPANIES,
    group_customers: Annotated[int, Field(ge=1)] = GROUP_CUSTOMERS,
    budget_seconds: Annotated[int | None, Field(ge=1)] = None,
) -> list[dict[str, Any]]:
    """Sync every company with work due (of `company_ids`, or found in SOURCE_COMPANY_COLUMN),
    in shared runs, as far as the key's budget goes, oldest work first; return each company's
    row.

    With `deployment` set, each group is a run of that deployment, so the runs spread over
    every worker of its work pool; with `deployment=None` they run in this process.
    `budget_seconds`: the seconds of ROOTFI_RATE_LIMIT_PER_MINUTE this tick may plan to spend
    (empty: this run's time limit, else 15 minutes, the schedule's interval).
    """
    settings = load_settings(**({"rootfi_batch_size": batch_size} if batch_size else {}))
    logger = get_run_logger()
    due = find_due(settings, company_ids)
    wanted = [d.company_id for d in due]
    reached = list_reachable(settings, resolve_api_key(settings), wanted) if due else set()
    seconds = budget_seconds or _time_limit() or TICK_SECONDS
    budget = tick_budget(settings.rootfi_rate_limit_per_minute, seconds, _pages(wanted))
    forced = write_mode or settings.forced_write_mode
    ready = [d for d in due if d.company_id in reached]
    plan = (
        plan_tick(ready, budget, Costs(settings.rootfi_batch_size), forced)
        if settings.source_company_column
        else plan_unmeasured(ready, forced or settings.rootfi_write_mode)
    )
    runs = [
        (group, {"batch_size": batch_size, "write_mode": mode, "limits": _limits(group, plan)})
        for mode in ("single", "batch")
        for group in plan_groups(
            [s for s in plan.taken if s.mode == mode],
            group_companies,
            group_customers,
            max_concurrent,
        )
    ]
    told = budget_told(plan, settings.rootfi_rate_limit_per_minute, seconds)
    logger.info(
        "%s companies have work due (%s customers), %s of them reached by the key; %s: "
        "%s runs, %s at a time",
        len(due),
        sum(d.customers for d in due),
        len(reached),
        told,
        len(runs),
        max_concurrent,
    )
    rows = [_unreachable(d.company_id, settings) for d in due if d.company_id not in reached]
    rows += [_waiting(share) for share in plan.waiting]
    rows += _with_shares(_fan_out(runs, deployment, max_concurrent), plan)
    rows.sort(key=lambda r: r["company_id"])
    create_table_artifact(
        rows, key=ARTIFACT_KEY, description=f"Each company with work due. {told}."
    )
    raise_if_failed(rows, ARTIFACT_KEY)
    return rows


def _time_limit() -> float | None:
    """This run's time limit (the all-companies deployment's: 14 minutes), if it has one."""
    context = FlowRunContext.get()
    return context.flow.timeout_seconds if context and context.flow else None


def _pages(wanted: list[int]) -> int:
    """The companies requests this tick made (at least; one page more for each thousand
    companies the key reaches beyond those)."""
    return -(-len(wanted) // COMPANIES_PAGE)


def _limits(group: list[int], plan: TickPlan) -> list[int] | None:
    """Each company's share of the budget, its run's limit (None: counts unknown, no limit)."""
    taken = {s.company_id: s.customers for s in plan.taken}
    limits = [taken[c] for c in group]
    return limits if all(limits) else None


def budget_told(plan: TickPlan, per_minute: int, seconds: float) -> str:
    """Say the tick's budget, what it took at what estimated cost, and what it left."""
    companies, customers = plan.left
    if plan.budget is None:
        head = "no budget (ROOTFI_RATE_LIMIT_PER_MINUTE=0)"
    else:
        head = f"budget {plan.budget} requests ({per_minute} a minute over {seconds:g} s, less "
        head += f"{BUDGET_MARGIN:.0%} and the companies list)"
    return (
        f"{head}; taken: {len(plan.taken)} companies, {plan.customers} customers, estimated "
        f"{plan.cost} requests; left for the next tick: {companies} companies, {customers} "
        "customers"
    )


def _waiting(share: Share) -> dict[str, Any]:
    """The row of a company the budget left for the next tick: not a failure."""
    message = f"left for the next tick: the key's budget was spent on older work ({share.due} due)"
    row = group_row(share.company_id, True, message) | {"flow_run_id": "", "state": "Waiting"}
    return row | _share_columns(share)


def _with_shares(rows: list[dict[str, Any]], plan: TickPlan) -> list[dict[str, Any]]:
    shares = {s.company_id: s for s in plan.taken}
    return [row | _share_columns(shares[row["company_id"]]) for row in rows]


def _share_columns(share: Share) -> dict[str, Any]:
    return {"due": share.due, "taken": share.customers, "mode": share.mode, "cost": share.cost}


def _unreachable(company_id: int, settings: Settings) -> dict[str, Any]:
    message = not_reached(company_id, settings.rootfi_company_id)
    return group_row(company_id, False, message) | {"flow_run_id": ""}


def _fan_out(
    runs: list[tuple[list[int], dict[str, Any]]], deployment: str | None, max_concurrent: int
) -> list[dict[str, Any]]:
    """Run `sync_companies` for each group with its parameters, `max_concurrent` at a time;
    every company's row."""
    if not runs:
        return []
    groups = [group for group, _params in runs]
    runner: ThreadPoolTaskRunner[list[dict[str, Any]]] = ThreadPoolTaskRunner(max_concurrent)
    with runner:
        futures = runner.map(
            sync_companies,
            {
                "companies": groups,
                "deployment": unmapped(deployment),
                "params": [params for _group, params in runs],
            },
        )
        return [row for g, f in zip(groups, futures, strict=True) for row in _outcome(g, f)]


def _outcome(companies: list[int], future: PrefectFuture[Any]) -> list[dict[str, Any]]:
    """The group's rows, also when its task failed before its run could end."""
    future.wait()
    if future.state.is_completed():
        rows: list[dict[str, Any]] = future.result()
        return rows
    error = future.state.result(raise_on_failure=False)
    message = f"{type(error).__name__}: {error}"
    return [group_row(c, False, message) | {"flow_run_id": ""} for c in companies]


if __name__ == "__main__":
    sync_all_companies()
