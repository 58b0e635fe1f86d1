"""`SandboxAdmin`: a tiny synchronous client for the sandbox's `/_sandbox/` admin API."""

from __future__ import annotations

from typing import Any, Self

import httpx


def local_client(url: str, timeout: float = 10.0) -> httpx.Client:
    """An httpx client for a plain-HTTP local sandbox: no proxies from the environment, and
    no TLS context (building one loads the CA bundle, which costs tens of milliseconds)."""
    return httpx.Client(base_url=url, timeout=timeout, trust_env=False, verify=False)


class SandboxAdmin:
    """Calls `/_sandbox/...` on one sandbox; every method raises on a non-2xx answer.

    Keeps one connection pool; `close()` it (SandboxServer does so when it stops).
    """

    def __init__(self, url: str, timeout: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._client = local_client(self.url, timeout)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._client.request(method, f"/_sandbox/{path}", **kwargs)
        response.raise_for_status()
        return response.json()

    def state(self) -> dict[str, Any]:
        """Counts: customers, customers_by_company, requests, faults, syncs."""
        result: dict[str, Any] = self._call("GET", "state")
        return result

    def customers(self, company_id: int | None = None) -> list[dict[str, Any]]:
        """Every stored customer record (of one company if given)."""
        params = {} if company_id is None else {"company_id": company_id}
        result: list[dict[str, Any]] = self._call("GET", "customers", params=params)["data"]
        return result

    def set_faults(self, **changes: Any) -> dict[str, Any]:
        """Change some Faults fields (re-seeds both dice); returns the running faults."""
        result: dict[str, Any] = self._call("PUT", "faults", json=changes)
        return result

    def set_rate_limit(self, per_minute: int | None) -> None:
        """Set or (None) remove the per-minute rate limit."""
        self._call("PUT", "rate-limit", json={"rate_limit_per_minute": per_minute})

    def reset(self) -> dict[str, Any]:
        """Forget everything; back to the configured faults and rate limit."""
        result: dict[str, Any] = self._call("POST", "reset")
        return result

    def close(self) -> None:
        """Close the connection pool."""
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
