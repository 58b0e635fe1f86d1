"""The `/v3/core` endpoints: companies, syncs and their jobs, in the shapes of the official
SDK (npm `rootfi-api` 3.1.8: `GetCompaniesObject`, `GetCompanyObject`, `GetSyncsObject`,
`GetSyncObject`, `GetSyncJobsObject`, `GetJobObject`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import Response

from rootfi_sandbox.errors import ApiError, invalid, json_response
from rootfi_sandbox.listing import (
    DEFAULT_LIMIT,
    FIRST_POSITION,
    next_position,
    not_imitated,
    repeated_cursor,
    window,
)
from rootfi_sandbox.models import Job, Sync, ordered_jobs
from rootfi_sandbox.runtime import SandboxState
from rootfi_sandbox.timefmt import iso_from_ms, now_ms

COMPANIES_LIMIT = 100
NO_RATE_LIMITS: dict[str, dict[str, int]] = {"counters": {}, "lastReset": {}, "maxLimits": {}}
T = TypeVar("T")


class Core:
    """`/v3/core` handlers bound to one sandbox's state."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.started = iso_from_ms(now_ms())

    def _company(self, rootfi_id: int) -> dict[str, Any]:
        """The SDK's `CompanyData`: one healthy connection to the running platform profile."""
        platform = self.state.platform
        stamps = {"rootfi_created_at": self.started, "rootfi_updated_at": self.started}
        connection = {
            "rootfi_id": rootfi_id,
            **stamps,
            "integration_type": platform.integration_type,
            "category": platform.category,
            "connection_status": "HEALTHY",
            "sync_status": "IDLE",
            "rate_limits": NO_RATE_LIMITS,
            "zoho_sub_calls_enabled": False,
        }
        name = f"Sandbox company {rootfi_id}"
        return {"rootfi_id": rootfi_id, **stamps, "name": name, "connections": [connection]}

    def _paged(
        self,
        request: Request,
        items: Sequence[T],
        show: Callable[[T], dict[str, Any]],
        default_limit: int = DEFAULT_LIMIT,
    ) -> dict[str, Any]:
        """One page of `items` by position, each as `show` makes it, and its `next` (as the
        `repeat_cursor` fault wants it)."""
        limit, start = window(request.query_params, default_limit)
        end = start + limit
        data = [show(item) for item in items[start:end]]
        body: dict[str, Any] = {"data": data, "next": next_position(end, len(items))}
        if self.state.faults.current.repeat_cursor:
            asked = request.query_params.get("next")
            body["next"] = repeated_cursor(asked, body["next"], FIRST_POSITION)
        return body

    async def companies(self, request: Request) -> Response:
        """`GET /v3/core/companies`: every company the key reaches, by rootfi_id, paged."""
        not_imitated(request.query_params, ("integrations", "categories", "status", "expand"))
        ids = self.state.company_ids
        return json_response(self._paged(request, ids, self._company, COMPANIES_LIMIT))

    async def company(self, request: Request) -> Response:
        """`GET /v3/core/companies/{company_id}`."""
        raw = request.path_params["company_id"]
        if not raw.isdigit():
            raise invalid("company_id must be an integer", "company_id")
        self.state.require_company(int(raw))
        return json_response({"data": self._company(int(raw))})

    def _readable(self, sync: Sync) -> bool:
        """False for a sync written less than `sync_unreadable_seconds` ago."""
        unreadable_ms = self.state.faults.current.sync_unreadable_seconds * 1000
        return now_ms() - sync.created_ms >= unreadable_ms

    def _readable_sync(self, sync_id: str) -> Sync:
        """The sync; a 404 SYNC_NOT_FOUND for an unknown one and for one not yet readable
        (the write goes on meanwhile)."""
        sync = self.state.store.get_sync(sync_id)
        if not self._readable(sync):
            raise ApiError(404, "SYNC_NOT_FOUND", f"No sync with id {sync_id}", "sync_id")
        return sync

    def _sync_json(self, sync: Sync) -> dict[str, Any]:
        return sync.to_json(self.state.platform.integration_type)

    async def syncs(self, request: Request) -> Response:
        """`GET /v3/core/syncs[?rootfi_company_id=]`: syncs in the order they were opened."""
        params = request.query_params
        not_imitated(params, ("prev",))
        company_id = None
        if (raw := params.get("rootfi_company_id")) is not None:
            if not raw.isdigit():
                raise invalid("rootfi_company_id must be an integer", "rootfi_company_id")
            company_id = int(raw)
            self.state.require_company(company_id)
        syncs = [s for s in self.state.store.syncs_of(company_id) if self._readable(s)]
        return json_response(self._paged(request, syncs, self._sync_json))

    async def sync(self, request: Request) -> Response:
        """`GET /v3/core/syncs/{sync_id}`."""
        sync = self._readable_sync(request.path_params["sync_id"])
        return json_response({"data": self._sync_json(sync)})

    def _job_json(self, sync: Sync) -> Callable[[Job], dict[str, Any]]:
        """How the jobs of `sync` are shown (the SDK's `JobData`)."""
        integration_type = self.state.platform.integration_type
        return lambda job: job.to_json(sync.company_id, integration_type)

    async def jobs(self, request: Request) -> Response:
        """`GET /v3/core/syncs/{sync_id}/jobs`: one job per record, in `Faults.jobs_order`."""
        sync = self._readable_sync(request.path_params["sync_id"])
        faults = self.state.faults.current
        jobs = ordered_jobs(sync, faults.jobs_order, faults.seed)
        return json_response(self._paged(request, jobs, self._job_json(sync)))

    async def job(self, request: Request) -> Response:
        """`GET /v3/core/syncs/jobs/{job_id}` (the SDK's path) and
        `GET /v3/core/syncs/{sync_id}/jobs/{job_id}` (which must name the job's sync)."""
        sync, job = self.state.store.get_job(request.path_params["job_id"])
        named = request.path_params.get("sync_id", sync.sync_id)
        if named != sync.sync_id or not self._readable(sync):
            message = f"No job with id {job.rootfi_id} in sync {named}"
            raise ApiError(404, "JOB_NOT_FOUND", message, "job_id")
        return json_response({"data": self._job_json(sync)(job)})
