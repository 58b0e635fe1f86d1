"""Helpers shared by the sandbox's tests: a client of its /v3 API, records, creates, waits."""

from __future__ import annotations

import time
from typing import Any

import httpx
from rootfi_sandbox import SandboxServer

KEY = "sandbox-key"
COMPANY = 1089
CUSTOMERS = "/ecommerce/customers"


def api_client(server: SandboxServer, **headers: str) -> httpx.Client:
    """A client of the sandbox's /v3 API (plain HTTP: no TLS context to build)."""
    return httpx.Client(
        base_url=server.api_url, headers={"api_key": KEY, **headers}, timeout=10, verify=False
    )


def customer(n: int = 1, **fields: Any) -> dict[str, Any]:
    return {"name": f"Customer {n}", "email": f"c{n}@example.com", **fields}


def create(
    client: httpx.Client,
    *records: dict[str, Any],
    run_async: bool = False,
    company_id: int = COMPANY,
) -> httpx.Response:
    body = {"company_id": company_id, "data": list(records), "run_async": run_async}
    return client.post(CUSTOMERS, json=body)


def wait_for_sync(client: httpx.Client, sync_id: str, timeout: float = 5.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        sync: dict[str, Any] = client.get(f"/core/syncs/{sync_id}").json()["data"]
        if sync["status"] in ("SUCCESS", "FAILED"):
            return sync
        time.sleep(0.02)
    raise AssertionError(f"sync {sync_id} did not finish")


def assert_error(response: httpx.Response, status: int, code: str, field: str) -> None:
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field)
    assert isinstance(error["message"], str) and error["message"]
