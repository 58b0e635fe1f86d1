"""The `rootfi-sync` command line, driven in-process with typer's runner."""

from __future__ import annotations

import hashlib
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from rootfi_sandbox import SandboxServer
from typer.testing import CliRunner

from rootfi_sync.cli.commands import app
from rootfi_sync.cli.seed import DEMO_MARKER
from rootfi_sync.ledger.db import make_engine
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


def test_init_db_names_a_missing_source_table_its_database_and_columns_and_creates_nothing(
    sqlite_url: str, configure: Any, tmp_path: Path
) -> None:
    create_source(sqlite_url, [])  # a database with the ledger and `customers`, not `clients`
    before = digest(tmp_path / "source.db")
    configure(sqlite_url, source_table="clients", source_columns='{"id": "client_no"}')

    result = invoke("init-db")

    assert result.exit_code == 1
    assert f"no table or view 'clients' in {sqlite_url}" in result.output
    assert "columns client_no, name, email," in result.output
    assert digest(tmp_path / "source.db") == before


def test_init_db_names_the_columns_a_source_table_lacks(sqlite_url: str, configure: Any) -> None:
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)"))
    engine.dispose()
    configure(sqlite_url)

    result = invoke("init-db")

    assert result.exit_code == 1
    assert "has no column(s) email, phone, currency," in result.output


def test_init_db_creates_no_database_file(tmp_path: Path, configure: Any) -> None:
    configure(f"sqlite:///{tmp_path / 'typo.db'}")

    result = invoke("init-db")

    assert result.exit_code == 1 and "no database file" in result.output
    assert list(tmp_path.iterdir()) == []


@pytest.mark.postgres
def test_init_db_names_a_missing_table_of_a_schema_without_the_password(
    pg_url: str, configure: Any
) -> None:
    with_password = sa.make_url(pg_url).set(password="s3cret")  # trust auth: any will do
    configure(with_password.render_as_string(hide_password=False), source_table="crm.clients")

    result = invoke("init-db")

    assert result.exit_code == 1
    assert f"'crm.clients' in {with_password.render_as_string()}" in result.output
    assert "postgres:***@" in result.output and "s3cret" not in result.output
    engine = make_engine(pg_url)
    assert sa.inspect(engine).get_table_names() == []  # the ledger neither
    engine.dispose()


def test_seed_refuses_a_database_that_is_not_the_demos_without_its_url_again(
    sqlite_url: str, configure: Any, tmp_path: Path
) -> None:
    create_source(sqlite_url, [make_customer()])
    before = digest(tmp_path / "source.db")
    configure(sqlite_url)

    unasked = invoke("seed", "--count", "5")
    elsewhere = invoke("seed", "--count", "5", "--yes-into", f"sqlite:///{tmp_path / 'x.db'}")

    assert unasked.exit_code == elsewhere.exit_code == 2
    assert f"{sqlite_url}, which is not the demo's database" in unasked.output
    assert "--yes-into" in unasked.output
    assert digest(tmp_path / "source.db") == before


def test_seed_fills_the_demos_database_unasked(tmp_path: Path, configure: Any) -> None:
    (tmp_path / DEMO_MARKER).write_text("")
    configure(f"sqlite:///{tmp_path / 'demo.db'}")

    result = invoke("seed", "--count", "5")

    assert result.exit_code == 0 and "added 5 customers" in result.output


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


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


def test_version_names_rootfi_sync_and_prefect() -> None:
    result = invoke("--version")
    assert result.exit_code == 0
    assert re.fullmatch(r"rootfi-sync \d+\.\d+\.\d+\S* \(prefect 3\.\d+\.\d+\S*\)\n", result.output)


def test_help_shows_the_write_modes_and_refuses_any_other(sqlite_url: str, configure: Any) -> None:
    configure(sqlite_url)
    assert "[single|batch]" in invoke("run", "--help").output.replace("<", "[").replace(">", "]")
    result = invoke("run", "--write-mode", "fast")
    assert result.exit_code == 2 and "fast" in result.output


