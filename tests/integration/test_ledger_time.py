"""When a customer may be sent again, counted from the last moment a request for it may have
left (issue 16, points 4 and 5): a request leaves only under a lease the database vouches for,
right before it leaves; a takeover counts from the lost owner's lease end; a task retry starts
from what the ledger holds, in whatever process it runs, not from the attempt's start."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import SecretStr
from rootfi_sandbox import SandboxServer

from rootfi_sync.ledger import Candidate, Ledger, Outcome, Status
from rootfi_sync.ledger.db import make_engine
from rootfi_sync.ledger.tables import as_read, ledger, source_table
from rootfi_sync.rootfi.client import RootFiClient
from rootfi_sync.rootfi.decisions import Timing, fresh_send
from rootfi_sync.rootfi.delivery import BatchIncomplete, Delivery
from rootfi_sync.rootfi.lookup import Item
from rootfi_sync.run import open_run
from rootfi_sync.run.parts import RunBook
from rootfi_sync.settings import load_settings
from rootfi_sync.source.transform import build_payloads
from tasks.load import attempt
from tests.factories import make_customer
from tests.integration.conftest import API_KEY, COMPANY
from tests.integration.helpers import assert_exactly_once, ledger_rows, seed_source

MODES = ["single", "batch"]


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgres", marks=pytest.mark.postgres),
        pytest.param("mariadb", marks=pytest.mark.mariadb),
    ]
)
def db_url(request: pytest.FixtureRequest, sqlite_url: str) -> str:
    """The source and ledger on SQLite, PostgreSQL and MariaDB (each dialect's clock SQL)."""
    if request.param == "sqlite":
        return sqlite_url
    return str(request.getfixturevalue("pg_url" if request.param == "postgres" else "mysql_url"))


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = make_engine(db_url)
    try:
        yield engine
    finally:
        engine.dispose()


def items_of(rows: list[dict[str, Any]], held: list[Candidate]) -> list[Item]:
    """The items a run builds for the customers it holds, with their history."""
    payloads = {str(cid): p for cid, p in build_payloads(rows).accepted}
    return [
        Item(
            c.customer_id,
            payloads[c.customer_id],
            doubt_since=c.doubt_since,
            last_sent=c.attempted_at,
            sync_id=c.sync_id,
            sent_keys=c.sent_keys,
            last_mode=c.attempt_mode,
        )
        for c in held
    ]


def claim_all(run: Ledger, lease: float) -> list[Candidate]:
    return run.claim(run.candidates(run.now(), limit=100).candidates, timedelta(seconds=lease))


def intend(run: Ledger, items: list[Item], mode: str = "single") -> None:
    assert run.record_intent({i.customer_id: (i.payload_hash, i.keys) for i in items}, mode)


def lease_end(engine: sa.Engine) -> Any:
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.max(ledger.c.lease_expires_at))).scalar_one()


@pytest.mark.parametrize(("before", "now"), [("single", "batch"), ("batch", "single")])
def test_a_takeover_waits_from_the_lost_owners_lease_end_in_the_mode_it_sent(
    db_url: str, engine: sa.Engine, sandbox: SandboxServer, before: str, now: str
) -> None:
    rows = [make_customer()]
    seed_source(db_url, rows)
    source = as_read(source_table())
    lost = Ledger(engine, source, COMPANY, "lost")
    items = items_of(rows, claim_all(lost, lease=3))
    intend(lost, items, before)
    assert lost.vouch([items[0].customer_id], margin=0.1)[0]  # its request may leave now
    ended = lease_end(engine)  # ...and its run dies: it may have sent until its lease ended
    time.sleep(max(0.0, (ended - lost.now()).total_seconds()) + 0.2)
    heir = Ledger(engine, source, COMPANY, "heir")
    held = claim_all(heir, lease=60)
    settle = {before: 1.5, now: 0.1}  # the mode it was sent in sets the wait
    timing = Timing(sync_settle=settle["single"], async_settle=settle["batch"], timeout=1)

    with RootFiClient(sandbox.api_url, SecretStr(API_KEY)) as client, ThreadPoolExecutor(2) as pool:
        delivery = Delivery(
            client,
            COMPANY,
            now,
            pool,
            book=RunBook(heir, margin=0.1, mode=now),
            timing=timing,
        )
        with pytest.raises(BatchIncomplete) as caught:
            delivery.deliver(items_of(rows, held), heir.now())

    assert [c.attempted_at for c in held] == [ended]  # not the lost owner's last stamp
    waiting = caught.value.pending[items[0].customer_id]
    assert waiting.status == Status.IN_DOUBT
    assert 1.5 < waiting.wait <= 2.5  # lease end + timeout 1 s + 1.5 s settle of `before`
    assert sandbox.admin.state()["requests"]["creates"] == 0


