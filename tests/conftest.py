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
test server (session fixtures, free ports, private directories). The tests that share the
e2e package's real `prefect server` run on one worker (`xdist_group`), so it starts once.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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
SHARED = {"server": "e2e-prefect-server", "wheel": "e2e-wheel"}  # fixture -> xdist group


def tier_of(item: pytest.Item) -> str | None:
    """The tier of a test: the first folder of its path under tests/ (None outside them)."""
    try:
        folder = item.path.resolve().relative_to(TESTS).parts[0]
    except ValueError:
        return None
    return folder if folder in TIERS else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test with its tier; keep the tests that share an expensive package or module
    fixture on one xdist worker; refuse a fast-tier test that needs a server."""
    refused = []
    for item in items:
        tier = tier_of(item)
        if tier is not None:
            item.add_marker(tier)
        names = set(getattr(item, "fixturenames", ()))
        if tier in FAST and names & SERVERS:
            refused.append(f"{item.nodeid} uses {', '.join(sorted(names & SERVERS))}")
        group = next((SHARED[name] for name in SHARED if name in names), None)
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
    if refused:
        raise pytest.UsageError(
            "tests/unit and tests/sandbox start no server (the fast tier); move these tests "
            "to tests/integration:\n  " + "\n  ".join(refused)
        )
