"""Keeping a run's leases while it sends.

A claim leases customers to a run until the database's clock reaches `lease_expires_at`. While
the run holds customers, a background thread renews their leases every third of the lease.
Each renewal tells which customers the run still holds; a customer whose lease was lost (it ran
out and another run took it) is dropped. Whether a request may leave is not decided here but
by the database, right before each POST (`Ledger.vouch`, with this keeper's `margin` to
spare): a machine's clock can stop while it sleeps, the database's does not.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from datetime import timedelta

import sqlalchemy as sa

from rootfi_sync.ledger import Ledger

logger = logging.getLogger("rootfi_sync.ledger.lease")


class LeaseKeeper:
    """Renews one run's leases in the background; use it as a context manager."""

    def __init__(self, ledger: Ledger, lease_seconds: float) -> None:
        self.ledger = ledger
        self.lease = lease_seconds
        # What a lease must have left when a request leaves: the time that request may take
        # to leave once the database vouched for it.
        self.margin = min(10.0, lease_seconds * 0.1)
        self._held: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rootfi-lease", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def hold(self, customer_ids: Iterable[str]) -> None:
        """Start keeping these customers (just claimed)."""
        with self._lock:
            self._held.update(customer_ids)

    def release(self, customer_ids: Iterable[str]) -> None:
        """Stop keeping these customers (their outcome is written, or they were lost)."""
        with self._lock:
            self._held.difference_update(customer_ids)

    def renew_now(self) -> None:
        """Renew every lease held; drop the customers whose lease was lost."""
        with self._lock:
            ids = list(self._held)
        if not ids:
            return
        held = self.ledger.renew(ids, timedelta(seconds=self.lease))
        lost = set(ids) - held
        with self._lock:
            lost &= self._held  # not those released meanwhile
            self._held -= lost
        if lost:
            logger.warning(
                "%s customer lease(s) were lost to another run: not sent here", len(lost)
            )

    def _run(self) -> None:
        interval = self.lease / 3
        while not self._stop.wait(interval):
            try:
                self.renew_now()
            except sa.exc.SQLAlchemyError as exc:  # the database is away: leases run down
                logger.warning("could not renew leases: %s", type(exc).__name__)
