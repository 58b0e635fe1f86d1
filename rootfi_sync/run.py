"""The real parts of one run, built at the edge: engine, ledger, governor and client."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from pydantic import SecretStr

from rootfi_sync.client import RootFiClient
from rootfi_sync.db import make_engine, source_for
from rootfi_sync.governor import SharedRateLimit, make_governor
from rootfi_sync.ledger import Ledger
from rootfi_sync.settings import Settings


@dataclass(frozen=True, slots=True)
class RunParts:
    ledger: Ledger
    client: RootFiClient
    pool: ThreadPoolExecutor  # the run's requests in flight: at most ROOTFI_CONCURRENCY


@contextmanager
def open_run(
    settings: Settings, company_id: int, api_key: SecretStr, owner: str
) -> Iterator[RunParts]:
    """Yield the run's ledger and client; close both afterwards."""
    engine = make_engine(settings.source_database_url)
    source = source_for(settings)
    governor = make_governor(settings.rootfi_rate_limit_per_minute, settings.rootfi_rate_limit_name)
    client = RootFiClient(
        settings.rootfi_base_url,
        api_key,
        timeout=settings.rootfi_timeout_seconds,
        governor=governor,
        max_connections=max(4, settings.rootfi_concurrency * 2),
    )
    pool = ThreadPoolExecutor(settings.rootfi_concurrency, thread_name_prefix="rootfi-send")
    try:
        with client, pool:
            yield RunParts(Ledger(engine, source, company_id, owner), client, pool)
    finally:
        if isinstance(governor, SharedRateLimit):
            governor.close()
        engine.dispose()
