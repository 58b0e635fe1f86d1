"""What the sandbox stores: customers, syncs (one per create request) and their jobs."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from rootfi_sandbox.timefmt import iso_from_ms

DATA_MODEL = "ECOMMERCE_CUSTOMERS"
CONFIG_MODE = "CREATE"
CONFIG_ID = "ECOMMERCE_CUSTOMERS:CREATE"  # the SDK requires one; RootFi's form is unknown
CREATED, RUNNING, SUCCESS, FAILED = "CREATED", "RUNNING", "SUCCESS", "FAILED"
UNFINISHED = frozenset({CREATED, RUNNING})


@dataclass(slots=True)
class Customer:
    """A created customer; `record` is exactly what the API returns for it."""

    rootfi_id: int
    company_id: int
    updated_ms: int
    record: dict[str, Any]

    @property
    def key(self) -> tuple[int, int]:
        """The listing's sort key: rootfi_updated_at, ties broken by rootfi_id."""
        return (self.updated_ms, self.rootfi_id)


@dataclass(slots=True)
class Job:
    """The push of one record of a sync to the platform."""

    rootfi_id: int
    sync_id: str
    status: str
    record: dict[str, Any]
    error: dict[str, Any] | None
    created_ms: int
    updated_ms: int

    def to_json(self, company_id: int, integration_type: str) -> dict[str, Any]:
        """The job as `GET /v3/core/syncs/{id}/jobs` shows it (the SDK's `JobData`; its
        `start_time` and `end_time` are required, so an unfinished job's `end_time` is its
        last change)."""
        created, updated = iso_from_ms(self.created_ms), iso_from_ms(self.updated_ms)
        return {
            "rootfi_id": self.rootfi_id,
            "rootfi_created_at": created,
            "rootfi_updated_at": updated,
            "rootfi_company_id": company_id,
            "start_time": created,
            "end_time": updated,
            "integration_type": integration_type,
            "status": self.status,
            "data_model": DATA_MODEL,
            "config_mode": CONFIG_MODE,
            "config_id": CONFIG_ID,
            "sync_id": self.sync_id,
            "job_type": "PUSH",
            "retry_count": 0,
            "rate_limit_sleep_time": 0,
            "error": self.error,
        }


@dataclass(slots=True)
class Sync:
    """One create request's write; synchronous creates make one that is already SUCCESS."""

    sync_id: str
    company_id: int
    status: str
    created_ms: int
    updated_ms: int
    jobs: list[Job] = field(default_factory=list)
    rootfi_id: int = 0  # the store numbers syncs in the order they were opened

    def to_json(self, integration_type: str) -> dict[str, Any]:
        """The sync as `GET /v3/core/syncs/{id}` shows it (the SDK's `SyncData`; an unfinished
        sync's `end_time` is its last change, as the SDK requires one)."""
        counts = {CREATED: 0, RUNNING: 0, SUCCESS: 0, FAILED: 0}
        for job in self.jobs:
            counts[job.status] += 1
        created, updated = iso_from_ms(self.created_ms), iso_from_ms(self.updated_ms)
        return {
            "rootfi_id": self.rootfi_id,
            "rootfi_created_at": created,
            "rootfi_updated_at": updated,
            "rootfi_company_id": self.company_id,
            "start_time": created,
            "end_time": updated,
            "integration_type": integration_type,
            "full_sync": False,
            "sync_type": "MANUAL",
            "config_mode": CONFIG_MODE,
            "sync_data_models": [DATA_MODEL],
            "sync_id": self.sync_id,
            "total_count": len(self.jobs),
            "success_count": counts[SUCCESS],
            "failed_count": counts[FAILED],
            "running_count": counts[RUNNING],
            "pending_count": counts[CREATED],
            "status": self.status,
        }


def ordered_jobs(sync: Sync, order: str, seed: int | None) -> list[Job]:
    """The sync's jobs in the order a listing shows them (`Faults.jobs_order`): as `sent`,
    `reversed`, `failures_first` (each group as sent) or `shuffled` by `seed` and the sync id
    (the same order on every page of a listing)."""
    jobs = list(sync.jobs)
    if order == "reversed":
        jobs.reverse()
    elif order == "failures_first":
        jobs.sort(key=lambda job: job.status != FAILED)
    elif order == "shuffled":
        random.Random(f"{seed}:{sync.sync_id}").shuffle(jobs)
    return jobs
