"""The same promises with the source (and ledger) on a real PostgreSQL 15 server."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from flows.sync_customers import sync_customers
from rootfi_sync.sandbox import SandboxServer
from tests.factories import make_customer
from tests.integration.conftest import COMPANY
from tests.integration.helpers import (
    assert_exactly_once,
    counts_of,
    ledger_rows,
    seed_source,
    start_flow_process,
    wait_for_claim_owners,
)

pytestmark = [pytest.mark.postgres, pytest.mark.usefixtures("prefect_server")]


def test_syncs_from_postgresql_and_a_second_run_sends_nothing(
    pg_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer() for _ in range(30)]
    rows[4]["currency"] = "dollars"
    seed_source(pg_url, rows)
    configure(pg_url, rootfi_batch_size=7)

    first = sync_customers()
    second = sync_customers()

    assert (first["synced"], first["failed"], second["picked"]) == (29, 1, 0)
    ledger = ledger_rows(pg_url)
    assert "currency" in ledger[str(rows[4]["id"])].last_error
    assert len(sandbox.admin.customers(COMPANY)) == 29


def test_reads_a_users_own_table_and_column_names(
    pg_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    columns = {"id": "client_no", "name": "full_name", "email": "mail"}
    rows = [make_customer() for _ in range(5)]
    seed_source(pg_url, rows, source_table="clients", source_columns=columns)
    configure(pg_url, source_table="clients", source_columns='{"id": "client_no", '
              '"name": "full_name", "email": "mail"}')  # fmt: skip

    counts = sync_customers()

    assert counts["synced"] == 5
    assert {c["name"] for c in sandbox.admin.customers(COMPANY)} == {r["name"] for r in rows}


@pytest.mark.parametrize("mode", ["single", "batch"])
def test_two_runs_started_together_never_send_a_customer_twice(
    pg_url: str, sandbox: SandboxServer, configure: Any, mode: str, tmp_path: Path
) -> None:
    rows = [make_customer() for _ in range(400)]
    seed_source(pg_url, rows)
    configure(pg_url, rootfi_batch_size=10, rootfi_write_mode=mode)
    # A flow process can take seconds to reach its first claim under a busy Prefect server:
    # slow RootFi down until both runs have claimed customers, so that they really race.
    sandbox.admin.set_faults(latency_seconds=1.0)
    runs = [start_flow_process({}, tmp_path) for _ in range(2)]
    wait_for_claim_owners(pg_url, owners=2)
    sandbox.admin.set_faults(latency_seconds=0.0)
    results = [run.communicate(timeout=300) for run in runs]

    assert [run.returncode for run in runs] == [0, 0], [err.decode()[-6000:] for _, err in results]
    picked = [counts_of(out)["picked"] for out, _ in results]
    assert all(n > 0 for n in picked), picked  # both claimed customers: they did race
    assert_exactly_once(sandbox, pg_url, rows)
    assert Counter(r.lease_owner for r in ledger_rows(pg_url).values()) == {None: 400}
