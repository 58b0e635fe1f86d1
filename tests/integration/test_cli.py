"""The `rootfi-sync` command line, driven in-process with typer's runner."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from rootfi_sync.cli import app
from rootfi_sync.sandbox import SandboxServer
from tests.factories import make_customer
from tests.integration.conftest import API_KEY
from tests.integration.helpers import create_source, ledger_rows, seed_source

runner = CliRunner()


def invoke(*args: str) -> Any:
    return runner.invoke(app, list(args), catch_exceptions=False)


def test_seed_with_consent_then_init_db_then_status_shows_nothing_synced_yet(
    sqlite_url: str, configure: Any
) -> None:
    configure(sqlite_url)
    seeded = invoke("seed", "--count", "25", "--yes-into", sqlite_url)
    assert seeded.exit_code == 0 and "added 25 customers" in seeded.output
    again = invoke("init-db")  # idempotent: migrated already by seed
    assert again.exit_code == 0, again.output
    assert "source 'customers' found" in again.output and "ledger ready" in again.output
    result = invoke("status")
    assert result.exit_code == 0 and "ledger, company 1089" in result.output


def test_a_bad_setting_exits_2_naming_it(sqlite_url: str, configure: Any, monkeypatch: Any) -> None:
    configure(sqlite_url)
    monkeypatch.setenv("ROOTFI_BATCH_SIZE", "0")
    result = invoke("status")
    assert result.exit_code == 2 and "ROOTFI_BATCH_SIZE" in result.output


def test_status_without_a_ledger_says_to_run_init_db(sqlite_url: str, configure: Any) -> None:
    configure(sqlite_url)
    result = invoke("status")
    assert result.exit_code == 1 and "init-db" in result.output


@pytest.mark.usefixtures("prefect_server")
def test_run_exits_0_with_failures_recorded_and_retry_re_drives_a_parked_customer(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer() for _ in range(4)] + [make_customer(email="x@refused.example")]
    seed_source(sqlite_url, rows)
    configure(sqlite_url, rootfi_batch_size=4)  # the refused one alone: its retry is the same batch

    result = invoke("run")

    assert result.exit_code == 0, result.output
    assert "refused.example" in result.output and API_KEY not in result.output
    refused = str(rows[-1]["id"])
    assert ledger_rows(sqlite_url)[refused].status == "FAILED"
    creates = sandbox.admin.state()["requests"]["creates"]

    again = invoke("retry", "--customer", refused)

    assert again.exit_code == 0, again.output
    assert "1 customer(s) will be sent again" in again.output
    assert sandbox.admin.state()["requests"]["creates"] == creates + 1  # not answered by cache
    assert ledger_rows(sqlite_url)[refused].status == "FAILED"


@pytest.mark.usefixtures("prefect_server")
def test_run_exits_1_when_the_run_cannot_complete(sqlite_url: str, configure: Any) -> None:
    seed_source(sqlite_url, [make_customer()])
    configure(sqlite_url, rootfi_base_url="http://127.0.0.1:9/v3", rootfi_retries=0)
    result = invoke("run")
    assert result.exit_code == 1
    assert "run failed" in result.output


@pytest.mark.usefixtures("prefect_server")
@pytest.mark.parametrize(
    ("dialect", "key_type", "keys"),
    [
        pytest.param("sqlite", sa.Text(), ["C-0001", "C-0002"], id="sqlite-text"),
        pytest.param(
            "postgresql",
            sa.BigInteger(),
            [9_000_000_000_001, 9_000_000_000_002],
            id="pg-bigint",
            marks=pytest.mark.postgres,
        ),
    ],
)
def test_run_customer_takes_a_key_of_any_type_as_typed(
    request: pytest.FixtureRequest,
    sandbox: SandboxServer,
    configure: Any,
    dialect: str,
    key_type: sa.types.TypeEngine[Any],
    keys: list[Any],
) -> None:
    url = str(request.getfixturevalue("sqlite_url" if dialect == "sqlite" else "pg_url"))
    create_source(url, [make_customer(id=key) for key in keys], id=key_type)
    configure(url)

    result = invoke("run", "--customer", str(keys[1]))

    assert result.exit_code == 0, result.output
    assert {cid: r.status for cid, r in ledger_rows(url).items()} == {str(keys[1]): "SYNCED"}