@pytest.mark.parametrize("mode", MODES)
def test_a_run_paused_past_its_lease_sends_nothing_once_another_run_took_its_customers(
    db_url: str, sandbox: SandboxServer, configure: Any, mode: str
) -> None:
    rows = [make_customer() for _ in range(3)]
    seed_source(db_url, rows)
    configure(db_url, rootfi_write_mode=mode, rootfi_lease_seconds=60)
    with open_run(load_settings(), COMPANY, SecretStr(API_KEY), "paused") as parts:
        held = claim_all(parts.ledger, lease=60)
        parts.leases.hold(c.customer_id for c in held)
        items = items_of(rows, held)
        intend(parts.ledger, items)
        engine = make_engine(db_url)
        with engine.begin() as conn:  # it slept: its lease ran out, another run took them
            conn.execute(sa.update(ledger).values(lease_owner="another run"))
        engine.dispose()

        with pytest.raises(BatchIncomplete) as caught:
            parts.delivery.deliver(items, parts.ledger.now())

    assert {o.status for o in caught.value.pending.values()} == {Status.RETRY}
    assert sandbox.admin.state()["requests"]["creates"] == 0


def open_attempt(settings: Any) -> Any:
    """A run's parts as a process that knows nothing of the attempts before opens them."""
    return open_run(settings, COMPANY, SecretStr(API_KEY), "the-run")


def test_a_retry_counts_the_settle_time_from_when_each_request_left_not_the_attempts_start(
    db_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer() for _ in range(4)]
    seed_source(db_url, rows)
    # One request at a time, 0.7 s each: the last leaves 2.1 s after the attempt started,
    # longer than the settle time. Every answer is lost; each record lands 1 s after.
    configure(
        db_url,
        rootfi_concurrency=1,
        rootfi_sync_settle_seconds=1.5,
        rootfi_timeout_seconds=2,
    )
    sandbox.admin.set_faults(
        latency_seconds=0.7, lost_answer_rate=1.0, lost_answer_landing_seconds=1
    )
    settings = load_settings()
    with open_attempt(settings) as parts:
        items = items_of(rows, claim_all(parts.ledger, lease=60))
        intend(parts.ledger, items)
        with pytest.raises(BatchIncomplete):
            attempt(parts, items, run_count=1, retries=2)
    sandbox.admin.set_faults(latency_seconds=0.0, lost_answer_rate=0.0)

    with open_attempt(settings) as parts:  # the retry, at once, in another process
        with pytest.raises(BatchIncomplete) as caught:
            attempt(parts, items, run_count=2, retries=2)
        assert sandbox.admin.state()["requests"]["creates"] == 4  # nothing sent again
        time.sleep(max(o.wait for o in caught.value.pending.values()) + 0.1)
        last = attempt(parts, items, run_count=3, retries=2)
        parts.ledger.record_outcomes(last, max_attempts=5, requeue=timedelta(0), attempts={})

    assert sandbox.admin.state()["requests"]["creates"] == 4
    assert_exactly_once(sandbox, db_url, rows)


def test_a_retry_in_another_process_keeps_what_the_attempt_before_it_settled(
    db_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer() for _ in range(8)]
    seed_source(db_url, rows)
    configure(db_url, rootfi_sync_settle_seconds=0, rootfi_timeout_seconds=0.5)
    sandbox.admin.set_faults(lost_answer_rate=0.5, seed=4)
    settings = load_settings()
    with open_attempt(settings) as parts:
        items = items_of(rows, claim_all(parts.ledger, lease=60))
        intend(parts.ledger, items)
        with pytest.raises(BatchIncomplete) as caught:
            attempt(parts, items, run_count=1, retries=2)
    created = {o.customer_id: o.rootfi_id for o in caught.value.outcomes}
    assert 0 < len(created) < len(rows)
    sandbox.admin.set_faults(lost_answer_rate=0.0)
    time.sleep(0.6)  # the lost ones' timeout: the retry may look them up and find them

    with open_attempt(settings) as parts:  # no memory of the attempt before
        outcomes = attempt(parts, items, run_count=2, retries=2)
        parts.ledger.record_outcomes(outcomes, max_attempts=5, requeue=timedelta(0), attempts={})

    again = {o.customer_id: o for o in outcomes if o.customer_id in created}
    assert {cid: o.rootfi_id for cid, o in again.items()} == created
    assert not any(o.adopted for o in again.values())  # known from the ledger, not looked up
    assert sum(o.adopted for o in outcomes) == len(rows) - len(created)
    assert sandbox.admin.state()["requests"]["creates"] == len(rows)
    assert {r.status for r in ledger_rows(db_url).values()} == {"SYNCED"}
    assert_exactly_once(sandbox, db_url, rows)


