"""The admin API under `/_sandbox/` (no api_key; not part of RootFi): inspect and steer.

- `GET /_sandbox/state`: customers (total, by company), requests, syncs, faults, rate limit
- `GET /_sandbox/customers[?company_id=]`: every stored customer record, unpaged
- `GET /_sandbox/faults`: the running faults
- `PUT /_sandbox/faults`: merge any Faults fields into the running ones (re-seeds the dice)
- `PUT /_sandbox/rate-limit`: exactly `{"rate_limit_per_minute": int | null}` (windows
  restart; a missing or unknown key is a 400 VALIDATION_ERROR)
- `POST /_sandbox/reset`: forget all state and counters, cancel pending async writes and
  late landings; back to configured faults and limit
"""

from __future__ import annotations

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from rootfi_sandbox.config import Faults
from rootfi_sandbox.errors import (
    VALIDATION_ERROR,
    ApiError,
    invalid,
    json_object,
    json_response,
)
from rootfi_sandbox.runtime import SandboxState

RATE_LIMIT_KEY = "rate_limit_per_minute"


def _validation_error(exc: ValidationError) -> ApiError:
    first = exc.errors()[0]
    field = ".".join(str(part) for part in first["loc"])
    return ApiError(400, VALIDATION_ERROR, first["msg"], field)


class Admin:
    """Admin handlers bound to one sandbox's state."""

    def __init__(self, state: SandboxState) -> None:
        self.state = state

    def routes(self) -> list[Route]:
        """The /_sandbox routes."""
        return [
            Route("/_sandbox/state", self.get_state, methods=["GET"]),
            Route("/_sandbox/customers", self.customers, methods=["GET"]),
            Route("/_sandbox/faults", self.get_faults, methods=["GET"]),
            Route("/_sandbox/faults", self.put_faults, methods=["PUT"]),
            Route("/_sandbox/rate-limit", self.put_rate_limit, methods=["PUT"]),
            Route("/_sandbox/reset", self.reset, methods=["POST"]),
        ]

    async def get_state(self, request: Request) -> Response:
        """Counts for tests and demos."""
        return json_response(self.state.state_json())

    async def customers(self, request: Request) -> Response:
        """Every stored customer (optionally of one company), in rootfi_id order (the store's
        listing order is rootfi_id order too: ids and timestamps only ever grow together)."""
        raw = request.query_params.get("company_id")
        try:
            company_id = None if raw is None else int(raw)
        except ValueError:
            raise invalid("company_id must be an integer") from None
        rows = self.state.store.customers_of(company_id)
        return json_response({"data": [c.record for c in rows], "total_count": len(rows)})

    async def get_faults(self, request: Request) -> Response:
        """The running faults."""
        return json_response(self.state.faults.current.model_dump())

    async def put_faults(self, request: Request) -> Response:
        """Change some fault fields; the others keep their running values."""
        changes = json_object(await request.body() or b"{}")
        merged = {**self.state.faults.current.model_dump(), **changes}
        try:
            faults = Faults.model_validate(merged)
        except ValidationError as exc:
            raise _validation_error(exc) from None
        self.state.faults.set(faults)
        return json_response(faults.model_dump())

    async def put_rate_limit(self, request: Request) -> Response:
        """Set (or with null, remove) the per-minute limit; all windows restart."""
        body = json_object(await request.body() or b"{}")
        for key in body:
            if key != RATE_LIMIT_KEY:
                message = f"Unknown field {key}; the only field is {RATE_LIMIT_KEY}"
                raise ApiError(400, VALIDATION_ERROR, message, key)
        if RATE_LIMIT_KEY not in body:
            message = f"{RATE_LIMIT_KEY} is required (null removes the limit)"
            raise ApiError(400, VALIDATION_ERROR, message, RATE_LIMIT_KEY)
        limit = body[RATE_LIMIT_KEY]
        if limit is not None and (type(limit) is not int or limit < 1):
            message = f"{RATE_LIMIT_KEY} must be a positive integer or null"
            raise ApiError(400, VALIDATION_ERROR, message, RATE_LIMIT_KEY)
        self.state.limiter.reset(limit)
        return json_response({RATE_LIMIT_KEY: limit})

    async def reset(self, request: Request) -> Response:
        """Forget all customers, syncs, counters and pending writes; back to the configured
        faults and limit."""
        self.state.reset()
        return json_response(self.state.state_json())
