"""One running sandbox: its config, store, faults, rate limiter, counters and async writes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from rootfi_sync.sandbox.config import SandboxConfig
from rootfi_sync.sandbox.errors import ApiError
from rootfi_sync.sandbox.faults import FaultInjector
from rootfi_sync.sandbox.models import RUNNING, Sync
from rootfi_sync.sandbox.ratelimit import RateLimiter
from rootfi_sync.sandbox.store import Store

logger = logging.getLogger("rootfi_sync.sandbox")
JOBS_PER_STEP = 200


class Counters:
    """Requests seen under /v3, by status ("lost" for dropped answers)."""

    def __init__(self) -> None:
        self.total = 0
        self.creates = 0
        self.by_status: dict[str, int] = {}

    def record(self, status: int | None, is_create: bool) -> None:
        """Count one finished request."""
        self.total += 1
        self.creates += is_create
        key = "lost" if status is None else str(status)
        self.by_status[key] = self.by_status.get(key, 0) + 1

    def to_json(self) -> dict[str, Any]:
        """For `GET /_sandbox/state`."""
        return {"total": self.total, "by_status": dict(self.by_status), "creates": self.creates}


class SyncRunner:
    """Runs async writes as background tasks on the server's event loop."""

    def __init__(self, store: Store, delay_seconds: float) -> None:
        self.store = store
        self.delay_seconds = delay_seconds
        self._tasks: set[asyncio.Task[None]] = set()

    def schedule(self, sync: Sync) -> None:
        """Start writing `sync` after the configured delay (does not block)."""
        task = asyncio.get_running_loop().create_task(self._run(sync))
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("async sync failed", exc_info=task.exception())

    async def _run(self, sync: Sync) -> None:
        await asyncio.sleep(self.delay_seconds)
        self.store.start_sync(sync)
        pending = [job for job in sync.jobs if job.status == RUNNING]
        for start in range(0, len(pending), JOBS_PER_STEP):
            self.store.run_jobs(sync, pending[start : start + JOBS_PER_STEP])
            await asyncio.sleep(0)  # let requests in between steps
        self.store.finish_sync(sync)

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
        self.store = Store(config.db_path)
        self.faults = FaultInjector(config.faults)
        self.limiter = RateLimiter(config.rate_limit_per_minute)
        self.counters = Counters()
        self.runner = SyncRunner(self.store, config.async_delay_seconds)
        self.stopping = asyncio.Event()

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
        """Back to an empty sandbox with the configured faults and rate limit."""
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
