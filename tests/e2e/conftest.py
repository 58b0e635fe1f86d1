"""One real `prefect server start` for every e2e module, with the deployments on it.

The deployments are made as the docs make them, by someone who is not in this repository:
`rootfi-sync setup`, then `prefect deploy --all` run in a fresh clone, with the git_clone pull
step pointed at a snapshot of the working tree (a local git repository). Workers start in
yet another folder, so every run proves the code came from a clone.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL, temporary_settings
from pydantic import SecretStr
from rootfi_sandbox import SandboxServer

from rootfi_sync.orchestration.prefect_setup import setup_prefect
from tests.e2e.deployment import API_KEY, BRANCH, COMPANY, POOL, Deployed
from tests.e2e.prefect_server import (
    PREFECT,
    PrefectServer,
    prefect_server,
    run,
    snapshot_repository,
)
from tests.factories import sandbox_for
from tests.servers import migrated_prefect_database


@pytest.fixture(scope="package")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrefectServer]:
    """A real `prefect server start` (SQLite, own PREFECT_HOME) for the e2e tests."""
    home = tmp_path_factory.mktemp("prefect-server") / "home"
    home.mkdir()
    migrated_prefect_database(tmp_path_factory, home / "prefect.db")  # its default database
    with prefect_server(home) as started, temporary_settings({PREFECT_API_URL: started.api_url}):
        yield started


@pytest.fixture(scope="package")
def deployed(server: PrefectServer, tmp_path_factory: pytest.TempPathFactory) -> Deployed:
    """`setup_prefect`, then `prefect --no-prompt deploy --all` from a fresh clone."""
    origin = snapshot_repository(tmp_path_factory.mktemp("origin"), BRANCH)
    clone = tmp_path_factory.mktemp("deployer") / "rootfi-sync"
    subprocess.run(["git", "clone", "-q", f"file://{origin}", str(clone)], check=True)
    lines = setup_prefect(work_pool=POOL, api_key=SecretStr(API_KEY), rate_limit_per_minute=100)
    env = Deployed.env_for(server, origin)
    result = run([PREFECT, "--no-prompt", "deploy", "--all"], env, cwd=clone, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    with get_client(sync_client=True) as client:
        scheduled = client.read_deployment_by_name("sync-customers/scheduled-sync")
        manual = client.read_deployment_by_name("sync-customers/manual-sync")
        # No scheduled run may land on the workers these tests start (all-companies' schedule
        # is deployed off: test_the_fan_out_is_deployed_with_its_schedule_off...).
        client.pause_deployment(scheduled.id)
    return Deployed(lines, result, origin, clone, scheduled, manual)


@pytest.fixture
def sandbox() -> Iterator[SandboxServer]:
    with sandbox_for(API_KEY, COMPANY) as started:
        yield started


@pytest.fixture
def source_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'source.db'}"


@pytest.fixture
def worker_home(tmp_path: Path) -> Path:
    """Where workers start: neither the repository nor the clone deployed from."""
    home = tmp_path / "worker"
    home.mkdir()
    return home
