"""What the sandbox stores: customers, syncs (one per create request) and their jobs."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from rootfi_sandbox.timefmt import iso_from_ms

DATA_MODEL = "ECOMMERCE_CUSTOMERS"
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

    def to_json(self) -> dict[str, Any]:
        """The job as `GET /v3/core/syncs/{id}/jobs` shows it."""
        return {
            "rootfi_id": self.rootfi_id,
            "sync_id": self.sync_id,
            "status": self.status,
            "data_model": DATA_MODEL,
            "job_type": "PUSH",
            "error": self.error,
            "retry_count": 0,
            "rate_limit_sleep_time": 0,
            "created_at": iso_from_ms(self.created_ms),
            "updated_at": iso_from_ms(self.updated_ms),
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

    def to_json(self) -> dict[str, Any]:
        """The sync as `GET /v3/core/syncs/{id}` shows it."""
        counts = {CREATED: 0, RUNNING: 0, SUCCESS: 0, FAILED: 0}
        for job in self.jobs:
            counts[job.status] += 1
        return {
            "sync_id": self.sync_id,
            "status": self.status,
            "total_count": len(self.jobs),
            "success_count": counts[SUCCESS],
            "failed_count": counts[FAILED],
            "running_count": counts[RUNNING],
            "pending_count": counts[CREATED],
            "config_mode": "CREATE",
            "data_model": DATA_MODEL,
            "rootfi_company_id": self.company_id,
            "created_at": iso_from_ms(self.created_ms),
            "updated_at": iso_from_ms(self.updated_ms),
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
