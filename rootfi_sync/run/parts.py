"""The real parts of one run, built at the edge: engines, ledger, leases, client, pool.

`open_run` builds them and makes them this context's run; a task reaches them with
`current()`. The run is a ContextVar: Prefect's ThreadPoolTaskRunner starts each task in a
copy of the submitting context (`contextvars.copy_context()` in its `submit`), so a task
sees the run of the flow that submitted it, and two runs in one process (subflows of a fan
out, each in its own thread) never see each other's. Tasks themselves take plain values.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import datetime, timedelta

from pydantic import SecretStr

from rootfi_sync.ledger import Ledger
from rootfi_sync.ledger.db import ledger_engine, source_engine, source_for
from rootfi_sync.ledger.lease import LeaseKeeper
from rootfi_sync.rootfi.client import RootFiClient
from rootfi_sync.rootfi.decisions import Timing
from rootfi_sync.rootfi.delivery import Delivery
from rootfi_sync.rootfi.governor import Logger, SharedRateLimit, make_governor
from rootfi_sync.settings import Settings


@dataclass(frozen=True, slots=True)
class RunParts:
    ledger: Ledger
    client: RootFiClient
    leases: LeaseKeeper
    delivery: Delivery  # how this run's batches are sent: through `client` and the run's pool


_current: ContextVar[RunParts] = ContextVar("rootfi_sync_run")


def current() -> RunParts:
    """Return the parts of the run open in this context (a task's way to its run)."""
    try:
        return _current.get()
    except LookupError:
        raise RuntimeError("no rootfi-sync run is open here (see run.open_run)") from None


def timing_of(settings: Settings) -> Timing:
    """Return the settle and lookup timings the settings ask for."""
    return Timing(
        sync_settle=settings.rootfi_sync_settle_seconds,
        async_settle=settings.rootfi_async_settle_seconds,
        sync_poll=settings.rootfi_sync_poll_seconds,
        skew=timedelta(seconds=settings.rootfi_reconcile_skew_seconds),
        timeout=settings.rootfi_timeout_seconds,
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
def writes_coming() -> Iterator[None]:
    """While the block claims and sends batches, the run's async writes that end wait a
    little for the next ones, so one customer listing finds the records of several
    (`rootfi_sync.rootfi.following.SharedListing`)."""
    with current().delivery.listing.expecting():
        yield


@contextmanager
def writes_paused() -> Iterator[None]:
    """While the block waits for a batch in flight to end, an ended write waits for no new
    one (`writes_coming`): none starts meanwhile."""
    with current().delivery.listing.paused():
        yield


def orphans_may_wait() -> bool:
    """Whether the run's company has a waiting ledger row a run may take now: without one,
    the orphans pass (`tasks.orphans`) has nothing to find and need not run."""
    ledger = current().ledger
    return ledger.any_waiting(ledger.now())


@contextmanager
def current_run(parts: RunParts) -> Iterator[RunParts]:
    """Make `parts` this context's run (what `current()` returns) for the block."""
    token = _current.set(parts)
    try:
        yield parts
    finally:
        _current.reset(token)


@contextmanager
def open_run(
    settings: Settings,
    company_id: int,
    api_key: SecretStr,
    owner: str,
    stop_splitting: Callable[[int, int], bool] = lambda _sent, _refused: False,
) -> Iterator[RunParts]:
    """Yield the run's ledger, lease keeper, client and delivery (with its pool), as this
    context's run (`current()`); close them all afterwards. `stop_splitting` is the run's
    breaker."""
    engine = ledger_engine(settings)
    # The source's own engine only when the ledger is elsewhere: the source is then only read.
    reader = source_engine(settings) if settings.ledger_apart else None
    source = source_for(settings)
    pool = ThreadPoolExecutor(settings.rootfi_concurrency, thread_name_prefix="rootfi-send")
    ledger = Ledger(engine, source, company_id, owner, source_engine=reader)
    try:
        with (
            rootfi_client(settings, api_key) as client,
            pool,
            LeaseKeeper(ledger, settings.rootfi_lease_seconds) as leases,
        ):
            delivery = _delivery(settings, ledger, client, pool, leases, stop_splitting)
            with current_run(RunParts(ledger, client, leases, delivery)) as parts:
                yield parts
    finally:
        engine.dispose()
        if reader is not None:
            reader.dispose()


@contextmanager
def rootfi_client(settings: Settings, api_key: SecretStr) -> Iterator[RootFiClient]:
    """Yield a RootFi client paced by the key's rate limit (the governor the settings name);
    close both afterwards."""
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
    try:
        with client:
            yield client
    finally:
        if isinstance(governor, SharedRateLimit):
            governor.close()


def _delivery(
    settings: Settings,
    ledger: Ledger,
    client: RootFiClient,
    pool: ThreadPoolExecutor,
    leases: LeaseKeeper,
    stop_splitting: Callable[[int, int], bool],
) -> Delivery:
    """Return how this run delivers: its client, mode, timings, ledger and breaker."""
    return Delivery(
        client=client,
        company_id=ledger.company_id,
        mode=settings.rootfi_write_mode,
        pool=pool,
        book=RunBook(ledger, leases.margin, settings.rootfi_write_mode),
        timing=timing_of(settings),
        stop_splitting=stop_splitting,
        poll_timeout=settings.rootfi_poll_timeout_seconds,
        match_fields=settings.match_fields,
        resend=settings.rootfi_resend_in_doubt,
    )


@dataclass(frozen=True, slots=True)
class RunBook:
    """A run's ledger as its delivery asks it (`rootfi_sync.rootfi.delivery.Book`): leases
    vouched for `margin` seconds ahead (the keeper's), keys stamped with the run's write mode."""

    ledger: Ledger
    margin: float
    mode: str

    def known(self, rootfi_ids: Iterable[str]) -> set[str]:
        return self.ledger.known_rootfi_ids(rootfi_ids)

    def vouch(self, customer_ids: Sequence[str]) -> tuple[set[str], datetime]:
        return self.ledger.vouch(customer_ids, margin=self.margin)

    def accepted(self, customer_ids: list[str], sync_id: str) -> None:
        self.ledger.record_sync_id(customer_ids, sync_id)

    def stamp(self, keys: Mapping[str, tuple[str, ...]]) -> set[str]:
        return self.ledger.touch(keys, mode=self.mode)

    def now(self) -> datetime:
        return self.ledger.now()