def test_a_customer_whose_request_never_left_is_not_in_doubt_when_claimed_again(
    db_url: str, engine: sa.Engine
) -> None:
    # A 429 (or no connection, or a lease not vouched for) says nothing left: the next run
    # sends the customer, not looks it up. (Before the review fix the intent's doubt outlived
    # the RETRY, and with ROOTFI_RESEND_IN_DOUBT=never the customer was parked "in doubt, not
    # found in RootFi" though no request had ever left.)
    rows = [make_customer()]
    seed_source(db_url, rows)
    source = as_read(source_table())
    first = Ledger(engine, source, COMPANY, "first")
    [item] = items_of(rows, claim_all(first, lease=60))
    intend(first, [item])
    throttled = Outcome(item.customer_id, Status.RETRY, error="RootFi answered 429")
    first.record_outcomes([throttled], max_attempts=5, requeue=timedelta(0), attempts={})

    [again] = claim_all(Ledger(engine, source, COMPANY, "second"), lease=60)

    assert (again.doubt_since, again.attempted_at) == (None, None)


def test_a_row_changed_after_its_customer_was_parked_in_doubt_is_not_taken_as_re_driven(
    db_url: str, engine: sa.Engine
) -> None:
    # Only `rootfi-sync retry` re-drives (attempts 0 with a doubt): a changed source row keeps
    # the customer's attempts, so a lookup that finds nothing parks it again rather than
    # resending it. (Before the review fix the claim reset the attempts of every FAILED row.)
    rows = [make_customer()]
    seed_source(db_url, rows)
    source = as_read(source_table())
    first = Ledger(engine, source, COMPANY, "first")
    [item] = items_of(rows, claim_all(first, lease=60))
    intend(first, [item])
    lost = Outcome(item.customer_id, Status.IN_DOUBT, error="no answer", sent_at=first.now())
    [parked] = first.record_outcomes(
        [lost], max_attempts=1, requeue=timedelta(0), attempts={item.customer_id: 1}
    )
    assert parked.status == Status.FAILED and parked.parked
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE customers SET city = 'Elsewhere'"))

    [again] = claim_all(Ledger(engine, source, COMPANY, "second"), lease=60)

    assert again.doubt_since is not None and again.attempts == 1
    assert not fresh_send(again.attempts, again.doubt_since is not None)


def test_a_database_that_cannot_be_asked_vouches_for_no_one(tmp_path: Any) -> None:
    # The check right before a POST must answer "no" when the database is away, not raise:
    # an error there escaped the send pool and turned every answer RootFi had already given in
    # the batch into "in doubt". (It raised OperationalError before the review fix.)
    gone = make_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'ledger.db'}")
    away = Ledger(gone, as_read(source_table()), COMPANY, "run")

    held, _ = away.vouch(["1", "2"], margin=0.1)

    assert held == set()
    gone.dispose()


def test_a_lease_ending_within_the_margin_is_not_vouched_for(
    db_url: str, engine: sa.Engine
) -> None:
    # A request may take up to the margin to leave once vouched for: a lease that ends sooner,
    # by the database's clock, could end while it is on its way, and another run could send
    # the same customer. So the customer is held, but not vouched for.
    rows = [make_customer(), make_customer()]
    seed_source(db_url, rows)
    run = Ledger(engine, as_read(source_table()), COMPANY, "run")
    held = claim_all(run, lease=5)
    ids = [c.customer_id for c in held]

    vouched, clock = run.vouch(ids, margin=1)
    short, _ = run.vouch(ids, margin=30)
    other, _ = Ledger(engine, as_read(source_table()), COMPANY, "another run").vouch(ids, margin=0)

    assert vouched == set(ids)
    assert short == set()
    assert other == set()  # a run vouches only for its own leases
    assert abs((clock - run.now()).total_seconds()) < 5  # and answers with the database's clock
