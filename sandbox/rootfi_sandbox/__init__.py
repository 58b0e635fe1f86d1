"""A local stand-in for the RootFi v3 API that behaves as `/work/shared/rootfi-api.md` says,
unpleasant parts included (batch refusal, platform refusals, rate limits, lost answers, failing
GETs, records that land late, slow async writes).

    from rootfi_sandbox import SandboxConfig, Faults, SandboxServer, create_app, serve

    with SandboxServer(SandboxConfig(faults=Faults(lost_answer_rate=0.1, seed=1))) as sb:
        ...  # point ROOTFI_BASE_URL at sb.api_url; inspect with sb.admin.state()

Endpoints (`api`, `core`), answering in the shapes of RootFi's official SDK (npm
`rootfi-api` 3.1.8): `POST|GET /v3/ecommerce/customers`, `GET /v3/core/companies[/{id}]`,
`GET /v3/core/syncs`, `/v3/core/syncs/{id}`, `/v3/core/syncs/{id}/jobs[/{job_id}]`,
`/v3/core/syncs/jobs/{job_id}`; admin under `/_sandbox/` (see `rootfi_sandbox.admin`). The
CLI is `rootfi_sandbox.command.sandbox_command` (also `python -m rootfi_sandbox`).

The sandbox's own rules where the RootFi docs are silent:
- Every `/v3` path needs a configured `api_key` header (401 UNAUTHORIZED, checked before
  routing); unknown paths and methods answer 404 NOT_FOUND / 405 METHOD_NOT_ALLOWED. An
  error's `field` is always a string (`""` when no field is to blame).
- Create: envelope problems are 400 INVALID_REQUEST, an unknown company 404
  COMPANY_NOT_FOUND, >1 record without run_async 400 BATCH_NOT_SUPPORTED, then schema
  checks of what the docs state (400 VALIDATION_ERROR, field `data[i].<field>`, whole
  request refused), then the platform profile's verdict (`rootfi_sandbox.platforms`: 400
  PLATFORM_VALIDATION_ERROR for a sync create, a FAILED job for an async one) and the form
  it keeps the record in. Every customer field is optional and `null` is accepted for each.
- Async answers 200 `{"data": [], "sync_id"}`; the sync stays CREATED for
  `async_delay_seconds`, then RUNNING for `Faults.async_write_seconds` and while records are
  written, then SUCCESS or FAILED. Jobs carry no customer id (listing is the only way to
  find the ids); they are listed in `Faults.jobs_order`, and a sync and its jobs answer 404
  for `Faults.sync_unreadable_seconds` after the write.
- Listing customers: `limit` 1..1000 (else 400; default 50), `next` keyset cursor carrying
  the filters and sort (not the limit), `sort[rootfi_created_at]` the same order as
  `sort[rootfi_updated_at]` (nothing is updated), `prev` always null, `include_deleted_records`
  read but changing nothing (nothing is ever deleted). `prev`, `select` and the companies
  filters answer 400 NOT_IMITATED naming the parameter.
- Listing companies: ascending `rootfi_id`, `limit` 1..1000 (default 100), an opaque `next`
  cursor (null on the last page); each company has one HEALTHY connection whose
  `integration_type` is the platform profile's. Syncs and their jobs are paged by position
  too (default 50). With `Faults.repeat_cursor` every list hands its `next` back forever.
- Rate limit: a fixed 60 s window per key opened by its first request; `X-RateLimit-*` on
  every authenticated `/v3` answer, omitted entirely when no limit is configured.
- Faults (see `Faults`): creates have their own 500, 429, lost-answer and slow-answer
  rates; GETs have theirs (500, 429, dropped connection), checked after the api_key and the
  rate limit, drawn from separate dice so the GETs never shift a seed's create faults. A
  lost synchronous create is stored before the drop, or `lost_answer_landing_seconds` after
  it (then with that moment's timestamps and the next rootfi_id); a late landing lives only
  in memory, and reset or shutdown cancels it like a pending async write.
  `latency_seconds` delays every `/v3` request, GETs included (before the api_key check).
  `PUT /_sandbox/faults` re-seeds, `POST /_sandbox/reset` restores the configured faults and
  limit. `requests.creates` in the admin state counts create requests of any outcome;
  dropped answers count under status "lost"; `requests.by_kind` counts every request by what
  it asked (create, list_customers, sync, sync_jobs, companies, other).
"""

from __future__ import annotations

from rootfi_sandbox.adminclient import SandboxAdmin
from rootfi_sandbox.app import create_app
from rootfi_sandbox.config import Faults, SandboxConfig
from rootfi_sandbox.server import SandboxServer, serve

__all__ = ["Faults", "SandboxAdmin", "SandboxConfig", "SandboxServer", "create_app", "serve"]
