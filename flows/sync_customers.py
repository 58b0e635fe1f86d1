"""The flow: claim new customers, build payloads, send batches, record outcomes, report."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from functools import partial
from typing import Annotated, Any, Literal, TypeVar, cast
from uuid import UUID

from prefect import flow, get_run_logger, runtime
from prefect.artifacts import (
    create_progress_artifact,
    create_table_artifact,
    update_progress_artifact,
)
from prefect.futures import PrefectFuture
from prefect.tasks import exponential_backoff
from prefect.utilities.annotations import allow_failure, quote
from pydantic import Field, SecretStr

from rootfi_sync import errors
from rootfi_sync.ledger import Candidate, Outcome, Status, utcnow
from rootfi_sync.models import CustomerPayload
from rootfi_sync.orchestration.prefect_setup import resolve_api_key
from rootfi_sync.rootfi.decisions import fresh_send
from rootfi_sync.rootfi.lookup import Item
from rootfi_sync.run import open_run, orphans_may_wait, writes_coming, writes_paused
from rootfi_sync.run.fanout import GROUP_ARTIFACT_KEY, group_row, raise_if_failed
from rootfi_sync.run.report import RunSummary
from rootfi_sync.run.window import BatchWindow
from rootfi_sync.settings import Settings, load_settings
from tasks.extract import Claimed, claim_batch, count_pending
from tasks.load import SendRequest, check_access, send_batch
from tasks.orphans import settle_orphans
from tasks.report import publish_report
from tasks.transform import build_batch
from tasks.write_back import Recorded, ToRecord, record_intent, record_outcomes

PROGRESS_SECONDS = 5.0
"""How often the progress artifact is updated (each update is a call to the Prefect API)."""

T = TypeVar("T")


def as_is(value: T) -> T:
    """Hand `value` to a task without Prefect walking it for futures (a batch's rows and
    payloads: `quote`). Typed as the value itself, which is what the task receives: Prefect
    unwraps `quote` before the call, which its task signatures cannot express."""
    return cast(T, quote(value))


def run_name() -> str:
    """Name a run after its company (or its group's first) and start time, e.g.
    company-1089-20261128-150000, or companies-1089-and-11-more-20261128-150000."""
    params = runtime.flow_run.parameters
    group = params.get("company_ids") or []
    company: int | str
    try:
        company = group[0] if group else load_settings().company(params.get("company_id"))
    except errors.SettingsError:  # the run itself reports bad settings, with their names
        company = "default"
    who = (
        f"companies-{company}-and-{len(group) - 1}-more" if len(group) > 1 else f"company-{company}"
    )
    return f"{who}-{utcnow():%Y%m%d-%H%M%S}" + ("-dry" if params.get("dry_run") else "")


@flow(name="sync-customers", flow_run_name=run_name, log_prints=False)
def sync_customers(
    company_id: Annotated[int | None, Field(gt=0)] = None,
    batch_size: Annotated[int | None, Field(ge=1, le=1000)] = None,
    write_mode: Literal["single", "batch"] | None = None,
    dry_run: bool = False,
    limit: Annotated[int | None, Field(ge=1)] = None,
    customer_ids: list[int | str] | None = None,
    company_ids: list[Annotated[int, Field(gt=0)]] | None = None,
    reachable: list[int] | None = None,
    limits: list[Annotated[int, Field(ge=1)]] | None = None,
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
        company_ids: Sync these companies one after the other instead (a fan-out's group);
            returns {"companies": one row each}, and fails naming those that did not complete.
        reachable: Companies the fan-out found this key reaches this tick: their companies
            request is skipped. Any other company is checked before anything is sent.
        limits: With company_ids, at most this many customers of each company, in the same
            order (a fan-out's shares of the key's budget); `limit` for any not given one.
    """
    overrides = {"rootfi_batch_size": batch_size, "rootfi_write_mode": write_mode}
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    api_key = resolve_api_key(settings) if not dry_run else SecretStr("dry-run")
    checked = set(reachable or ())
    if company_ids:
        each = dict(zip(company_ids, limits or [], strict=False))
        return sync_group(
            settings, api_key, company_ids, checked, dry_run=dry_run, limit=limit, limits=each
        )
    company = settings.company(company_id)
    return _sync_company(
        settings, api_key, company, company in checked, dry_run, limit, customer_ids
    )


def _sync_company(
    settings: Settings,
    api_key: SecretStr,
    company: int,
    checked: bool,
    dry_run: bool,
    limit: int | None,
    customer_ids: list[int | str] | None = None,
) -> dict[str, Any]:
    """Sync one company's new customers (its access checked first unless `checked`); return
    its counts."""
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
        if not dry_run and not checked:
            check_access(company, settings.rootfi_company_id)
        try:
            _sync_batches(settings, summary, dry_run=dry_run, limit=limit, only=customer_ids)
            if not dry_run and not customer_ids:
                _settle_orphans(settings, summary)
        finally:
            summary.duration_seconds = time.monotonic() - started
            publish_report(summary, settings.rootfi_alert_failed_share)
    details = {"failures": summary.failures, "attention": summary.attention}
    return summary.counts() | details | {"preview": summary.preview}


def sync_group(
    settings: Settings,
    api_key: SecretStr,
    companies: list[int],
    checked: set[int],
    *,
    dry_run: bool,
    limit: int | None,
    limits: dict[int, int] | None = None,
) -> dict[str, Any]:
    """Sync each company in turn (one failing does not stop the others), each at most its
    `limits` customers (else `limit`); return a row each, also published as the table artifact
    GROUP_ARTIFACT_KEY. Raises CompanyRunsFailed, naming them, when some did not complete."""
    rows = []
    for company in companies:
        most = (limits or {}).get(company, limit)
        try:
            counts = _sync_company(settings, api_key, company, company in checked, dry_run, most)
        except Exception as exc:  # reported in the row, and raised below with the others
            get_run_logger().error("company %s did not complete: %s", company, exc)
            rows.append(group_row(company, False, f"{type(exc).__name__}: {exc}"))
            continue
        rows.append(group_row(company, True, "", counts))
    create_table_artifact(rows, key=GROUP_ARTIFACT_KEY, description="Each company of this run")
    raise_if_failed(rows, GROUP_ARTIFACT_KEY)
    return {"companies": rows}


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
    ROOTFI_CONCURRENCY); in `batch` mode up to ROOTFI_CONCURRENCY async writes are, and while
    batches are still claimed an ended write waits a little for the next ones, so one
    customer listing finds the records of several (`run.writes_coming`).
    """
    depth = 2 if settings.rootfi_write_mode == "single" else settings.rootfi_concurrency
    progress = Progress(only, limit)
    after: Any = None
    with BatchWindow(depth, partial(_count_batch, summary), writes_paused) as window:
        with writes_coming():  # an ended write waits a little for the next (one listing)
            while limit is None or summary.picked < limit:
                size = settings.rootfi_batch_size
                if limit is not None:
                    size = min(size, limit - summary.picked)
                with summary.timed("extract"):
                    claim = claim_batch.submit(
                        summary.batches + 1, after=after, limit=size, only=only, lease=not dry_run
                    )
                    claimed = claim.result()
                if claimed.last_id is None:  # no row left (a page of parked rows still counts)
                    break
                summary.batches += 1
                after = claimed.last_id
                summary.skipped += claimed.seen - len(claimed.candidates)
                summary.picked += len(claimed.candidates)
                started = _start_batch(
                    settings, summary, claim, claimed.candidates, dry_run=dry_run
                )
                if started is not None:
                    with summary.timed("load"):
                        window.add(*started)
                summary.check_breaker(settings.rootfi_max_refused_share)
                if claimed.ended:  # asking again would find no row
                    break
                progress.tick(summary.picked + summary.skipped)
        with summary.timed("load"):
            window.drain()
    progress.end()
    summary.check_breaker(settings.rootfi_max_refused_share)


@dataclass(slots=True)
class Progress:
    """The run's progress artifact, made when a second page is claimed (a run of one page
    ends before a bar could move: it costs the Prefect API nothing), then updated at most
    every PROGRESS_SECONDS."""

    only: list[int | str] | None
    limit: int | None
    artifact: UUID | None = None
    total: int = 0
    due: float = 0.0

    def tick(self, done: int) -> None:
        """Show `done` customers processed (the bar is made on the first call)."""
        if self.artifact is None:
            total = done + count_pending(self.only)  # what this run holds is not pending
            self.total = total if self.limit is None else min(total, self.limit)
            made = create_progress_artifact(
                self._percent(done), description=f"Customers processed (of ~{self.total})"
            )
            assert isinstance(made, UUID)  # called from sync code, Prefect returns the id
            self.artifact = made
        elif time.monotonic() >= self.due:
            update_progress_artifact(self.artifact, self._percent(done))
        else:
            return
        self.due = time.monotonic() + PROGRESS_SECONDS

    def end(self) -> None:
        if self.artifact is not None:
            update_progress_artifact(self.artifact, 100.0)

    def _percent(self, done: int) -> float:
        return min(99.0, 100.0 * done / max(self.total, 1))


def _settle_orphans(settings: Settings, summary: RunSummary) -> None:
    """Look up and settle the customers in doubt whose source row was deleted, a page at a
    time (`rootfi_sync.run.orphans`); count them in `summary`. No task runs when the ledger
    has no waiting row the run may take (`orphans_may_wait`)."""
    if not orphans_may_wait():
        return
    after: str | None = None
    while True:
        settled = settle_orphans(
            summary.orphan_pages + 1,
            after=after,
            limit=settings.rootfi_batch_size,
            requeue_seconds=settings.rootfi_requeue_delay_seconds,
        )
        if settled.last_id is None:
            return
        summary.orphan_pages += 1
        after = settled.last_id
        summary.add_orphans(settled.written, settled.forgotten)
        if settled.ended:
            return


def _start_batch(
    settings: Settings,
    summary: RunSummary,
    claim: PrefectFuture[Claimed],
    claimed: list[Candidate],
    *,
    dry_run: bool,
) -> tuple[PrefectFuture[Recorded], Batch] | None:
    """Build the batch, record its intent, start sending it and recording its end; return
    the recording's future, or None when nothing is left to record (a dry run, no rows).

    Each task waits for the one before (`wait_for`), so the UI draws claim → build →
    intent → send → record; the rows and payloads themselves are handed over as they are.
    Each waits on the task before's future, not its state: Prefect walks a state's result
    (a hundred rows) to find dependencies, twice a task, which took two fifths of the flow's
    thread in single mode (bench/RESULTS.md).
    """
    if not claimed:
        return None
    batch_no = summary.batches
    with summary.timed("transform"):
        built = build_batch.submit(
            as_is(claimed), batch_no=batch_no, wait_for=[claim], return_state=False
        )
        transformed = built.result()
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
        intent = record_intent.submit(
            as_is(items), batch_no=batch_no, wait_for=[built], return_state=False
        )
        sendable = intent.result()
    summary.lease_lost += len(items) - len(sendable)
    send = None
    if sendable:
        # The cache answers only for customers the ledger had no row for (a ledger lost after
        # the send); any other (a redrive of a refused one above all) is really sent.
        known = any(c.status is not None for c in claimed)
        send = _submit(settings, summary.company_id, sendable, batch_no, known, intent)
    recorded = record_outcomes.submit(
        as_is(send),
        batch=as_is(ToRecord(batch_no, sendable, rejects, attempts)),
        max_attempts=settings.rootfi_max_attempts,
        requeue_seconds=settings.rootfi_requeue_delay_seconds,
        wait_for=[intent] if send is None else [intent, allow_failure(send)],
        return_state=False,
    )
    return recorded, Batch(batch_no, attempts)


@dataclass(frozen=True, slots=True)
class Batch:
    """A batch in the window: what counting its end needs besides what was recorded."""

    batch_no: int
    attempts: dict[str, int]


def _item(candidate: Candidate, payload: CustomerPayload) -> Item:
    return Item(
        candidate.customer_id,
        payload,
        doubt_since=candidate.doubt_since,
        last_sent=candidate.attempted_at,
        sync_id=candidate.sync_id,
        sent_keys=candidate.sent_keys,
        redriven=fresh_send(candidate.attempts, candidate.doubt_since is not None),
        last_mode=candidate.attempt_mode,
    )


def _count_batch(summary: RunSummary, batch: Batch, recorded: Recorded) -> None:
    """Count a batch whose end was recorded; raise what stopped its send when that must stop
    the run (it is recorded first, IN_DOUBT: what was sent may exist)."""
    summary.phase_seconds["write_back"] = (
        summary.phase_seconds.get("write_back", 0.0) + recorded.seconds
    )
    summary.sent += sum(1 for o in recorded.sent if o.status != Status.RETRY)
    summary.lease_lost += len(recorded.sent) - len(recorded.written)
    summary.add_outcomes(recorded.written, batch.attempts)
    if recorded.stop is not None:
        raise recorded.stop


def _submit(
    settings: Settings,
    company_id: int,
    items: list[Item],
    batch_no: int,
    refresh: bool,
    intent: PrefectFuture[list[Item]],
) -> PrefectFuture[list[Outcome]]:
    """Start the batch's send task (with its retries; `refresh`: never answered from the send
    cache) and return its future."""
    sender = send_batch.with_options(
        retries=settings.rootfi_retries,
        retry_delay_seconds=exponential_backoff(backoff_factor=settings.rootfi_retry_delay_seconds),
        refresh_cache=refresh,
    )
    request = SendRequest(
        base_url=settings.rootfi_base_url,
        company_id=company_id,
        mode=settings.rootfi_write_mode,
        batch_no=batch_no,
        items=tuple(items),
    )
    return sender.submit(as_is(request), wait_for=[intent], return_state=False)


if __name__ == "__main__":
    sync_customers()
