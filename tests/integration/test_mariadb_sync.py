"""The same promises with the source (and ledger) on a real MariaDB 10.11 server."""

from __future__ import annotations

import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from flows.sync_customers import sync_customers
from rootfi_sync.db import make_engine
from rootfi_sync.sandbox import SandboxServer
from rootfi_sync.tables import ledger
from tests.factories import make_customer
from tests.integration.conftest import COMPANY
from tests.integration.helpers import (
    assert_exactly_once,
    counts_of,
    ledger_rows,
    seed_source,
    start_flow_process,
)

pytestmark = [pytest.mark.mariadb, pytest.mark.usefixtures("prefect_server")]


def wait_for_claims(url: str, runs: list[subprocess.Popen[bytes]], timeout: float = 120.0) -> None:
    """Wait until every run has held leases in the ledger.

    If a run ends first, or the time runs out, stop the runs and fail with their stderr.
    """
    engine = make_engine(url)
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < len(runs):
            if any(run.poll() is not None for run in runs) or time.monotonic() > deadline:
                for run in runs:
                    if run.poll() is None:
                        run.kill()
                errors = [run.communicate()[1].decode()[-3000:] for run in runs]
                raise AssertionError(f"only {len(seen)} run(s) claimed customers", *errors)
            with engine.connect() as conn:
                query = sa.select(ledger.c.lease_owner).distinct()
                seen.update(o for o in conn.execute(query).scalars() if o is not None)
            time.sleep(0.05)
    finally:
        engine.dispose()


def test_syncs_from_mariadb_and_a_second_run_sends_nothing(
    mysql_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer() for _ in range(30)]
    rows[4]["currency"] = "dollars"
    seed_source(mysql_url, rows)
    configure(mysql_url, rootfi_batch_size=7)

    first = sync_customers()
    second = sync_customers()

    assert (first["synced"], first["failed"], second["picked"]) == (29, 1, 0)
    ledger = ledger_rows(mysql_url)
    assert "currency" in ledger[str(rows[4]["id"])].last_error
    assert len(sandbox.admin.customers(COMPANY)) == 29
    # Sent as stored: timestamps with their milliseconds (DATETIME(6) in the sample table).
    sent = {c["email"]: c for c in sandbox.admin.customers(COMPANY)}
    assert sent[rows[0]["email"]]["created_at"].endswith(".123Z"), sent[rows[0]["email"]]


def test_reads_a_users_own_table_and_column_names(
    mysql_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    columns = {"id": "client_no", "name": "full_name", "email": "mail"}
    rows = [make_customer() for _ in range(5)]
    seed_source(mysql_url, rows, source_table="clients", source_columns=columns)
    configure(mysql_url, source_table="clients", source_columns='{"id": "client_no", '
              '"name": "full_name", "email": "mail"}')  # fmt: skip

    counts = sync_customers()

    assert counts["synced"] == 5
    assert {c["name"] for c in sandbox.admin.customers(COMPANY)} == {r["name"] for r in rows}


@pytest.mark.parametrize("mode", ["single", "batch"])
def test_two_runs_started_together_never_send_a_customer_twice(
    mysql_url: str, sandbox: SandboxServer, configure: Any, mode: str, tmp_path: Path
) -> None:
    rows = [make_customer() for _ in range(400)]
    seed_source(mysql_url, rows)
    configure(mysql_url, rootfi_batch_size=10, rootfi_write_mode=mode)
    # A flow process can take seconds to reach its first claim under a busy Prefect server:
    # slow RootFi down until both runs have claimed customers, so that they really race.
    sandbox.admin.set_faults(latency_seconds=1.0)
    runs = [start_flow_process({}, tmp_path) for _ in range(2)]
    try:
        wait_for_claims(mysql_url, runs)
    finally:
        sandbox.admin.set_faults(latency_seconds=0.0)
    results = [run.communicate(timeout=300) for run in runs]

    assert [run.returncode for run in runs] == [0, 0], [err.decode()[-6000:] for _, err in results]
    picked = [counts_of(out)["picked"] for out, _ in results]
    assert all(n > 0 for n in picked), picked  # both claimed customers: they did race
    assert_exactly_once(sandbox, mysql_url, rows)
    assert Counter(r.lease_owner for r in ledger_rows(mysql_url).values()) == {None: 400}