@pytest.mark.usefixtures("prefect_server")
def test_retry_all_failed_sends_only_the_customers_it_re_drove_and_status_json_counts_them(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    refused = [make_customer(email=f"r{i}@refused.example") for i in range(2)]
    seed_source(sqlite_url, [make_customer(), *refused])
    configure(sqlite_url)
    assert invoke("run").exit_code == 0
    newcomers = [make_customer() for _ in range(3)]  # pending, but not for `retry`
    seed_source(sqlite_url, newcomers)
    creates = sandbox.admin.state()["requests"]["creates"]

    again = invoke("retry", "--all-failed")

    assert again.exit_code == 0, again.output
    assert "2 customer(s) will be sent again" in again.output
    assert sandbox.admin.state()["requests"]["creates"] == creates + 2  # the two, no newcomer
    assert not {str(r["id"]) for r in newcomers} & set(ledger_rows(sqlite_url))
    status = json.loads(invoke("status", "--json").output)
    assert status["company_id"] == 1089 and status["counts"] == {"SYNCED": 1, "FAILED": 2}
    assert sorted(f["customer_id"] for f in status["latest_failures"]) == sorted(
        str(r["id"]) for r in refused
    )
    assert all("refused.example" in f["last_error"] for f in status["latest_failures"])


@pytest.mark.usefixtures("prefect_server", "logs_to_api")
def test_a_cli_run_s_logs_are_in_the_prefect_api_when_the_command_returns(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowFilter, FlowFilterName, LogFilter
    from prefect.client.schemas.sorting import FlowRunSort

    seed_source(sqlite_url, [make_customer() for _ in range(2)])
    configure(sqlite_url)

    assert invoke("run").exit_code == 0

    with get_client(sync_client=True) as client:  # read at once: no waiting for a batch
        [flow_run] = client.read_flow_runs(
            flow_filter=FlowFilter(name=FlowFilterName(any_=["sync-customers"])),
            sort=FlowRunSort.START_TIME_DESC,
            limit=1,
        )
        found = client.read_logs(LogFilter(flow_run_id={"any_": [flow_run.id]}), limit=200)
    logs = [log.message for log in found]
    assert any("company 1089: picked 2, synced 2" in m for m in logs), logs
    assert logs[-1] == "Finished in state Completed()", logs  # the run's very last line


def test_demo_refuses_a_folder_it_did_not_make_and_reuses_its_own(tmp_path: Path) -> None:
    from rootfi_sync.cli.demo import prepare_folder

    theirs = tmp_path / "theirs"
    theirs.mkdir()
    (theirs / "notes.txt").write_text("keep me")
    (theirs / "demo.db").write_text("not ours either: it sits next to notes.txt")
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "demo.db").write_text("an earlier demo's")

    refused = invoke("demo", "--folder", str(theirs))

    assert refused.exit_code == 2 and "did not write (notes.txt)" in refused.output
    assert sorted(p.name for p in theirs.iterdir()) == ["demo.db", "notes.txt"]
    assert invoke("demo", "--folder", str(theirs / "notes.txt")).exit_code == 2
    assert prepare_folder(ours) == ours and list(ours.iterdir()) == []
    assert prepare_folder(tmp_path / "new" / "demo").is_dir()


def test_the_demo_runs_on_settings_it_builds_and_leaves_the_environment_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ROOTFI_API_KEY", raising=False)
    # The user's own settings: none of them reaches the demo.
    monkeypatch.setenv("ROOTFI_COMPANY_ID", "77")
    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{tmp_path / 'their-ledger.db'}")
    monkeypatch.setenv("SOURCE_TABLE", "crm.clients")
    monkeypatch.setenv("ROOTFI_WRITE_MODE", "batch")
    before = dict(os.environ)

    result = invoke("demo", "--count", "12", "--folder", str(tmp_path / "demo"))

    assert result.exit_code == 0, result.output
    assert "the first run synced 11, the second sent 0" in " ".join(result.output.split())
    assert dict(os.environ) == before
    assert not (tmp_path / "their-ledger.db").exists()


def test_seed_and_demo_name_the_extra_on_an_install_without_the_sandbox(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "rootfi_sandbox", None)  # as on a worker: not installed

    for command in (["seed", "--count", "1"], ["demo"]):
        result = invoke(*command)

        assert result.exit_code == 2, result.output
        assert "pip install 'rootfi-sync[sandbox]'" in " ".join(result.output.split())


@pytest.mark.usefixtures("prefect_server")
def test_reasons_are_printed_as_they_are_never_read_as_markup(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer(email="not-an-email")]  # its reason ends "[email.invalid]"
    seed_source(sqlite_url, rows)
    configure(sqlite_url)

    ran = invoke("run")
    status = invoke("status")

    assert ran.exit_code == 0 and status.exit_code == 0, ran.output + status.output
    assert "[email.invalid]" in ran.output  # the run's "not synced" table
    assert "[email.invalid]" in status.output  # the ledger's "latest failures"
