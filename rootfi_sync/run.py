"""The real parts of one run, built at the edge: engines, ledger, leases, client, pool."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from pydantic import SecretStr

from rootfi_sync.client import RootFiClient
from rootfi_sync.db import ledger_engine, source_engine, source_for
from rootfi_sync.decisions import Timing
from rootfi_sync.governor import Logger, SharedRateLimit, make_governor
from rootfi_sync.lease import LeaseKeeper
from rootfi_sync.ledger import Ledger
from rootfi_sync.settings import Settings


@dataclass(frozen=True, slots=True)
class RunParts:
    ledger: Ledger
    client: RootFiClient
    pool: ThreadPoolExecutor  # the run's requests in flight: at most ROOTFI_CONCURRENCY
    leases: LeaseKeeper


def timing_of(settings: Settings) -> Timing:
    """Return the settle and lookup timings the settings ask for."""
    return Timing(
        sync_settle=settings.rootfi_sync_settle_seconds,
        async_settle=settings.rootfi_async_settle_seconds,
        sync_poll=settings.rootfi_sync_poll_seconds,
        skew=timedelta(seconds=settings.rootfi_reconcile_skew_seconds),
    )


def run_logger() -> Logger:
    """Return the flow run's logger (its lines reach the UI from any thread), else ours."""
    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("rootfi_sync")


@contextmanager
def open_run(
    settings: Settings, company_id: int, api_key: SecretStr, owner: str
) -> Iterator[RunParts]:
    """Yield the run's ledger, lease keeper, client and pool; close them all afterwards."""
    engine = ledger_engine(settings)
    # The source's own engine only when the ledger is elsewhere: the source is then only read.
    reader = source_engine(settings) if settings.ledger_apart else None
    source = source_for(settings)
    governor = make_governor(
        settings.rootfi_rate_limit_per_minute,
        settings.rootfi_rate_limit_name,
        max_wait=settings.rootfi_rate_limit_wait_seconds,
        logger=run_logger(),
    )
    client = RootFiClient(
        settings.rootfi_base_url,
        api_key,
        timeout=settings.rootfi_timeout_seconds,
        governor=governor,
        max_connections=max(4, settings.rootfi_concurrency * 2),
    )
    pool = ThreadPoolExecutor(settings.rootfi_concurrency, thread_name_prefix="rootfi-send")
    ledger = Ledger(engine, source, company_id, owner, source_engine=reader)
    try:
        with client, pool, LeaseKeeper(ledger, settings.rootfi_lease_seconds) as leases:
            yield RunParts(ledger, client, pool, leases)
    finally:
        if isinstance(governor, SharedRateLimit):
            governor.close()
        engine.dispose()
        if reader is not None:
            reader.dispose()
