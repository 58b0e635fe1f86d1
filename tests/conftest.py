"""Shared test set-up: an isolated Prefect home, PostgreSQL, and factories of real parts."""

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

pytest_plugins = ["tests.postgres"]
