"""The RootFi v3 endpoints the project uses (auth and rate limit are in `guard`)."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rootfi_sandbox.errors import ApiError, error_response, invalid, json_response
from rootfi_sandbox.faults import DroppedAnswer, fault_response
from rootfi_sandbox.listing import (
    DEFAULT_LIMIT,
    first_page_cursor,
    page_json,
    page_of,
    parse_limit,
    parse_list_query,
)
from rootfi_sandbox.models import Sync, ordered_jobs
from rootfi_sandbox.runtime import SandboxState
from rootfi_sandbox.timefmt import now_ms
from rootfi_sandbox.validation import check_records, parse_create

_TRUE = ("true", "1")
COMPANIES_LIMIT = 100
Handler = Callable[[Request], Awaitable[Response]]


def _query_async(request: Request) -> bool:
    if not request.scope["query_string"]:
        return False
    return request.query_params.get("run_async", "").lower() in _TRUE


def _window(request: Request, default_limit: int) -> tuple[int, int]:
    """(limit, index to start at) for a list paged by position; `next` is base64 of that index."""
    params = request.query_params
    limit = parse_limit(params, default_limit)
    cursor = params.get("next")
    if not cursor:
        return limit, 0
    try:
        start = int(base64.urlsafe_b64decode(cursor))
    except (ValueError, binascii.Error):
        raise invalid("next is not a valid cursor", "next") from None
    return limit, max(0, start)


def _next_cursor(end: int, total: int) -> str | None:
    """The `next` cursor of a page that ends before index `end`, or None on the last page."""
    return base64.urlsafe_b64encode(str(end).encode()).decode() if end < total else None


FIRST_POSITION = base64.urlsafe_b64encode(b"0").decode()


def _company(rootfi_id: int) -> dict[str, Any]:
    return {
        "rootfi_id": rootfi_id,
        "name": f"Sandbox company {rootfi_id}",
        "platform": "SANDBOX",
        "platform_type": "ECOMMERCE",
        "connection_status": "HEALTHY",
    }


class Api:
    """Endpoint handlers bound to one sandbox's state."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        """The /v3 routes; every GET goes through the GET faults first."""
        gets = {
            "/v3/core/companies": self.companies,
            "/v3/core/syncs/{sync_id}": self.sync,
            "/v3/core/syncs/{sync_id}/jobs": self.jobs,
            "/v3/ecommerce/customers": self.list_customers,
        }
        routes = [
            Route(path, self._with_get_faults(get), methods=["GET"]) for path, get in gets.items()
        ]
        routes.append(Route("/v3/ecommerce/customers", self.create_customers, methods=["POST"]))
        return routes

    def _with_get_faults(self, handler: Handler) -> Handler:
        async def faulty(request: Request) -> Response:
            fault = self.state.faults.decide_get()
            return await handler(request) if fault is None else fault_response(fault)

        return faulty

    async def companies(self, request: Request) -> Response:
        """`GET /v3/core/companies`: the configured companies by rootfi_id, paged."""
        limit, start = _window(request, COMPANIES_LIMIT)
        ids = self.state.company_ids
        end = start + limit
        data = [_company(cid) for cid in ids[start:end]]
        body = {"data": data, "next": _next_cursor(end, len(ids)), "total_count": len(ids)}
        return json_response(self._repeating(request, body, FIRST_POSITION))

    def _repeating(self, request: Request, body: dict[str, Any], first: str) -> dict[str, Any]:
        """`body`, whose `next` is, with the `repeat_cursor` fault, the cursor it was asked
        with (on a first page its own `next`, or `first` when it has none)."""
        if self.state.faults.current.repeat_cursor:
            body["next"] = request.query_params.get("next") or body["next"] or first
        return body

    async def create_customers(self, request: Request) -> Response:
        """`POST /v3/ecommerce/customers`, with the configured faults."""
        raw = await request.body()
        fault = self.state.faults.decide()
        if fault == "429" or fault == "500":
            return fault_response(fault)
        landing = self.state.faults.current.lost_answer_landing_seconds if fault == "lost" else 0
        try:
            response = self._create(raw, _query_async(request), landing)
        except ApiError as exc:
            response = error_response(exc)
        if fault == "lost":
            return DroppedAnswer()
        if fault == "slow":
            await self.state.pause(self.state.faults.current.slow_answer_seconds)
        return response

    def _create(self, raw: bytes, query_async: bool, landing_seconds: float) -> Response:
        """Check and carry out a create; a synchronous one is stored `landing_seconds` later
        when that is > 0 (its answer is lost: what is returned then is never sent)."""
        req = parse_create(raw, query_async)
        self.state.require_company(req.company_id)
        if not req.run_async and len(req.records) != 1:
            message = "Batch writes only supported for Async writes"
            raise ApiError(400, "BATCH_NOT_SUPPORTED", message, "data")
        check_records(req.records, self.state.faults.current.strict_schema)
        store = self.state.store
        if req.run_async:
            sync = store.open_sync(req.company_id, req.records)
            self.state.runner.schedule(sync)
            return json_response({"data": {"sync_id": sync.sync_id}, "sync_id": sync.sync_id})
        platform = self.state.platform
        error = platform.refusal(req.records[0])
        if error is not None:
            raise error
        kept = platform.keep(req.records[0])
        if landing_seconds > 0:
            self.state.runner.land(req.company_id, kept, landing_seconds)
            return DroppedAnswer()
        customer, sync = store.write_now(req.company_id, kept)
        return json_response({"data": [customer.record], "sync_id": sync.sync_id})

    async def list_customers(self, request: Request) -> Response:
        """`GET /v3/ecommerce/customers`: keyset-paginated, filtered, sorted."""
        query = parse_list_query(request.query_params)
        if query.company_id is not None:
            self.state.require_company(query.company_id)
        page = page_of(self.state.store.customers_of(query.company_id), query)
        body = self._repeating(request, page_json(page), first_page_cursor(query))
        return json_response(body)

    def _readable_sync(self, request: Request) -> Sync:
        """The sync the path names; a 404 SYNC_NOT_FOUND for an unknown one, and for one
        written less than `sync_unreadable_seconds` ago (the write goes on meanwhile)."""
        sync = self.state.store.get_sync(request.path_params["sync_id"])
        unreadable_ms = self.state.faults.current.sync_unreadable_seconds * 1000
        if now_ms() - sync.created_ms < unreadable_ms:
            raise ApiError(404, "SYNC_NOT_FOUND", f"No sync with id {sync.sync_id}", "sync_id")
        return sync

    async def sync(self, request: Request) -> Response:
        """`GET /v3/core/syncs/{sync_id}`."""
        return json_response({"data": self._readable_sync(request).to_json()})

    async def jobs(self, request: Request) -> Response:
        """`GET /v3/core/syncs/{sync_id}/jobs`: one job per record, in `Faults.jobs_order`."""
        sync = self._readable_sync(request)
        faults = self.state.faults.current
        jobs = ordered_jobs(sync, faults.jobs_order, faults.seed)
        limit, start = _window(request, DEFAULT_LIMIT)
        end = start + limit
        data = [job.to_json() for job in jobs[start:end]]
        body = {"data": data, "next": _next_cursor(end, len(jobs))}
        return json_response(self._repeating(request, body, FIRST_POSITION))
