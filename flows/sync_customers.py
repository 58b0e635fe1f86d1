"""The flow: claim new customers, build payloads, send batches, record outcomes, report."""

from __future__ import annotations

import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, TypeVar, cast
from uuid import UUID

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import create_progress_artifact, update_progress_artifact
from prefect.futures import PrefectFuture
from prefect.tasks import exponential_backoff
from prefect.utilities.annotations import quote
from pydantic import Field, SecretStr

from rootfi_sync import errors
from rootfi_sync.decisions import fresh_send
from rootfi_sync.delivery import BatchIncomplete
from rootfi_sync.ledger import Candidate, Outcome, Status, utcnow
from rootfi_sync.lookup import Item
from rootfi_sync.models import CustomerPayload
from rootfi_sync.prefect_setup import SECRET_BLOCK
from rootfi_sync.report import RunSummary
from rootfi_sync.run import open_run
from rootfi_sync.settings import Settings, load_settings
from tasks.extract import claim_batch, count_pending
from tasks.load import RETRYABLE, SendRequest, check_access, send_batch
from tasks.report import publish_report
from tasks.transform import build_batch
from tasks.write_back import record_intent, record_outcomes

PROGRESS_SECONDS = 5.0
"""How often the progress artifact is updated (each update is a call to the Prefect API)."""

T = TypeVar("T")


def as_is(value: T) -> T:
    """Hand `value` to a task without Prefect walking it for futures (a batch's rows and
    payloads: `quote`). Typed as the value itself, which is what the task receives: Prefect
    unwraps `quote` before the call, which its task signatures cannot express."""
    return cast(T, quote(value))


def resolve_api_key(settings: Settings) -> SecretStr:
    """Return the key from the `rootfi-api-key` Secret block if saved, else ROOTFI_API_KEY."""
    from prefect.blocks.system import Secret

    try:
        return SecretStr(str(Secret.load(SECRET_BLOCK).get()))  # type: ignore[union-attr]
    except (ValueError, RuntimeError):
        pass
    if settings.rootfi_api_key is None:
        raise errors.SettingsError(
            f"missing setting: ROOTFI_API_KEY (or a Prefect Secret block named {SECRET_BLOCK!r})"
        )
    return settings.rootfi_api_key


def run_name() -> str:
    """Name a run after its company and start time, e.g. company-1089-20261128-150000."""
    params = runtime.flow_run.parameters
    company: int | str
    try:
        company = load_settings().company(params.get("company_id"))
    except errors.SettingsError:  # the run itself reports bad settings, with their names
        company = "default"
    return f"company-{company}-{utcnow():%Y%m%d-%H%M%S}" + ("-dry" if params.get("dry_run") else "")


@flow(name="sync-customers", flow_run_name=run_name, log_prints=False)
def sync_customers(
    company_id: Annotated[int | None, Field(gt=0)] = None,
    batch_size: Annotated[int | None, Field(ge=1, le=1000)] = None,
    write_mode: Literal["single", "batch"] | None = None,
    dry_run: bool = False,
    limit: Annotated[int | None, Field(ge=1)] = None,
    customer_ids: list[int | str] | None = None,
) -> dict[str, Any]:
    """Sync the company's new customers into RootFi; return the run's counts.

    Args:
        company_id: RootFi company id; empty means ROOTFI_COMPANY_ID.
        batch_size: Customers per batch (1-1000); empty means ROOTFI_BATCH_SIZE.
        write_mode: single (one synchronous create each) or batch (async writes).
        dry_run: Render and validate the payloads; send nothing, change no ledger row.
        limit: Pick at most this many customers in this run.
        customer_ids: Sync only these source customer ids (support cases); integer, text or
            UUID keys alike, each made a value of the key column's type ("42" matches 42).
    """
    overrides = {"rootfi_batch_size": batch_size, "rootfi_write_mode": write_mode}
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    company = settings.company(company_id)
    api_key = resolve_api_key(settings) if not dry_run else SecretStr("dry-run")
    summary = RunSummary(company_id=company, dry_run=dry_run)
    started = time.monotonic()
    owner = str(runtime.flow_run.id or uuid.uuid4())
    share = settings.rootfi_max_refused_share
    with open_run(
        settings,
        company,
        api_key,
        owner,
        lambda sent, refused: summary.breaker_would_open(share, sent, refused),
    ):
        if not dry_run:
            check_access(company)
        try:
            _sync_batches(settings, summary, dry_run=dry_run, limit=limit, only=customer_ids)
        finally:
            summary.duration_seconds = time.monotonic() - started
            publish_report(summary, settings.rootfi_alert_failed_share)
    return summary.counts() | {"failures": summary.failures, "preview": summary.preview}


