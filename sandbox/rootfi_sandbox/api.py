"""The RootFi v3 routes: customers here, companies, syncs and jobs in `core` (auth and rate
limit are in `guard`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rootfi_sandbox.core import Core
from rootfi_sandbox.errors import ApiError, error_response, json_response
from rootfi_sandbox.faults import DroppedAnswer, fault_response
from rootfi_sandbox.listing import (
    first_page_cursor,
    page_json,
    page_of,
    parse_list_query,
    repeated_cursor,
)
from rootfi_sandbox.runtime import SandboxState
from rootfi_sandbox.validation import check_records, parse_create

_TRUE = ("true", "1")
Handler = Callable[[Request], Awaitable[Response]]


def _query_async(request: Request) -> bool:
    if not request.scope["query_string"]:
        return False
    return request.query_params.get("run_async", "").lower() in _TRUE


class Api:
    """Endpoint handlers bound to one sandbox's state."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state
        self.core = Core(state)

    def routes(self) -> list[Route]:
        """The /v3 routes; every GET goes through the GET faults first."""
        core = self.core
        gets = {
            "/v3/core/companies": core.companies,
            "/v3/core/companies/{company_id}": core.company,
            "/v3/core/syncs": core.syncs,
            "/v3/core/syncs/jobs/{job_id}": core.job,
            "/v3/core/syncs/{sync_id}": core.sync,
            "/v3/core/syncs/{sync_id}/jobs": core.jobs,
            "/v3/core/syncs/{sync_id}/jobs/{job_id}": core.job,
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
            # The docs put the sync id at the top; the SDK declares `data` a list of created
            # customers, which an async write has none of yet: an empty list suits both.
            return json_response({"data": [], "sync_id": sync.sync_id})
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
        body = page_json(page)
        if self.state.faults.current.repeat_cursor:
            asked = request.query_params.get("next")
            body["next"] = repeated_cursor(asked, body["next"], first_page_cursor(query))
        return json_response(body)
