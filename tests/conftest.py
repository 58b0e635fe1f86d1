"""Shared test set-up: an isolated Prefect home, PostgreSQL, MariaDB, factories of real parts."""

from __future__ import annotations

import os
import tempfile

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
