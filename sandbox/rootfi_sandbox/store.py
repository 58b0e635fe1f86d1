"""The sandbox's state: customers in listing order, syncs and jobs, with optional SQLite.

Everything here runs on the server's event loop, one call at a time, so no lock is needed.
Customers are kept in two append-only lists (all, and per company) sorted by
(rootfi_updated_at, rootfi_id): timestamps are made non-decreasing, so appending keeps the
order and keyset pagination is a bisect.
"""

from __future__ import annotations

import uuid
from typing import Any

from rootfi_sandbox.errors import ApiError
from rootfi_sandbox.models import (
    CREATED,
    FAILED,
    RUNNING,
    SUCCESS,
    UNFINISHED,
    Customer,
    Job,
    Sync,
)
from rootfi_sandbox.persistence import Database
from rootfi_sandbox.platforms import Platform
from rootfi_sandbox.timefmt import iso_from_ms, now_ms

PLATFORM_ID_BASE = 500_000


class Store:
    """Customers, syncs and jobs; persisted to `db_path` when one is given."""

    def __init__(self, db_path: str | None = None) -> None:
        self._db = Database(db_path) if db_path else None
        self._clear_memory()
        if self._db is not None:
            self._load(self._db)

    def _clear_memory(self) -> None:
        self.customers: list[Customer] = []
        self.by_company: dict[int, list[Customer]] = {}
        self.syncs: dict[str, Sync] = {}
        self._job_syncs: dict[int, Sync] = {}
        self._next_customer = 1
        self._next_job = 1
        self._last_ms = 0

    def _load(self, db: Database) -> None:
        customers, syncs = db.load()
        for customer in sorted(customers, key=lambda c: c.key):
            self._index(customer)
        for sync in syncs:
            sync.rootfi_id = len(self.syncs) + 1
            self._add_sync(sync)
            if sync.jobs:
                self._next_job = max(self._next_job, sync.jobs[-1].rootfi_id + 1)
        if customers:
            self._next_customer = max(c.rootfi_id for c in customers) + 1
            self._last_ms = max(c.updated_ms for c in customers)

    def _index(self, customer: Customer) -> None:
        self.customers.append(customer)
        self.by_company.setdefault(customer.company_id, []).append(customer)

    def _tick(self) -> int:
        """Now in ms, never before the last customer's timestamp (keeps lists sorted)."""
        ms = now_ms()
        if ms < self._last_ms:
            ms = self._last_ms
        self._last_ms = ms
        return ms

    def _new_customer(self, company_id: int, fields: dict[str, Any]) -> Customer:
        rid = self._next_customer
        self._next_customer += 1
        ms = self._tick()
        stamp = iso_from_ms(ms)
        platform = str(PLATFORM_ID_BASE + rid)
        record = {
            **fields,
            "rootfi_id": rid,
            "rootfi_company_id": company_id,
            "rootfi_created_at": stamp,
            "rootfi_updated_at": stamp,
            "rootfi_deleted_at": None,
            "platform_id": f"{platform}_1",
            "platform_unique_id": platform,
        }
        customer = Customer(rid, company_id, ms, record)
        self._index(customer)
        return customer

    def _new_sync(self, company_id: int, records: list[dict[str, Any]], status: str) -> Sync:
        ms = now_ms()
        sync = Sync(str(uuid.uuid4()), company_id, status, ms, ms, rootfi_id=len(self.syncs) + 1)
        first = self._next_job
        self._next_job += len(records)
        sync.jobs = [
            Job(first + i, sync.sync_id, status, record, None, ms, ms)
            for i, record in enumerate(records)
        ]
        self._add_sync(sync)
        return sync

    def _add_sync(self, sync: Sync) -> None:
        self.syncs[sync.sync_id] = sync
        self._job_syncs.update((job.rootfi_id, sync) for job in sync.jobs)

    def write_now(self, company_id: int, fields: dict[str, Any]) -> tuple[Customer, Sync]:
        """A synchronous create of `fields` (in the form the platform keeps them): the customer,
        and a sync (one job) already SUCCESS."""
        customer = self._new_customer(company_id, fields)
        sync = self._new_sync(company_id, [fields], SUCCESS)
        if self._db is not None:
            self._db.save_customers([customer])
            self._db.save_sync(sync, sync.jobs)
            self._db.commit()
        return customer, sync

    def open_sync(self, company_id: int, records: list[dict[str, Any]]) -> Sync:
        """An async create: a CREATED sync with one CREATED job per record, in order."""
        sync = self._new_sync(company_id, records, CREATED)
        if self._db is not None:
            self._db.save_sync(sync, sync.jobs)
            self._db.commit()
        return sync

    def start_sync(self, sync: Sync) -> None:
        """CREATED -> RUNNING, with every unfinished job."""
        ms = now_ms()
        sync.status, sync.updated_ms = RUNNING, ms
        for job in sync.jobs:
            if job.status in UNFINISHED:
                job.status, job.updated_ms = RUNNING, ms
        if self._db is not None:
            self._db.save_sync(sync, sync.jobs)
            self._db.commit()

    def run_jobs(self, sync: Sync, jobs: list[Job], platform: Platform) -> None:
        """Push these jobs' records to `platform`: each makes a customer in the form the
        platform keeps, or FAILS with the platform's refusal."""
        created: list[Customer] = []
        for job in jobs:
            error = platform.refusal(job.record)
            if error is None:
                kept = platform.keep(job.record)
                created.append(self._new_customer(sync.company_id, kept))
                job.status = SUCCESS
            else:
                job.status, job.error = FAILED, error.body()
            job.updated_ms = now_ms()
        if self._db is not None:
            self._db.save_customers(created)
            self._db.save_sync(sync, jobs)
            self._db.commit()

    def finish_sync(self, sync: Sync) -> None:
        """RUNNING -> SUCCESS, or FAILED when any job failed."""
        failed = any(job.status == FAILED for job in sync.jobs)
        sync.status, sync.updated_ms = (FAILED if failed else SUCCESS), now_ms()
        if self._db is not None:
            self._db.save_sync(sync)
            self._db.commit()

    def unfinished_syncs(self) -> list[Sync]:
        """Async syncs that had not finished (after a restart they are resumed)."""
        return [sync for sync in self.syncs.values() if sync.status in UNFINISHED]

    def get_sync(self, sync_id: str) -> Sync:
        """The sync, or a 404 SYNC_NOT_FOUND."""
        sync = self.syncs.get(sync_id)
        if sync is None:
            raise ApiError(404, "SYNC_NOT_FOUND", f"No sync with id {sync_id}", "sync_id")
        return sync

    def get_job(self, job_id: str) -> tuple[Sync, Job]:
        """The job with this rootfi_id and its sync, or a 404 JOB_NOT_FOUND."""
        sync = self._job_syncs.get(int(job_id)) if job_id.isdigit() else None
        if sync is None:
            raise ApiError(404, "JOB_NOT_FOUND", f"No job with id {job_id}", "job_id")
        return sync, next(job for job in sync.jobs if job.rootfi_id == int(job_id))

    def syncs_of(self, company_id: int | None) -> list[Sync]:
        """The syncs of one company (or all), in the order they were opened."""
        return [s for s in self.syncs.values() if company_id in (None, s.company_id)]

    def customers_of(self, company_id: int | None) -> list[Customer]:
        """Customers of one company (or all), in listing order (which is also rootfi_id order:
        ids and timestamps grow together, and `_load` restores both counters)."""
        if company_id is None:
            return self.customers
        return self.by_company.get(company_id, [])

    def reset(self) -> None:
        """Forget everything (and delete it from the SQLite file)."""
        self._clear_memory()
        if self._db is not None:
            self._db.clear()

    def close(self) -> None:
        """Close the SQLite file, if any."""
        if self._db is not None:
            self._db.close()
            self._db = None
