"""What the e2e tests share: the key, company and pool, the deployments made, a worker's env.

(A module of its own, not conftest.py: pytest imports conftest under another name, and a
second import would draw a second random key.)
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from prefect.client.schemas.responses import DeploymentResponse
from rootfi_sandbox import SandboxServer

from tests.e2e.prefect_server import Finished, PrefectServer

API_KEY = f"sk-e2e-{uuid.uuid4().hex}"  # unknown to any .env: a sync proves the block was read
COMPANY = 1089
POOL = "rootfi-sync"
BRANCH = "e2e"


@dataclass(frozen=True)
class Deployed:
    setup_lines: list[str]
    deploy: Finished
    origin: Path  # the repository the deployments clone (file://)
    clone: Path  # where `prefect deploy` ran
    scheduled: DeploymentResponse
    manual: DeploymentResponse

    @staticmethod
    def env_for(server: PrefectServer, origin: Path) -> dict[str, str]:
        """`prefect deploy`'s environment: the repository and branch the runs clone."""
        return server.env(ROOTFI_SYNC_REPOSITORY=f"file://{origin}", ROOTFI_SYNC_BRANCH=BRANCH)

    def deploy_env(self, server: PrefectServer) -> dict[str, str]:
        return self.env_for(server, self.origin)


def worker_env(server: PrefectServer, sandbox: SandboxServer, source_url: str) -> dict[str, str]:
    """A worker's settings: the source and RootFi, but no key (the Secret block has it)."""
    env = server.env(
        SOURCE_DATABASE_URL=source_url,
        ROOTFI_BASE_URL=sandbox.api_url,
        ROOTFI_COMPANY_ID=str(COMPANY),
        ROOTFI_RATE_LIMIT_PER_MINUTE="0",
    )
    assert "ROOTFI_API_KEY" not in env
    return env
