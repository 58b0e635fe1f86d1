"""Real parts for integration tests: Prefect's test server, the sandbox, SQLite files."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from rootfi_sandbox import SandboxServer

from tests.factories import sandbox_for
from tests.servers import free_port, migrated_prefect_database

API_KEY = "sk-integration-secret-key"
COMPANY = 1089


def _quiet_server() -> dict[Any, bool]:
    """What the test server need not do: store events, evaluate automations, stream events
    out, take every run's log lines (one test turns them back on: `logs_to_api`), and record
    task runs (the tests that read them run against `task_run_server`). Measured
    on tests/integration/test_sync_flow.py and test_ledger_time.py (SQLite, one process): 76.5 s
    of CPU against 80.5 s for the first three, 71.7 s with the logs too; on test_ledger_time,
    test_exactly_once and test_dirty_rows, 117.8 s against 150.8 s without the task runs.
    The server was the larger part of it. The e2e tests' own server (tests/e2e) keeps
    everything on: alerts fire there."""
    from prefect import settings

    return {
        settings.PREFECT_SERVER_SERVICES_EVENT_PERSISTER_ENABLED: False,
        settings.PREFECT_SERVER_SERVICES_TRIGGERS_ENABLED: False,
        settings.PREFECT_API_EVENTS_STREAM_OUT_ENABLED: False,
        settings.PREFECT_LOGGING_TO_API_ENABLED: False,
        settings.PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED: False,
    }


@pytest.fixture
def logs_to_api() -> Iterator[None]:
    """Run log lines reach the test server again (`_quiet_server` turns them off), in-process."""
    from prefect.settings import PREFECT_LOGGING_TO_API_ENABLED, temporary_settings

    with temporary_settings(updates={PREFECT_LOGGING_TO_API_ENABLED: True}):
        yield


@pytest.fixture(scope="session")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """One Prefect test server (Prefect's test harness, SQLite-backed) for the whole session
    (for each xdist worker), its services that no integration test reads off (`_quiet_server`),
    on a database migrated once for the session (`migrated_prefect_database`: the harness makes
    its database in a fresh `mkdtemp()`, which is handed this one's folder)."""
    from prefect.settings import temporary_settings
    from prefect.testing.utilities import prefect_test_harness

    folder = tmp_path_factory.mktemp("prefect-server")
    migrated_prefect_database(tmp_path_factory, folder / "prefect-test.db")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr("prefect.testing.utilities.mkdtemp", lambda: str(folder))
        with (
            temporary_settings(updates=_quiet_server()),
            prefect_test_harness(server_startup_timeout=180),
        ):
            yield


@pytest.fixture(scope="session")
def task_run_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A second Prefect test server, which records task runs (the session's does not:
    `_quiet_server`), for the tests that read them; its API URL. Flows reach it from a process
    of their own (`start_flow_process`): switching this process's Prefect settings to it and
    back would leave Prefect's background threads on whichever they started with."""
    from prefect.server.api.server import SubprocessASGIServer
    from prefect.settings import (
        PREFECT_SERVER_DATABASE_CONNECTION_URL,
        PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED,
        temporary_settings,
    )

    database = tmp_path_factory.mktemp("task-run-server") / "prefect.db"
    migrated_prefect_database(tmp_path_factory, database)
    server = SubprocessASGIServer(port=free_port())  # as Prefect's test harness starts one
    recording = {
        PREFECT_SERVER_DATABASE_CONNECTION_URL: f"sqlite+aiosqlite:///{database}",
        PREFECT_SERVER_SERVICES_TASK_RUN_RECORDER_ENABLED: True,
    }
    with temporary_settings(updates=recording):
        server.start(timeout=180)
    try:
        yield server.api_url
    finally:
        server.stop()


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    """A fresh sandbox on a free 127.0.0.1 port, knowing our key and company."""
    with sandbox_for(API_KEY, COMPANY) as server:
        yield server


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'source.db'}"


@pytest.fixture
def configure(monkeypatch: pytest.MonkeyPatch, sandbox: SandboxServer) -> Any:
    """Return a function that points the settings at a database and the sandbox."""

    def apply(database_url: str, **settings: Any) -> None:
        env = {
            "SOURCE_DATABASE_URL": database_url,
            "ROOTFI_BASE_URL": sandbox.api_url,
            "ROOTFI_API_KEY": API_KEY,
            "ROOTFI_COMPANY_ID": str(COMPANY),
            "ROOTFI_RATE_LIMIT_PER_MINUTE": "0",
            "ROOTFI_RETRY_DELAY_SECONDS": "0.05",
            "ROOTFI_REQUEUE_DELAY_SECONDS": "0",
            "ROOTFI_RECONCILE_SKEW_SECONDS": "5",
            "ROOTFI_TIMEOUT_SECONDS": "5",
            "ROOTFI_ASYNC_SETTLE_SECONDS": "0",
            "ROOTFI_SYNC_SETTLE_SECONDS": "0",
            "ROOTFI_SYNC_POLL_SECONDS": "0",
        }
        env.update({k.upper(): str(v) for k, v in settings.items()})
        for name, value in env.items():
            monkeypatch.setenv(name, value)

    return apply


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """The source (and ledger) on a SQLite file, then on the suite's PostgreSQL server."""
    if request.param == "sqlite":
        return sqlite_url
    url: str = request.getfixturevalue("pg_url")
    return url
