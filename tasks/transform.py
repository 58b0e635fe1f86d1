"""Transform: turn source rows into RootFi payloads (pure; no I/O)."""

from __future__ import annotations

from prefect import task
from prefect.cache_policies import NO_CACHE

from rootfi_sync.ledger import Candidate
from rootfi_sync.source.transform import Transformed, build_payloads


@task(name="build-payloads", cache_policy=NO_CACHE, task_run_name="build-payloads-{batch_no}")
def build_batch(candidates: list[Candidate], *, batch_no: int) -> Transformed:
    """Return the batch's payloads and its rejected rows, each with the rule it broke."""
    return build_payloads(c.row for c in candidates)
