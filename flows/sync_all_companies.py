"""Fan out: one sync-customers run per company, a bounded number at a time."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal

from prefect import flow, get_run_logger
from prefect.deployments import run_deployment

from flows.sync_customers import sync_customers
from rootfi_sync.settings import load_settings
from tasks.companies import list_companies


def _run_child(company_id: int, deployment: str | None, params: dict[str, Any]) -> dict[str, Any]:
    """Run one company's sync as a deployment run (any worker) or in this process."""
    if deployment is None:
        state = sync_customers(company_id=company_id, **params, return_state=True)
        return {"company_id": company_id, "state": state.type.value}
    run = run_deployment(deployment, parameters={"company_id": company_id, **params})
    return {"company_id": company_id, "state": run.state.type.value if run.state else "UNKNOWN",
            "flow_run_id": str(run.id)}  # fmt: skip


@flow(name="sync-all-companies")
def sync_all_companies(
    company_ids: list[int] | None = None,
    max_concurrent: int = 4,
    deployment: str | None = "sync-customers/manual-sync",
    batch_size: int | None = None,
    write_mode: Literal["single", "batch"] | None = None,
) -> list[dict[str, Any]]:
    """Sync every company (listed, or found in SOURCE_COMPANY_COLUMN); return each run's state.

    With `deployment` set, each company is a run of that deployment, so the runs spread over
    every worker of its work pool; with `deployment=None` they run in this process.
    """
    companies = company_ids or list_companies(load_settings())
    params = {k: v for k, v in {"batch_size": batch_size, "write_mode": write_mode}.items() if v}
    get_run_logger().info("syncing %s companies, %s at a time", len(companies), max_concurrent)
    with ThreadPoolExecutor(max_workers=max(1, max_concurrent)) as pool:
        results = list(pool.map(lambda c: _run_child(c, deployment, params), companies))
    failed = [r for r in results if r["state"] != "COMPLETED"]
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(results)} company runs did not complete: {failed}"
        )
    return results


if __name__ == "__main__":
    sync_all_companies()
