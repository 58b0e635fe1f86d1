"""One running sandbox: its config, store, faults, rate limiter, counters and background
writes (async writes, late-landing creates)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

from rootfi_sandbox.config import SandboxConfig
from rootfi_sandbox.errors import ApiError
from rootfi_sandbox.faults import FaultInjector
from rootfi_sandbox.models import RUNNING, Sync
from rootfi_sandbox.platforms import PLATFORMS, Platform
from rootfi_sandbox.ratelimit import RateLimiter
from rootfi_sandbox.store import Store

logger = logging.getLogger("rootfi_sandbox")
JOBS_PER_STEP = 200


class Counters:
    """Requests seen under /v3, by status ("lost" for dropped answers) and by kind (what was
    asked: `guard.request_kind`)."""

    def __init__(self) -> None:
        self.total = 0
        self.creates = 0
        self.by_status: dict[str, int] = {}
        self.by_kind: dict[str, int] = {}

    def record(self, status: int | None, kind: str) -> None:
        """Count one finished request of `kind`."""
        self.total += 1
        self.creates += kind == "create"
        key = "lost" if status is None else str(status)
        self.by_status[key] = self.by_status.get(key, 0) + 1
        self.by_kind[kind] = self.by_kind.get(kind, 0) + 1

    def to_json(self) -> dict[str, Any]:
        """For `GET /_sandbox/state`."""
        return {
            "total": self.total,
            "by_status": dict(self.by_status),
            "by_kind": dict(self.by_kind),
            "creates": self.creates,
        }


class SyncRunner:
    """Runs background writes as tasks on the server's event loop: async writes, and the
    synchronous creates whose lost answer lands late. None of them survive a restart
    unfinished except async writes (see `SandboxState.resume`); reset and shutdown cancel all.
    """

    def __init__(self, store: Store, delay_seconds: float, faults: FaultInjector) -> None:
        self.store = store
        self.delay_seconds = delay_seconds
        self.faults = faults
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, sync: Sync) -> None:
        """Start writing `sync` after the configured delay (does not block)."""
        self._spawn(self._run(sync, self.faults.current.async_write_seconds))

    def land(self, company_id: int, fields: dict[str, Any], seconds: float) -> None:
        """Store a synchronous create `seconds` from now (does not block)."""
        self._spawn(self._land(company_id, fields, seconds))

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(work)
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("background write failed", exc_info=task.exception())

    async def _run(self, sync: Sync, write_seconds: float) -> None:
        await asyncio.sleep(self.delay_seconds)
        self.store.start_sync(sync)
        if write_seconds > 0:
            await asyncio.sleep(write_seconds)
        pending = [job for job in sync.jobs if job.status == RUNNING]
        for start in range(0, len(pending), JOBS_PER_STEP):
            platform = PLATFORMS[self.faults.current.platform]
            self.store.run_jobs(sync, pending[start : start + JOBS_PER_STEP], platform)
            await asyncio.sleep(0)  # let requests in between steps
        self.store.finish_sync(sync)

    async def _land(self, company_id: int, fields: dict[str, Any], seconds: float) -> None:
        await asyncio.sleep(seconds)
        self.store.write_now(company_id, fields)

    def cancel_all(self) -> None:
        """Stop every pending write (reset, shutdown)."""
        for task in list(self._tasks):
            task.cancel()
        self._tasks.clear()


class SandboxState:
    """Everything one app instance holds; only its event loop touches it."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.api_keys = frozenset(key.encode("latin-1") for key in config.api_keys)
        self.company_ids = sorted(config.company_ids)
        self.store = Store(config.db_path)
        self.faults = FaultInjector(config.faults)
        self.limiter = RateLimiter(config.rate_limit_per_minute)
        self.counters = Counters()
        self.runner = SyncRunner(self.store, config.async_delay_seconds, self.faults)
        self.stopping = asyncio.Event()

    @property
    def platform(self) -> Platform:
        """The platform profile behind every company now (`Faults.platform`)."""
        return PLATFORMS[self.faults.current.platform]

    async def pause(self, seconds: float) -> None:
        """Sleep (latency, slow answers), cut short when the server starts shutting down."""
        if seconds <= 0 or self.stopping.is_set():
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.stopping.wait(), seconds)

    def require_company(self, company_id: int) -> None:
        """404 COMPANY_NOT_FOUND unless the company is configured."""
        if company_id not in self.config.company_ids:
            message = f"No connected company with rootfi_id {company_id}"
            raise ApiError(404, "COMPANY_NOT_FOUND", message, "company_id")

    def resume(self) -> None:
        """Schedule async writes left unfinished by a previous run (persistence)."""
        for sync in self.store.unfinished_syncs():
            self.runner.schedule(sync)

    def reset(self) -> None:
        """Back to an empty sandbox with the configured faults and rate limit (pending async
        writes and late landings are dropped)."""
        self.runner.cancel_all()
        self.store.reset()
        self.counters = Counters()
        self.faults.set(self.config.faults)
        self.limiter.reset(self.config.rate_limit_per_minute)

    def state_json(self) -> dict[str, Any]:
        """For `GET /_sandbox/state`."""
        by_company = {str(cid): len(rows) for cid, rows in sorted(self.store.by_company.items())}
        return {
            "customers": len(self.store.customers),
            "customers_by_company": by_company,
            "requests": self.counters.to_json(),
            "faults": self.faults.current.model_dump(),
            "rate_limit_per_minute": self.limiter.per_minute,
            "syncs": len(self.store.syncs),
        }

    def shutdown(self) -> None:
        """Stop background writes and close the SQLite file."""
        self.runner.cancel_all()
        self.store.close()
