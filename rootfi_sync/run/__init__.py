"""One run of the sync: its parts, its batches in flight, and what it did.

parts.py    `RunParts` built at the edge (engines, ledger, leases, client, delivery) and
            made the context's run: `open_run`, `current` (re-exported here)
window.py   `BatchWindow`: a run's batches in flight, drained on any stop
report.py   `RunSummary`: what a run did, counted as it goes; the circuit breaker
orphans.py  customers whose source row was deleted while they were in doubt
fanout.py   a fan-out over companies: which share a run, which the key reaches
"""

from rootfi_sync.run.parts import (
    RunParts,
    current,
    current_run,
    open_run,
    orphans_may_wait,
    rootfi_client,
    writes_coming,
    writes_paused,
)

__all__ = [
    "RunParts",
    "current",
    "current_run",
    "open_run",
    "orphans_may_wait",
    "rootfi_client",
    "writes_coming",
    "writes_paused",
]
