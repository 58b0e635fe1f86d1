"""Shared test set-up: an isolated Prefect home, PostgreSQL, MariaDB, factories of real parts,
and the tiers.

Tiers, by folder: each test is marked with its folder's name (`unit`, `sandbox`,
`integration`, `e2e`), so `-m` picks a tier. The fast tier (`make test-fast`, `-m "unit or
sandbox"`) starts no server: no PostgreSQL, no MariaDB, no Prefect server, not even Prefect's
test harness or a temporary server (a flow is tested there through `.fn` or the plain
library; `make test-fast` turns the temporary server off, so a test that reaches for one
fails at once). A test of those folders that asks for a server fixture is refused when the
suite is collected.

Under pytest-xdist (`make test`) every worker is a process of its own and imports this file
itself: its own PREFECT_HOME, its own environment, and its own PostgreSQL, MariaDB and Prefect
test server (session fixtures, free ports, private directories). The e2e tests that use
the e2e package's real `prefect server` run on one worker (`pytest_xdist_make_scheduler`
below), so it starts once.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import pytest

# Before anything imports prefect: keep its records (and cached results) out of ~/.prefect.
os.environ["PREFECT_HOME"] = tempfile.mkdtemp(prefix="rootfi-sync-tests-prefect-")
os.environ["PREFECT_SERVER_ANALYTICS_ENABLED"] = "false"
os.environ.pop("PREFECT_API_URL", None)
for name in list(os.environ):
    if name.startswith(("ROOTFI_", "SOURCE_")):
        del os.environ[name]

# A developer's `.env` in the working directory must not leak into the tests' settings.
# (Processes the tests start run elsewhere: see tests/integration/helpers.py.)
from rootfi_sync.settings import Settings  # noqa: E402

Settings.model_config["env_file"] = None

pytest_plugins = ["tests.postgres", "tests.mariadb"]

TESTS = Path(__file__).resolve().parent
TIERS = ("unit", "sandbox", "integration", "e2e")
FAST = ("unit", "sandbox")
SERVERS = frozenset({"postgresql_server", "pg_url", "mariadb_server", "mysql_url", "server"})
# The longest tests outside the e2e package's (about 20 s to 70 s each on 2 cores), longest
# first: collected first, so under xdist they start while the e2e tests run on the other
# worker, and the run does not end on one of them alone (pytest_collection_modifyitems).
FIRST = (
    "tests/integration/test_exactly_once_in_the_field.py::test_a_run_that_outlasts_its_lease",
    "tests/integration/test_server_databases.py::test_two_runs_started_together",
    "tests/integration/test_rate_limit.py::test_two_runs_together",
    "tests/e2e/test_demo.py::",
    "tests/integration/test_exactly_once.py::test_a_run_killed_midway",
    "tests/integration/test_exactly_once.py::test_every_customer_lands_once",
    "tests/integration/test_schemas.py::test_syncs_from_a_view",
    "tests/integration/test_cli.py::test_the_demo_runs_on_settings",
    "tests/integration/test_proof_of_creation.py::test_a_sync_that_answers_404",
    "tests/integration/test_source_keys.py::test_syncs_every_customer_once_whatever",
)
# Modules that go whole to one xdist worker of their own choosing: the e2e modules that do not
# use the e2e package's Prefect server (`server`, `deployed`: they need not wait for the worker
# that runs the others), and test_task_runs (its task-recording Prefect server starts once).
WHOLE = frozenset(
    {
        "tests/e2e/test_demo.py",
        "tests/e2e/test_packaging.py",
        "tests/integration/test_task_runs.py",
    }
)


def tier_of(item: pytest.Item) -> str | None:
    """The tier of a test: the first folder of its path under tests/ (None outside them)."""
    try:
        folder = item.path.resolve().relative_to(TESTS).parts[0]
    except ValueError:
        return None
    return folder if folder in TIERS else None


def pytest_itemcollected(item: pytest.Item) -> None:
    """Mark a test with its tier."""
    tier = tier_of(item)
    if tier is not None:
        item.add_marker(tier)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """Under `-n N` (xdist's `load`): every test goes to whichever worker is free, but the
    e2e tier goes whole to one worker, so its package's real Prefect server starts once (the
    e2e modules that do not use it each go whole to any worker: one built wheel), and each
    sandbox module goes whole to one worker (its module-scoped sandbox, and the SDK's one
    conformance run, happen once), as does test_task_runs (its task-recording server).
    Scopes of one test go in collection order, so the longest (FIRST) start first.
    (`--dist loadgroup` with xdist_group marks would say the same, but pytest 9.2 ignores
    the node ids xdist rewrites for it: pytest-xdist issue 1386.)"""
    if config.getvalue("dist") != "load":
        return None
    from xdist.scheduler import LoadScopeScheduling

    class E2EOnOneWorker(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            module = nodeid.split("::")[0]
            if module in WHOLE or nodeid.startswith("tests/sandbox/"):
                return module  # one worker per module: its own server or sandbox starts once
            return "tests/e2e" if nodeid.startswith("tests/e2e/") else nodeid

    return E2EOnOneWorker(config, log)


def first_rank(item: pytest.Item) -> int:
    """Where a test stands in FIRST (len(FIRST): not there)."""
    for rank, prefix in enumerate(FIRST):
        if item.nodeid.startswith(prefix):
            return rank
    return len(FIRST)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Refuse a fast-tier test (tests/unit, tests/sandbox) that needs a server; put the
    longest tests (FIRST) first, the others in their order."""
    items.sort(key=first_rank)
    refused = []
    for item in items:
        names = set(getattr(item, "fixturenames", ())) & SERVERS
        if tier_of(item) in FAST and names:
            refused.append(f"{item.nodeid} uses {', '.join(sorted(names))}")
    if refused:
        raise pytest.UsageError(
            "tests/unit and tests/sandbox start no server (the fast tier); move these tests "
            "to tests/integration:\n  " + "\n  ".join(refused)
        )
