"""What a run did, counted as it goes, and the circuit breaker that reads those counts."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

from rootfi_sync.errors import CircuitOpen
from rootfi_sync.ledger import Outcome, Status
from rootfi_sync.outcomes import CREATED_UNKNOWN, DUPLICATE, SOURCE_DELETED

MIN_SAMPLE_FOR_BREAKER = 20
MAX_FAILURES_SHOWN = 50
MAX_PREVIEW = 20


@dataclass(slots=True)
class RunSummary:
    """Counts of one run; `failures` keeps the first few refused customers and why,
    `attention` the first few a person should look at in RootFi (created with their id
    unknown, duplicates found, source row deleted while in doubt)."""

    company_id: int
    dry_run: bool = False
    picked: int = 0
    synced: int = 0
    adopted: int = 0
    failed: int = 0
    rejected: int = 0
    in_doubt: int = 0
    created_unknown: int = 0
    duplicates_found: int = 0
    retry_later: int = 0
    source_deleted: int = 0  # customers in doubt whose source row is gone, looked up
    source_deleted_unsent: int = 0  # ... and never sent: their ledger rows dropped
    orphan_pages: int = 0
    lease_lost: int = 0
    skipped: int = 0
    sent: int = 0
    refused: int = 0
    batches: int = 0
    duration_seconds: float = 0.0
    stopped: str | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    attention: list[dict[str, Any]] = field(default_factory=list)
    phase_seconds: dict[str, float] = field(default_factory=dict)
    would_send: int = 0
    preview: list[dict[str, Any]] = field(default_factory=list)

    def add_preview(self, customer_id: str, payload: dict[str, Any]) -> None:
        """Count a payload a dry run would send; keep the first few to show."""
        self.would_send += 1
        if len(self.preview) < MAX_PREVIEW:
            self.preview.append({"customer_id": customer_id, "payload": payload})

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the time spent inside the block to `phase_seconds[phase]`."""
        start = time.perf_counter()
        try:
            yield
        finally:
            elapsed = time.perf_counter() - start
            self.phase_seconds[phase] = self.phase_seconds.get(phase, 0.0) + elapsed

    @property
    def rate(self) -> float:
        """Customers settled (synced or failed) per second."""
        settled = self.synced + self.failed + self.created_unknown
        return settled / self.duration_seconds if self.duration_seconds else 0.0

    def add_rejection(self, customer_id: Any, reason: str) -> None:
        self.rejected += 1
        self.failed += 1
        self._keep_failure(customer_id, reason, 0)

    def add_outcomes(self, outcomes: list[Outcome], attempts: dict[str, int]) -> None:
        counts = Counter(o.status for o in outcomes)
        self.synced += counts[Status.SYNCED]
        self.adopted += sum(1 for o in outcomes if o.adopted)
        self.failed += counts[Status.FAILED]
        self.refused += sum(1 for o in outcomes if o.status == Status.FAILED and not o.parked)
        self.in_doubt += counts[Status.IN_DOUBT]
        self.retry_later += counts[Status.RETRY]
        self.created_unknown += counts[Status.CREATED_UNKNOWN]
        self.duplicates_found += sum(1 for o in outcomes if o.duplicates)
        for o in outcomes:
            if o.status == Status.FAILED:
                self._keep_failure(o.customer_id, o.error or "", attempts.get(o.customer_id, 0))
            if o.status == Status.CREATED_UNKNOWN or o.duplicates:
                self._keep_attention(o)

    def add_orphans(self, outcomes: list[Outcome], forgotten: int) -> None:
        """Count the outcomes of customers whose source row is gone (`rootfi_sync.run.orphans`),
        each kept for a person to look at, and the never-sent ones dropped."""
        self.add_outcomes(outcomes, {})
        self.source_deleted += len(outcomes)
        self.source_deleted_unsent += forgotten
        for o in outcomes:
            if o.status != Status.CREATED_UNKNOWN and not o.duplicates:  # else kept already
                self._keep_attention(o, f"{SOURCE_DELETED}: {o.status.value.lower()}")

    def _keep_attention(self, o: Outcome, what: str | None = None) -> None:
        if len(self.attention) < MAX_FAILURES_SHOWN:
            self.attention.append(
                {
                    "customer_id": o.customer_id,
                    "what": what or (DUPLICATE if o.duplicates else CREATED_UNKNOWN),
                    "sync_id": o.sync_id or "",
                    "rootfi_ids": ", ".join(filter(None, (o.rootfi_id, *o.duplicates))),
                }
            )

    def _keep_failure(self, customer_id: Any, reason: str, attempts: int) -> None:
        if len(self.failures) < MAX_FAILURES_SHOWN:
            self.failures.append(
                {"customer_id": str(customer_id), "reason": reason, "attempts": attempts}
            )

    def breaker_would_open(self, max_refused_share: float, sent: int = 0, refused: int = 0) -> bool:
        """Whether the breaker opens once `sent` more customers, `refused` of them refused,
        are added to the run's counts (asked while a batch refused whole is split)."""
        total, bad = self.sent + sent, self.refused + refused
        return total >= MIN_SAMPLE_FOR_BREAKER and bad / total > max_refused_share

    def check_breaker(self, max_refused_share: float) -> None:
        """Raise CircuitOpen when RootFi refuses too large a share of what was sent."""
        if self.breaker_would_open(max_refused_share):
            share = self.refused / self.sent
            self.stopped = (
                f"circuit breaker: RootFi refused {self.refused} of {self.sent} customers sent "
                f"({share:.0%} > ROOTFI_MAX_REFUSED_SHARE={max_refused_share:.0%}); "
                "the run stopped early to save the API budget. Check the failures table."
            )
            raise CircuitOpen(self.stopped)

    def counts(self) -> dict[str, Any]:
        """Return the counts alone (no failure details), for logs and events."""
        data = asdict(self)
        data.pop("failures")
        data.pop("attention")
        data.pop("preview")
        data["rate_per_second"] = round(self.rate, 2)
        data["duration_seconds"] = round(self.duration_seconds, 2)
        data["phase_seconds"] = {k: round(v, 3) for k, v in self.phase_seconds.items()}
        return data
