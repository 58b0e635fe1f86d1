"""Keeping a run's leases while it sends, and knowing when it can no longer vouch for one.

A claim leases customers to a run until the database's clock reaches `lease_expires_at`. While
the run holds customers, a background thread renews their leases every third of the lease.
Each renewal tells which customers the run still holds; a customer whose lease was lost (it ran
out and another run took it) is dropped. The run may send for a customer only while its last
confirmed lease, counted on this machine's monotonic clock from just before the renewal, has
a safety margin left (`may_send`): a run that cannot reach its database stops sending.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable
from datetime import timedelta

import sqlalchemy as sa

from rootfi_sync.ledger import Ledger

logger = logging.getLogger("rootfi_sync.lease")


class LeaseKeeper:
    """Renews one run's leases in the background; use it as a context manager."""

    def __init__(self, ledger: Ledger, lease_seconds: float) -> None:
        self.ledger = ledger
        self.lease = lease_seconds
        self.margin = min(10.0, lease_seconds * 0.1)
        self._valid_until: dict[str, float] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rootfi-lease", daemon=True)

    def __enter__(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def hold(self, customer_ids: Iterable[str], since: float) -> None:
        """Start keeping these customers, leased at `since` (monotonic, before the claim)."""
        with self._lock:
            for cid in customer_ids:
                self._valid_until[cid] = since + self.lease - self.margin

    def release(self, customer_ids: Iterable[str]) -> None:
        """Stop keeping these customers (their outcome is written, or they were lost)."""
        with self._lock:
            for cid in customer_ids:
                self._valid_until.pop(cid, None)

    def may_send(self, customer_id: str) -> bool:
        """Whether the run still holds this customer's lease, with the margin to spare."""
        with self._lock:
            return self._valid_until.get(customer_id, 0.0) > time.monotonic()

    def renew_now(self) -> None:
        """Renew every lease held; drop the customers whose lease was lost."""
        with self._lock:
            ids = list(self._valid_until)
        if not ids:
            return
        started = time.monotonic()
        held = self.ledger.renew(ids, timedelta(seconds=self.lease))
        lost = 0
        with self._lock:
            for cid in ids:
                if cid not in self._valid_until:  # released meanwhile
                    continue
                if cid in held:
                    self._valid_until[cid] = started + self.lease - self.margin
                else:
                    del self._valid_until[cid]
                    lost += 1
        if lost:
            logger.warning("%s customer lease(s) were lost to another run: not sent here", lost)

    def _run(self) -> None:
        interval = self.lease / 3
        while not self._stop.wait(interval):
            try:
                self.renew_now()
            except sa.exc.SQLAlchemyError as exc:  # the database is away: leases run down
                logger.warning("could not renew leases: %s", type(exc).__name__)
