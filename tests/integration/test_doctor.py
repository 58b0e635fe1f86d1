"""`rootfi-sync doctor` against real parts: a SQLite file, the sandbox, Prefect's test server.

Each broken setup is made for real (a table that is not there, a ledger one migration
behind, a key RootFi refuses, a pool never created...) and must be the one check that fails,
with the fix it names; a healthy setup passes every check and nothing is sent or written,
also with a source of another kind (a SQLite `file:` URI, a DuckDB file with the ledger apart).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from prefect.client.orchestration import get_client
from prefect.client.schemas.actions import GlobalConcurrencyLimitUpdate
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import SecretStr
from rootfi_sandbox import SandboxServer
from typer.testing import CliRunner

from rootfi_sync.cli.commands import app
from rootfi_sync.cli.doctor import ORDER
from rootfi_sync.ledger.db import make_engine
from rootfi_sync.ledger.tables import source_table
from rootfi_sync.orchestration.prefect_setup import SECRET_BLOCK, setup_prefect
from rootfi_sync.rootfi.governor import pacing
from rootfi_sync.settings import SOURCE_COLUMNS
from tests.factories import make_customer
from tests.integration.conftest import API_KEY, COMPANY
from tests.integration.helpers import seed_source

pytestmark = pytest.mark.usefixtures("prefect_server")


@dataclass(frozen=True)
class Setup:
    pool: str
    limit: str
    url: str
    folder: Path
    sandbox: SandboxServer


@pytest.fixture
def healthy(
    tmp_path: Path, sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> Iterator[Setup]:
    """Everything a run needs, as `init-db` and `setup` leave it; undone afterwards."""
    seed_source(sqlite_url, [make_customer() for _ in range(3)])
    suffix = uuid.uuid4().hex[:8]
    pool, limit = f"rootfi-sync-{suffix}", f"rootfi-api-{suffix}"
    configure(sqlite_url, rootfi_rate_limit_per_minute=600, rootfi_rate_limit_name=limit)
    setup_prefect(
        work_pool=pool, api_key=SecretStr(API_KEY), rate_limit_per_minute=600, rate_limit_name=limit
    )
    yield Setup(pool, limit, sqlite_url, tmp_path, sandbox)
    _delete_secret_block()
    with get_client(sync_client=True) as client:
        client.delete_global_concurrency_limit_by_name(limit)
        if any(p.name == pool for p in client.read_work_pools()):
            client.delete_work_pool(pool)


def _delete_secret_block() -> None:
    from prefect.exceptions import ObjectNotFound

    with get_client(sync_client=True) as client:
        try:
            doc = client.read_block_document_by_name(SECRET_BLOCK, "secret")
        except ObjectNotFound:
            return
        client.delete_block_document(doc.id)


def doctor(setup: Setup, *args: str) -> tuple[int, dict[str, Any]]:
    """Run `rootfi-sync doctor --json`; its exit code and its checks by name."""
    result = CliRunner().invoke(app, ["doctor", "--json", "--work-pool", setup.pool, *args])
    assert API_KEY not in result.output
    body = json.loads(result.output)
    assert body["ok"] == (result.exit_code == 0)
    return result.exit_code, {c["name"]: c for c in body["checks"]}


def failing(checks: dict[str, Any]) -> dict[str, str]:
    """The failed checks: name -> "detail | fix"."""
    return {n: f"{c['detail']} | {c['fix']}" for n, c in checks.items() if c["status"] == "fail"}


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {p.name: (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.iterdir()}


def test_a_healthy_setup_passes_every_check_and_nothing_is_sent_or_written(
    healthy: Setup,
) -> None:
    before = snapshot(healthy.folder)

    code, checks = doctor(healthy)

    assert code == 0, failing(checks)
    assert tuple(checks) == ORDER
    assert {c["status"] for c in checks.values()} == {"ok"}
    assert "from Secret block rootfi-api-key" in checks["rootfi key"]["detail"]
    assert healthy.sandbox.admin.state()["requests"]["creates"] == 0
    assert snapshot(healthy.folder) == before  # not even a -wal or -shm file


def _table_missing(s: Setup, env: pytest.MonkeyPatch) -> None:
    env.setenv("SOURCE_TABLE", "clients")


def _column_missing(s: Setup, env: pytest.MonkeyPatch) -> None:
    env.setenv("SOURCE_COLUMNS", '{"email": "mail"}')


def _ledger_behind(s: Setup, env: pytest.MonkeyPatch) -> None:
    from alembic import command
    from alembic.config import Config

    from rootfi_sync.ledger.db import MIGRATIONS

    url = f"sqlite:///{s.folder / 'behind.db'}"
    engine = make_engine(url)
    source_table().metadata.create_all(engine)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0001")
    engine.dispose()
    env.setenv("SOURCE_DATABASE_URL", url)


def _ledger_missing(s: Setup, env: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{s.folder / 'bare.db'}"
    engine = make_engine(url)
    source_table().metadata.create_all(engine)
    engine.dispose()
    env.setenv("SOURCE_DATABASE_URL", url)


def _key_refused(s: Setup, env: pytest.MonkeyPatch) -> None:
    from prefect.blocks.system import Secret

    Secret(value=SecretStr("sk-not-the-key")).save(SECRET_BLOCK, overwrite=True)


def _company_unknown(s: Setup, env: pytest.MonkeyPatch) -> None:
    env.setenv("ROOTFI_COMPANY_ID", "999")


def _no_pool(s: Setup, env: pytest.MonkeyPatch) -> None:
    with get_client(sync_client=True) as client:
        client.delete_work_pool(s.pool)


def _no_block(s: Setup, env: pytest.MonkeyPatch) -> None:
    _delete_secret_block()


def _limit_inactive(s: Setup, env: pytest.MonkeyPatch) -> None:
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(s.limit, GlobalConcurrencyLimitUpdate(active=False))


def _pool_paused(s: Setup, env: pytest.MonkeyPatch) -> None:
    from prefect.client.schemas.actions import WorkPoolUpdate

    with get_client(sync_client=True) as client:
        client.update_work_pool(s.pool, WorkPoolUpdate(is_paused=True))


def _limit_wrong_budget(s: Setup, env: pytest.MonkeyPatch) -> None:
    burst, decay = pacing(100)  # what `setup --rate-limit 100` left; the settings say 600
    update = GlobalConcurrencyLimitUpdate(limit=burst, slot_decay_per_second=decay, active=True)
    with get_client(sync_client=True) as client:
        client.update_global_concurrency_limit(s.limit, update)


def _company_column_missing(s: Setup, env: pytest.MonkeyPatch) -> None:
    env.setenv("SOURCE_COMPANY_COLUMN", "tenant_id")


def _bad_setting(s: Setup, env: pytest.MonkeyPatch) -> None:
    env.setenv("ROOTFI_BATCH_SIZE", "0")


def _no_database_file(s: Setup, env: pytest.MonkeyPatch) -> None:
    env.setenv("SOURCE_DATABASE_URL", f"sqlite:///{s.folder / 'missing.db'}")


BROKEN: list[tuple[Callable[[Setup, pytest.MonkeyPatch], None], str, str, str]] = [
    # how it is broken, the one check that fails, words of its detail, words of its fix
    (_bad_setting, "settings", "ROOTFI_BATCH_SIZE", "correct the variables"),
    (_no_database_file, "source table", "no SQLite file", "SOURCE_DATABASE_URL"),
    (_table_missing, "source table", "no table or view 'clients'", "set SOURCE_TABLE"),
    (_column_missing, "source columns", "no column mail (for email)", 'SOURCE_COLUMNS=\'{"email"'),
    (_company_column_missing, "source columns", "no column tenant_id", "SOURCE_COMPANY_COLUMN"),
    (_ledger_missing, "ledger", "no ledger table rootfi_customer_sync", "rootfi-sync init-db"),
    (_ledger_behind, "ledger", "at migration 0001; the code needs 0003", "rootfi-sync init-db"),
    (_key_refused, "rootfi key", "refused the key from Secret block", "rootfi-sync setup"),
    (_company_unknown, "rootfi company", "company 999 is not among the 1", "ROOTFI_COMPANY_ID"),
    (_no_pool, "work pool", "no work pool rootfi-sync-", "rootfi-sync setup --work-pool"),
    (_pool_paused, "work pool", "is paused", "prefect work-pool resume rootfi-sync-"),
    (_no_block, "secret block", "no Secret block rootfi-api-key", "rootfi-sync setup"),
    (_limit_inactive, "rate limit", "is inactive", "rootfi-sync setup --rate-limit 600"),
    (_limit_wrong_budget, "rate limit", "ROOTFI_RATE_LIMIT_PER_MINUTE=600", "--rate-limit 600"),
]


@pytest.mark.parametrize(
    ("breakage", "check", "detail", "fix"), BROKEN, ids=[b[1] + ":" + b[0].__name__ for b in BROKEN]
)
def test_a_broken_setup_fails_its_own_check_naming_the_fix(
    healthy: Setup,
    monkeypatch: pytest.MonkeyPatch,
    breakage: Callable[[Setup, pytest.MonkeyPatch], None],
    check: str,
    detail: str,
    fix: str,
) -> None:
    breakage(healthy, monkeypatch)
    before = snapshot(healthy.folder)

    code, checks = doctor(healthy)

    assert code == 1
    assert list(failing(checks)) == [check], failing(checks)
    assert detail in checks[check]["detail"] and fix in checks[check]["fix"], checks[check]
    assert snapshot(healthy.folder) == before
    assert healthy.sandbox.admin.state()["requests"]["creates"] == 0


def test_without_a_prefect_api_the_prefect_checks_fail_or_are_skipped(healthy: Setup) -> None:
    with temporary_settings({PREFECT_API_URL: "http://127.0.0.1:9/api"}):
        code, checks = doctor(healthy)

    assert code == 1
    assert list(failing(checks)) == ["prefect api"]
    assert "does not answer" in checks["prefect api"]["detail"]
    assert "prefect server start" in checks["prefect api"]["fix"]
    assert [checks[n]["status"] for n in ("work pool", "secret block", "rate limit")] == [
        "skip"
    ] * 3
    assert "from ROOTFI_API_KEY" in checks["rootfi key"]["detail"]  # no block to read it from


def test_without_prefect_api_url_runs_use_a_temporary_server_a_warning_not_a_failure(
    healthy: Setup,
) -> None:
    with temporary_settings(restore_defaults={PREFECT_API_URL}):
        code, checks = doctor(healthy)
        text = CliRunner().invoke(app, ["doctor", "--work-pool", healthy.pool])

    assert code == 0, failing(checks)
    assert checks["prefect api"]["status"] == "warn"
    detail = checks["prefect api"]["detail"]
    assert "PREFECT_API_URL is not set" in detail and "temporary server" in detail
    assert "deployments, schedules and the shared rate limit" in detail
    assert "export PREFECT_API_URL=" in checks["prefect api"]["fix"]
    for name in ("work pool", "secret block", "rate limit"):
        assert checks[name]["status"] == "skip", checks[name]
        assert "temporary server" in checks[name]["detail"]
    assert "from ROOTFI_API_KEY" in checks["rootfi key"]["detail"]  # what a run would use
    assert text.exit_code == 0
    lines = text.output.splitlines()
    assert any(line.startswith("WARN prefect api: PREFECT_API_URL is not set") for line in lines)
    assert lines[-1] == "no check failed; 1 warning"


def test_doctor_prints_one_line_per_check(healthy: Setup, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROOTFI_COMPANY_ID", "999")

    result = CliRunner().invoke(app, ["doctor", "--work-pool", healthy.pool])

    lines = result.output.splitlines()
    assert result.exit_code == 1 and len(lines) == len(ORDER) + 1
    assert lines[5].startswith("FAIL rootfi company: company 999 is not among")
    assert "-> fix: set ROOTFI_COMPANY_ID to one of them" in lines[5]
    assert lines[0] == "OK   settings: loaded (environment and .env)"
    assert lines[-1] == "1 of 10 checks failed"


def test_the_ledger_is_checked_where_ledger_database_url_puts_it(
    healthy: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    from rootfi_sync.ledger.db import init_db
    from rootfi_sync.settings import load_settings

    monkeypatch.setenv("LEDGER_DATABASE_URL", f"sqlite:///{healthy.folder / 'ledger.db'}")

    _, before = doctor(healthy)
    init_db(load_settings())  # the ledger, migrated in a database of its own
    code, after = doctor(healthy)

    assert before["ledger"]["status"] == "fail" and "ledger.db" in before["ledger"]["detail"]
    assert "LEDGER_DATABASE_URL" in before["ledger"]["fix"]
    assert code == 0, failing(after)
    assert "ledger.db" in after["ledger"]["detail"]


TEXT = set(SOURCE_COLUMNS[1:-2])  # all but the key and the two timestamps


@contextmanager
def _sqlite_uri_source(s: Setup, env: pytest.MonkeyPatch) -> Iterator[None]:
    """The source (and the ledger with it) as a read-only SQLite URI."""
    path = sa.make_url(s.url).database
    env.setenv("SOURCE_DATABASE_URL", f"sqlite:///file:{path}?mode=ro&uri=true")
    yield


@contextmanager
def _duckdb_source(s: Setup, env: pytest.MonkeyPatch) -> Iterator[None]:
    """A DuckDB source with the ledger in SQLite, read (as runs read it) while doctor runs."""
    from rootfi_sync.ledger.db import init_db
    from rootfi_sync.settings import load_settings

    pytest.importorskip("duckdb_engine")
    path = s.folder / "warehouse.duckdb"
    table = source_table("customers", {"email": "mail"}, schema="crm")
    text = ", ".join(f"{c.name} VARCHAR" for c in table.columns if c.key in TEXT)
    writer = sa.create_engine(f"duckdb:///{path}")
    with writer.begin() as conn:
        conn.execute(sa.text("CREATE SCHEMA crm"))
        conn.execute(
            sa.text(
                f"CREATE TABLE crm.customers (id BIGINT PRIMARY KEY, {text}, "
                "created_at TIMESTAMP, updated_at TIMESTAMP)"
            )
        )
        conn.execute(table.insert(), [make_customer() for _ in range(3)])
    writer.dispose()
    env.setenv("SOURCE_DATABASE_URL", f"duckdb:///{path}")
    env.setenv("LEDGER_DATABASE_URL", f"sqlite:///{s.folder / 'ledger.db'}")
    env.setenv("SOURCE_TABLE", "crm.customers")
    env.setenv("SOURCE_COLUMNS", '{"email": "mail"}')
    init_db(load_settings())  # the ledger, in a database of its own
    reader = make_engine(f"duckdb:///{path}")  # read-only, as a run opens it
    try:
        with reader.connect():
            yield
    finally:
        reader.dispose()


WORKING: list[Callable[[Setup, pytest.MonkeyPatch], AbstractContextManager[None]]] = [
    _sqlite_uri_source,
    _duckdb_source,
]


@pytest.mark.parametrize("variant", WORKING, ids=[w.__name__.strip("_") for w in WORKING])
def test_a_healthy_setup_of_another_kind_passes_every_check(
    healthy: Setup,
    monkeypatch: pytest.MonkeyPatch,
    variant: Callable[[Setup, pytest.MonkeyPatch], AbstractContextManager[None]],
) -> None:
    with variant(healthy, monkeypatch):
        before = snapshot(healthy.folder)

        code, checks = doctor(healthy)

        assert code == 0, failing(checks)
        assert {c["status"] for c in checks.values()} == {"ok"}
        assert snapshot(healthy.folder) == before


def fan_out_source(s: Setup, env: pytest.MonkeyPatch, *companies: int) -> None:
    """A source of many companies (SOURCE_COMPANY_COLUMN, no ROOTFI_COMPANY_ID): a new
    customer of each of `companies`."""
    url = f"sqlite:///{s.folder / 'companies.db'}"
    rows = [make_customer() | {"company_id": company} for company in companies]
    seed_source(url, rows, source_company_column="tenant")
    env.setenv("SOURCE_DATABASE_URL", url)
    env.setenv("SOURCE_COMPANY_COLUMN", "tenant")
    env.delenv("ROOTFI_COMPANY_ID")


def test_with_a_company_column_the_companies_with_work_due_are_the_ones_checked(
    healthy: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    fan_out_source(healthy, monkeypatch, COMPANY)

    code, checks = doctor(healthy)

    assert code == 0, failing(checks)
    assert checks["rootfi company"]["status"] == "ok"
    assert "the 1 company with work due" in checks["rootfi company"]["detail"]


def test_with_a_company_column_a_company_with_work_due_the_key_does_not_reach_fails(
    healthy: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    fan_out_source(healthy, monkeypatch, COMPANY, 999)
    before = snapshot(healthy.folder)

    code, checks = doctor(healthy)

    assert code == 1
    assert list(failing(checks)) == ["rootfi company"], failing(checks)
    assert "999" in checks["rootfi company"]["detail"]
    assert str(COMPANY) not in checks["rootfi company"]["detail"].split("reaches")[0]
    assert snapshot(healthy.folder) == before  # read-only: the due query wrote nothing


def test_with_a_company_column_and_nothing_due_the_company_check_is_skipped(
    healthy: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    fan_out_source(healthy, monkeypatch)

    code, checks = doctor(healthy)

    assert code == 0, failing(checks)
    assert checks["rootfi company"]["status"] == "skip"
    assert "no company has work due" in checks["rootfi company"]["detail"]
