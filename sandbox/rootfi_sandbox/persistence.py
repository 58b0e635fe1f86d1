"""Optional SQLite persistence (stdlib sqlite3) so customers, syncs and jobs survive restarts.

Only the server's event loop thread touches the connection (`check_same_thread=False` is
there because the app may be built on another thread than the one that serves it).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable

from rootfi_sandbox.models import Customer, Job, Sync

_SCHEMA = """
CREATE TABLE IF NOT EXISTS customers (
    rootfi_id INTEGER PRIMARY KEY, company_id INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL, record TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS syncs (
    sync_id TEXT PRIMARY KEY, company_id INTEGER NOT NULL, status TEXT NOT NULL,
    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    rootfi_id INTEGER PRIMARY KEY, sync_id TEXT NOT NULL, status TEXT NOT NULL,
    record TEXT NOT NULL, error TEXT, created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
"""


class Database:
    """The sandbox's tables in one SQLite file."""

    def __init__(self, path: str) -> None:
        self._conn = sqlite3.connect(path, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.executescript(_SCHEMA)
        self._conn.commit()

    def save_customers(self, customers: Iterable[Customer]) -> None:
        """Insert created customers (call commit() after)."""
        self._conn.executemany(
            "INSERT OR REPLACE INTO customers VALUES (?, ?, ?, ?)",
            [(c.rootfi_id, c.company_id, c.updated_ms, json.dumps(c.record)) for c in customers],
        )

    def save_sync(self, sync: Sync, jobs: Iterable[Job] = ()) -> None:
        """Upsert a sync and the given jobs of it (call commit() after)."""
        self._conn.execute(
            "INSERT OR REPLACE INTO syncs VALUES (?, ?, ?, ?, ?)",
            (sync.sync_id, sync.company_id, sync.status, sync.created_ms, sync.updated_ms),
        )
        self._conn.executemany(
            "INSERT OR REPLACE INTO jobs VALUES (?, ?, ?, ?, ?, ?, ?)",
            [
                (
                    j.rootfi_id,
                    j.sync_id,
                    j.status,
                    json.dumps(j.record),
                    None if j.error is None else json.dumps(j.error),
                    j.created_ms,
                    j.updated_ms,
                )
                for j in jobs
            ],
        )

    def commit(self) -> None:
        """Make everything saved so far durable."""
        self._conn.commit()

    def load(self) -> tuple[list[Customer], list[Sync]]:
        """Every stored customer (in rootfi_id order) and sync (with its jobs in order)."""
        customers = [
            Customer(rid, company, updated, json.loads(record))
            for rid, company, updated, record in self._conn.execute(
                "SELECT rootfi_id, company_id, updated_ms, record FROM customers ORDER BY rootfi_id"
            )
        ]
        syncs = {
            row[0]: Sync(*row)
            for row in self._conn.execute(
                "SELECT sync_id, company_id, status, created_ms, updated_ms FROM syncs"
                " ORDER BY created_ms, rowid"
            )
        }
        for rid, sync_id, status, record, error, created, updated in self._conn.execute(
            "SELECT * FROM jobs ORDER BY rootfi_id"
        ):
            err = None if error is None else json.loads(error)
            job = Job(rid, sync_id, status, json.loads(record), err, created, updated)
            syncs[sync_id].jobs.append(job)
        return customers, list(syncs.values())

    def clear(self) -> None:
        """Delete everything."""
        self._conn.executescript("DELETE FROM customers; DELETE FROM syncs; DELETE FROM jobs;")
        self._conn.commit()

    def close(self) -> None:
        """Close the file."""
        self._conn.close()