def _sync_batches(
    settings: Settings,
    summary: RunSummary,
    *,
    dry_run: bool,
    limit: int | None,
    only: list[int | str] | None,
) -> None:
    """Run batch after batch until no customer is left (or `limit` is reached).

    Batches overlap: while one is being sent, the next is claimed, built and recorded, and
    the one before is written back, so RootFi is never kept waiting on the database. In
    `single` mode two batches are in flight (their requests share the run's pool of
    ROOTFI_CONCURRENCY); in `batch` mode up to ROOTFI_CONCURRENCY async writes are.
    """
    depth = 2 if settings.rootfi_write_mode == "single" else settings.rootfi_concurrency
    total = count_pending(only)
    if limit is not None:
        total = min(total, limit)
    progress = create_progress_artifact(0.0, description=f"Customers processed (of ~{total})")
    assert isinstance(progress, UUID)  # called from sync code, Prefect returns the id itself
    next_progress = time.monotonic() + PROGRESS_SECONDS
    after: Any = None
    in_flight: deque[Sending] = deque()
    try:
        while limit is None or summary.picked < limit:
            size = settings.rootfi_batch_size
            if limit is not None:
                size = min(size, limit - summary.picked)
            with summary.timed("extract"):
                claimed = claim_batch(
                    summary.batches + 1, after=after, limit=size, only=only, lease=not dry_run
                )
            if claimed.last_id is None:  # no row left (a page of parked rows still counts)
                break
            summary.batches += 1
            after = claimed.last_id
            summary.skipped += claimed.seen - len(claimed.candidates)
            summary.picked += len(claimed.candidates)
            sending = _start_batch(settings, summary, claimed.candidates, dry_run=dry_run)
            if sending is not None:
                in_flight.append(sending)
            while len(in_flight) >= depth or (in_flight and in_flight[0].done()):
                _finish_batch(settings, summary, in_flight.popleft())
            if time.monotonic() >= next_progress:
                done = summary.picked + summary.skipped
                update_progress_artifact(progress, min(99.0, 100.0 * done / max(total, 1)))
                next_progress = time.monotonic() + PROGRESS_SECONDS
            summary.check_breaker(settings.rootfi_max_refused_share)
    finally:
        error = _drain(settings, summary, in_flight)
    if error is not None:
        raise error
    update_progress_artifact(progress, 100.0)
    summary.check_breaker(settings.rootfi_max_refused_share)


def _drain(
    settings: Settings, summary: RunSummary, in_flight: deque[Sending]
) -> BaseException | None:
    """Record every batch still in flight, whatever stopped us; return the first error met."""
    first: BaseException | None = None
    while in_flight:
        try:
            _finish_batch(settings, summary, in_flight.popleft())
        except Exception as exc:
            first = first or exc
    return first


@dataclass(slots=True)
class Sending:
    """A batch whose request is on its way: what is needed to record its outcomes."""

    batch_no: int
    items: list[Item]
    rejects: list[Outcome]
    attempts: dict[str, int]
    future: PrefectFuture[list[Outcome]] | None
    ended: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.future is None:
            self.ended.set()
        else:
            self.future.add_done_callback(lambda _future: self.ended.set())

    def done(self) -> bool:
        """Whether the batch's send has ended (told by the future, not the Prefect API)."""
        return self.ended.is_set()


