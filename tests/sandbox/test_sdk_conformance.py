"""RootFi's official SDK as the judge: `sdk/conformance.js` drives the sandbox (on 127.0.0.1)
with npm `rootfi-api` 3.1.8 and checks every answer against the SDK's declared types (no
unknown keys, every required key, closed enums). Needs Node and the SDK installed by
`make sdk` (`npm ci` in `tests/sandbox/sdk`, which `make test` and `make test-fast` run first);
without them the test is skipped, saying what to do."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from rootfi_sandbox import SandboxConfig, SandboxServer

SDK_DIR = Path(__file__).parent / "sdk"
KEY = "sdk-conformance-key"
COMPANIES = (1089, 2002)
CHECKS = [
    "customers.create (one, synchronous)",
    "customers.create (the docs' example)",
    "customers.create (async, run_async)",
    "syncs.get (just written)",
    "syncs.get (ended FAILED)",
    "syncs.getJobs",
    "syncs.getJob",
    "syncs.list (by company)",
    "syncs.list (paged)",
    "customers.list (limit 2)",
    "customers.list (next, page 2)",
    "customers.list (every page, to the end)",
    "customers.list (filters, sort, count)",
    "customers.list (sort by rootfi_created_at)",
    "companies.list",
    "companies.list (paged)",
    "companies.get",
    "error 401 (unknown api_key)",
    "error 404 (unknown sync)",
    "error 404 (unknown company)",
    "error 400 (batch without run_async)",
    "error 400 (platform refusal)",
    "error 500",
    "error 429",
]


def installed_sdk() -> Path:
    """Node, once `make sdk` installed the SDK in `tests/sandbox/sdk`; skips saying what is
    missing otherwise (one installer: the Makefile's, which reinstalls when the lock changes)."""
    node = shutil.which("node")
    if node is None:
        pytest.skip(
            "the official-SDK conformance test needs Node.js 18+ and npm on PATH "
            "(e.g. apt-get install nodejs npm), then `make sdk` installs tests/sandbox/sdk"
        )
    if not (SDK_DIR / "node_modules" / "rootfi-api").is_dir():
        pytest.skip(
            "the official SDK is not installed: run `make sdk` (npm ci in tests/sandbox/sdk)"
        )
    return Path(node)


@pytest.fixture(scope="module")
def sdk_checks() -> dict[str, dict[str, Any]]:
    """Every check's result, from one run of conformance.js against a fresh sandbox."""
    node = installed_sdk()
    config = SandboxConfig(
        api_keys=frozenset({KEY}), company_ids=frozenset(COMPANIES), async_delay_seconds=0.05
    )
    with SandboxServer(config) as server:
        env = {"SANDBOX_URL": server.url, "API_KEY": KEY, "COMPANY_IDS": "1089,2002"}
        ran = subprocess.run(
            [str(node), "conformance.js"],
            cwd=SDK_DIR,
            env={"PATH": str(node.parent), **env},
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    assert ran.returncode == 0, ran.stderr
    results = json.loads(ran.stdout)["checks"]
    return {result["name"]: result for result in results}


def test_the_sdk_run_made_exactly_the_expected_checks(sdk_checks: dict[str, Any]) -> None:
    assert sorted(sdk_checks) == sorted(CHECKS)


@pytest.mark.parametrize("name", CHECKS)
def test_the_official_sdk_accepts_the_answer(sdk_checks: dict[str, Any], name: str) -> None:
    result = sdk_checks.get(name)
    assert result is not None, f"{name} did not run: {sorted(sdk_checks)}"
    assert result["problems"] == []
