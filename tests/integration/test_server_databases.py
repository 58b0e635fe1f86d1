"""The same promises with the source (and ledger) on real database servers: PostgreSQL 15
and MariaDB 10.11, each started by the suite itself."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from rootfi_sandbox import SandboxServer

from flows.sync_customers import sync_customers
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

pytestmark = pytest.mark.usefixtures("prefect_server")


@pytest.fixture(
    params=[
        pytest.param("pg_url", marks=pytest.mark.postgres, id="postgresql"),
        pytest.param("mysql_url", marks=pytest.mark.mariadb, id="mariadb"),
    ]
)
def server_url(request: pytest.FixtureRequest) -> str:
    """A fresh database on the suite's PostgreSQL server, then on its MariaDB server."""
    url: str = request.getfixturevalue(request.param)
    return url


def test_syncs_and_a_second_run_sends_nothing(
    server_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer() for _ in range(30)]
    rows[4]["currency"] = "dollars"
    seed_source(server_url, rows)
    configure(server_url, rootfi_batch_size=7)

    first = sync_customers()
    second = sync_customers()

    assert (first["synced"], first["failed"], second["picked"]) == (29, 1, 0)
    ledger = ledger_rows(server_url)
    assert "currency" in ledger[str(rows[4]["id"])].last_error
    sent = {c["email"]: c for c in sandbox.admin.customers(COMPANY)}
    assert len(sent) == 29
    # Sent as stored: timestamps keep their milliseconds (DATETIME(6) on MariaDB).
    assert sent[rows[0]["email"]]["created_at"].endswith(".123Z"), sent[rows[0]["email"]]


def test_reads_a_users_own_table_and_column_names(
    server_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    columns = {"id": "client_no", "name": "full_name", "email": "mail"}
    rows = [make_customer() for _ in range(5)]
    seed_source(server_url, rows, source_table="clients", source_columns=columns)
    configure(
        server_url,
        source_table="clients",
        source_columns='{"id": "client_no", "name": "full_name", "email": "mail"}',
    )

    counts = sync_customers()

    assert counts["synced"] == 5
    assert {c["name"] for c in sandbox.admin.customers(COMPANY)} == {r["name"] for r in rows}


# Each server once, each write mode once: what keeps two runs apart is the claim, made in the
# server's SQL before either mode sends (all four pairs took 2 to 3 minutes of `make test`).
@pytest.mark.parametrize(
    ("server_url", "mode"),
    [
        pytest.param("pg_url", "single", marks=pytest.mark.postgres, id="postgresql-single"),
        pytest.param("mysql_url", "batch", marks=pytest.mark.mariadb, id="mariadb-batch"),
    ],
    indirect=["server_url"],
)
def test_two_runs_started_together_never_send_a_customer_twice(
    server_url: str, sandbox: SandboxServer, configure: Any, mode: str, tmp_path: Path
) -> None:
    rows = [make_customer() for _ in range(120)]  # 12 batches: both runs claim some
    seed_source(server_url, rows)
    configure(server_url, rootfi_batch_size=10, rootfi_write_mode=mode)
    # A flow process can take seconds to reach its first claim under a busy Prefect server:
    # slow RootFi down until both runs have claimed customers, so that they really race.
    sandbox.admin.set_faults(latency_seconds=1.0)
    runs = [start_flow_process({}, tmp_path) for _ in range(2)]
    try:
        wait_for_claim_owners(server_url, owners=2, runs=runs)
    finally:
        sandbox.admin.set_faults(latency_seconds=0.0)
    results = [run.communicate(timeout=300) for run in runs]

    assert [run.returncode for run in runs] == [0, 0], [err.decode()[-6000:] for _, err in results]
    picked = [counts_of(out)["picked"] for out, _ in results]
    assert all(n > 0 for n in picked), picked  # both claimed customers: they did race
    assert_exactly_once(sandbox, server_url, rows)
    assert Counter(r.lease_owner for r in ledger_rows(server_url).values()) == {None: 120}