def _start_batch(
    settings: Settings, summary: RunSummary, claimed: list[Candidate], *, dry_run: bool
) -> Sending | None:
    """Build the batch, record its intent and start sending it; None when nothing to send."""
    if not claimed:
        return None
    batch_no = summary.batches
    with summary.timed("transform"):
        transformed = build_batch(as_is(claimed), batch_no=batch_no)
    rejects = [
        Outcome(str(cid), Status.FAILED, error=f"invalid row: {r.message}")
        for cid, r in transformed.rejected
    ]
    for cid, r in transformed.rejected:
        summary.add_rejection(cid, f"invalid row: {r.message}")
    history = {c.customer_id: c for c in claimed}
    items = [_item(history[str(cid)], payload) for cid, payload in transformed.accepted]
    if dry_run:
        for item in items:
            summary.add_preview(item.customer_id, item.payload.to_api())
        get_run_logger().info(
            "dry run, batch %s: would send %s, would refuse %s", batch_no, len(items), len(rejects)
        )
        return None
    attempts = {c.customer_id: c.attempts + 1 for c in claimed}
    with summary.timed("write_back"):
        sendable = record_intent(as_is(items), batch_no=batch_no)
    summary.lease_lost += len(items) - len(sendable)
    fresh = any(fresh_send(c.attempts, c.doubt_since is not None) for c in claimed)
    future = _submit(settings, summary.company_id, sendable, batch_no, fresh) if sendable else None
    return Sending(batch_no, sendable, rejects, attempts, future)


def _item(candidate: Candidate, payload: CustomerPayload) -> Item:
    return Item(
        candidate.customer_id,
        payload,
        doubt_since=candidate.doubt_since,
        last_sent=candidate.attempted_at,
        sync_id=candidate.sync_id,
        sent_keys=candidate.sent_keys,
        last_mode=candidate.attempt_mode,
    )


def _finish_batch(settings: Settings, summary: RunSummary, sending: Sending) -> None:
    """Wait for the batch's answers and write its outcomes back in one statement.

    Raises what stopped the send, after recording, when it is not a passing failure.
    """
    outcomes: list[Outcome] = []
    error = None
    if sending.future is not None:
        with summary.timed("load"):
            outcomes, error = _outcomes(sending)
    summary.sent += sum(1 for o in outcomes if o.status != Status.RETRY)
    with summary.timed("write_back"):
        written = record_outcomes(
            as_is(sending.rejects + outcomes),
            batch_no=sending.batch_no,
            attempts=as_is(sending.attempts),
            max_attempts=settings.rootfi_max_attempts,
            requeue_seconds=settings.rootfi_requeue_delay_seconds,
        )
    rejected = {o.customer_id for o in sending.rejects}  # counted when built
    recorded = [o for o in written if o.customer_id not in rejected]
    summary.lease_lost += len(outcomes) - len(recorded)
    summary.add_outcomes(recorded, sending.attempts)
    if error is not None:
        raise error


def _submit(
    settings: Settings, company_id: int, items: list[Item], batch_no: int, fresh: bool
) -> PrefectFuture[list[Outcome]]:
    """Start the batch's send task (with its retries) and return its future."""
    sender = send_batch.with_options(
        retries=settings.rootfi_retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.rootfi_retry_delay_seconds),
        refresh_cache=fresh,
    )
    request = SendRequest(
        base_url=settings.rootfi_base_url,
        company_id=company_id,
        mode=settings.rootfi_write_mode,
        batch_no=batch_no,
        items=tuple(items),
    )
    return sender.submit(as_is(request))


def _outcomes(sending: Sending) -> tuple[list[Outcome], BaseException | None]:
    """Return the batch's outcomes, and an error that must stop the run.

    When retries run out, what is known is kept and the rest stays pending, each with its
    own wait. The error is one that must stop the run (401/403, a bug); its batch is recorded
    first, IN_DOUBT, since what was sent may exist and must be looked up before a resend.
    """
    assert sending.future is not None
    sending.future.wait()
    state = sending.future.state
    if not state.is_failed():
        return sending.future.result(), None
    result = state.result(raise_on_failure=False)
    if isinstance(result, BatchIncomplete):
        return _complete(sending.items, result.outcomes + list(result.pending.values())), None
    pending = _complete(sending.items, [], error=f"send failed: {result}")
    return pending, None if isinstance(result, RETRYABLE) else result


def _complete(
    items: list[Item], outcomes: list[Outcome], error: str = "no answer"
) -> list[Outcome]:
    """Return the outcomes plus IN_DOUBT for every item that has none."""
    known = {o.customer_id for o in outcomes}
    missing = [
        Outcome(i.customer_id, Status.IN_DOUBT, error=error)
        for i in items
        if i.customer_id not in known
    ]
    return outcomes + missing


if __name__ == "__main__":
    sync_customers()
