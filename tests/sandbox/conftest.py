"""What the sandbox's test modules share: a fresh sandbox (each module starts its own
`sandbox_server`, with the companies and timings it needs) and a client of its API."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from rootfi_sandbox import SandboxServer

from tests.sandbox.helpers import api_client


@pytest.fixture
def client(sandbox_server: SandboxServer) -> Iterator[httpx.Client]:
    """A client of the module's sandbox, emptied first."""
    sandbox_server.admin.reset()
    with api_client(sandbox_server) as http:
        yield http
