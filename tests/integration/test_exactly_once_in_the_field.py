"""Exactly once against RootFi as it really behaves (issue 9): keys that reach many companies,
faults on every call, records that land late, runs that outlast their lease, rows edited
while in doubt. Each test failed on the code before the fix it covers.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from rootfi_sandbox import SandboxServer

from flows.sync_customers import sync_customers
from rootfi_sync.ledger import Ledger, Outcome, Status
from rootfi_sync.ledger.db import make_engine
from rootfi_sync.ledger.tables import ledger, source_table
from tests.factories import make_customer, sandbox_for
from tests.integration.conftest import API_KEY, COMPANY
from tests.integration.helpers import (
    assert_exactly_once,
    counts_of,
    ledger_rows,
    make_due_now,
    run_until_settled,
    seed_source,
    start_flow_process,
    wait_for_claim_owners,
)
from tests.waiting import (
    attempts_older_than,
    leases_run_out,
    newest_attempt,
    passed,
    stored,
    sync_ended,
)

pytestmark = pytest.mark.usefixtures("prefect_server")


# -- 1. a key that reaches many companies -------------------------------------------------------


def test_a_key_that_reaches_many_companies_finds_its_company_on_a_later_page(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch, configure: Any
) -> None:
    companies = (*range(1, 151), COMPANY)  # 151 companies: ours is on the second page
    rows = [make_customer() for _ in range(3)]
    seed_source(sqlite_url, rows)
    with sandbox_for(API_KEY, *companies) as many:
        configure(sqlite_url)
        monkeypatch.setenv("ROOTFI_BASE_URL", many.api_url)

        counts = sync_customers()

        assert counts["synced"] == 3
        assert len(many.admin.customers(COMPANY)) == 3


# -- 2. runs that outlast their lease -----------------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "database"),
    [
        ("single", "sqlite"),
        ("batch", "sqlite"),
        pytest.param("single", "postgres", marks=pytest.mark.postgres),
    ],
)
def test_a_run_that_outlasts_its_lease_keeps_it_and_a_second_run_sends_nothing_twice(
    request: pytest.FixtureRequest,
    sqlite_url: str,
    sandbox: SandboxServer,
    configure: Any,
    tmp_path: Path,
    mode: str,
    database: str,
) -> None:
    url = sqlite_url if database == "sqlite" else request.getfixturevalue("pg_url")
    rows = [make_customer() for _ in range(20)]
    seed_source(url, rows)
    # Each batch takes ~5 s to send (single) and the lease is 3 s: without renewal the second
    # run takes over customers the first is still sending (four batches: 40 customers took
    # twice as long and showed nothing more).
    configure(
        url,
        rootfi_write_mode=mode,
        rootfi_batch_size=5,
        rootfi_concurrency=1,
        rootfi_lease_seconds=3,
    )
    sandbox.admin.set_faults(latency_seconds=1.0)
    first = start_flow_process({}, tmp_path)
    wait_for_claim_owners(url, owners=1)
    second = start_flow_process({}, tmp_path)
    results = [run.communicate(timeout=300) for run in (first, second)]

    assert [first.returncode, second.returncode] == [0, 0], [e.decode()[-4000:] for _, e in results]
    assert sum(counts_of(out)["picked"] for out, _ in results) >= len(rows)
    assert_exactly_once(sandbox, url, rows)


def test_a_run_that_lost_its_lease_neither_sends_nor_records(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    from rootfi_sync.rootfi.lookup import Item
    from rootfi_sync.source.transform import build_payloads

    rows = [make_customer() for _ in range(4)]
    seed_source(sqlite_url, rows)
    engine = make_engine(sqlite_url)
    source = source_table()
    slow, fast = Ledger(engine, source, COMPANY, "slow"), Ledger(engine, source, COMPANY, "fast")
    page = slow.candidates(slow.now(), limit=10)
    assert len(slow.claim(page.candidates, timedelta(seconds=0.2))) == 4
    leases_run_out(sqlite_url)  # the slow run's; the fast run takes its customers over
    taken = fast.claim(fast.candidates(fast.now(), limit=10).candidates, timedelta(minutes=5))
    assert len(taken) == 4
    payloads = dict(build_payloads(r for r in rows).accepted)
    items = {str(cid): Item(str(cid), p) for cid, p in payloads.items()}

    assert slow.record_intent({k: (i.payload_hash, i.keys) for k, i in items.items()}) == set()
    assert slow.renew(list(items), timedelta(minutes=5)) == set()
    synced = [Outcome(k, Status.SYNCED, rootfi_id=f"9{k}") for k in items]
    written = slow.record_outcomes(synced, max_attempts=5, requeue=timedelta(0), attempts={})

    assert written == []
    assert {r.status for r in ledger_rows(sqlite_url).values()} == {"CLAIMED"}
    assert {r.lease_owner for r in ledger_rows(sqlite_url).values()} == {"fast"}
    engine.dispose()


def test_a_synced_customer_is_never_written_again(sqlite_url: str) -> None:

    rows = [make_customer()]
    seed_source(sqlite_url, rows)
    engine = make_engine(sqlite_url)
    run = Ledger(engine, source_table(), COMPANY, "run")
    cid = str(rows[0]["id"])
    run.claim(run.candidates(run.now(), limit=10).candidates, timedelta(minutes=5))
    with engine.begin() as conn:  # another writer records it SYNCED while we still hold it
        conn.execute(sa.update(ledger).values(status="SYNCED", rootfi_id="77", lease_owner="run"))

    run.record_outcomes(
        [Outcome(cid, Status.IN_DOUBT, error="no answer")],
        max_attempts=5,
        requeue=timedelta(0),
        attempts={cid: 1},
    )

    row = ledger_rows(sqlite_url)[cid]
    assert (row.status, row.rootfi_id) == ("SYNCED", "77")
    engine.dispose()


def test_leases_follow_the_database_clock_not_a_machine_clock_two_hours_fast(
    sqlite_url: str, sandbox: SandboxServer, configure: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    from prefect import get_client

    rows = [make_customer() for _ in range(5)]
    seed_source(sqlite_url, rows)
    engine = make_engine(sqlite_url)
    holder = Ledger(engine, source_table(), COMPANY, "holder")
    held = holder.claim(holder.candidates(holder.now(), limit=10).candidates, timedelta(hours=1))
    assert len(held) == 5
    configure(sqlite_url)
    fast = datetime.now(UTC) + timedelta(hours=2)
    # The machine's clock, two hours fast, wherever our code reads it (`utcnow`).
    ours = [
        module
        for name, module in list(sys.modules.items())
        if name.split(".")[0] in ("rootfi_sync", "tasks", "flows") and hasattr(module, "utcnow")
    ]
    assert len(ours) >= 3, ours
    for module in ours:
        monkeypatch.setattr(module, "utcnow", lambda: fast)

    state = sync_customers(return_state=True)

    counts = state.result()
    assert counts["picked"] == 0  # another run holds them for an hour, by the database's clock
    assert sandbox.admin.state()["requests"]["creates"] == 0
    with get_client(sync_client=True) as client:  # the run did read the fast clock
        name = client.read_flow_run(state.state_details.flow_run_id).name
    assert f"{fast:%Y%m%d-%H%M}" in name, name
    engine.dispose()


# -- 3. a lost synchronous create that lands late -----------------------------------------------


def test_a_lost_synchronous_create_that_lands_late_is_adopted_not_sent_again(
    db_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer() for _ in range(60)]
    seed_source(db_url, rows)
    configure(db_url, rootfi_retries=3, rootfi_sync_settle_seconds=4, rootfi_concurrency=4)
    sandbox.admin.set_faults(lost_answer_rate=0.1, lost_answer_landing_seconds=2, seed=7)

    first = sync_customers()

    assert first["in_doubt"] > 0
    assert sync_customers()["picked"] == 0  # not looked up before it could have landed
    sandbox.admin.set_faults(lost_answer_rate=0.0)
    stored(sandbox, COMPANY, len(rows))  # every late record has landed
    attempts_older_than(db_url, 4)  # and the settle time is over
    make_due_now(db_url)

    second = sync_customers()

    assert second["adopted"] == first["in_doubt"]
    assert_exactly_once(sandbox, db_url, rows)


def test_a_customer_in_doubt_is_resent_once_its_last_send_had_time_to_land(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer()]
    seed_source(sqlite_url, rows)
    configure(sqlite_url, rootfi_retries=0, rootfi_sync_settle_seconds=6, rootfi_timeout_seconds=1)
    sandbox.admin.set_faults(error_500_rate=1.0, seed=1)
    assert sync_customers()["in_doubt"] == 1  # a 500: it may exist
    sent = newest_attempt(sqlite_url)
    assert sent is not None
    sandbox.admin.set_faults(error_500_rate=0.0)
    attempts_older_than(sqlite_url, 2)  # well inside its settle time
    make_due_now(sqlite_url)
    assert sync_customers()["in_doubt"] == 1  # looked up, not found, too early to resend
    # Its timeout, then its settle time, from the first send (read before the lookup).
    passed(sent + timedelta(seconds=7.3), "the first send's timeout and settle time")
    make_due_now(sqlite_url)

    third = sync_customers()  # the lookup of the run before did not move the settle time on

    assert (third["synced"], third["adopted"]) == (1, 0)
    assert sandbox.admin.state()["requests"]["creates"] == 2
    assert_exactly_once(sandbox, sqlite_url, rows)


# -- 4. faults on the GETs that follow an async write -------------------------------------------


def test_errors_on_the_gets_that_follow_an_async_write_never_resend_it(
    db_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer() for _ in range(300)]
    seed_source(db_url, rows)
    configure(
        db_url,
        rootfi_write_mode="batch",
        rootfi_batch_size=50,
        rootfi_retries=3,
        rootfi_concurrency=4,
        rootfi_timeout_seconds=1,
    )
    # Writes take a while to land, so a lookup made right after a failed GET finds nothing.
    sandbox.admin.set_faults(
        get_error_500_rate=0.3,
        get_lost_answer_rate=0.1,
        error_500_rate=0.1,
        async_write_seconds=0.5,
        seed=11,
    )

    run_until_settled(db_url, 12)

    assert_exactly_once(sandbox, db_url, rows)


def test_a_known_async_write_is_asked_about_across_runs_and_never_resent_before_it_ends(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer() for _ in range(20)]
    seed_source(sqlite_url, rows)
    configure(
        sqlite_url, rootfi_write_mode="batch", rootfi_batch_size=20, rootfi_poll_timeout_seconds=0.5
    )
    sandbox.admin.set_faults(async_write_seconds=8)

    first = sync_customers()

    assert first["in_doubt"] == 20
    sync_ids = {r.sync_id for r in ledger_rows(sqlite_url).values()}
    assert len(sync_ids) == 1 and None not in sync_ids  # kept from the moment RootFi named it
    make_due_now(sqlite_url)
    assert sync_customers()["in_doubt"] == 20  # still running: asked, not resent
    sync_ended(sandbox, next(iter(sync_ids)), API_KEY)
    make_due_now(sqlite_url)

    third = sync_customers()

    assert (third["synced"], third["adopted"]) == (20, 20)
    assert sandbox.admin.state()["requests"]["creates"] == 1
    assert_exactly_once(sandbox, sqlite_url, rows)


# -- 5. the lookup window starts at the first unresolved attempt --------------------------------


def test_a_retry_looks_up_from_the_first_unresolved_attempt_not_its_own(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    early = make_customer()
    seed_source(sqlite_url, [early])
    configure(sqlite_url, rootfi_retries=0, rootfi_reconcile_skew_seconds=1)
    sandbox.admin.set_faults(lost_answer_rate=1.0, seed=1)
    assert sync_customers()["in_doubt"] == 1  # created, answer lost
    attempts_older_than(sqlite_url, 2.5)  # its record is now older than the skew margin
    late = make_customer()
    seed_source(sqlite_url, [late])
    configure(sqlite_url, rootfi_retries=1, rootfi_reconcile_skew_seconds=1)

    sync_customers()  # the late one's answer is lost too: the batch is retried

    sandbox.admin.set_faults(lost_answer_rate=0.0)
    make_due_now(sqlite_url)
    sync_customers()
    assert_exactly_once(sandbox, sqlite_url, [early, late])


# -- 6. a row edited while its customer is in doubt ---------------------------------------------


@pytest.mark.parametrize("mode", ["single", "batch"])
def test_a_row_edited_while_in_doubt_is_matched_on_what_was_sent(
    db_url: str, sandbox: SandboxServer, configure: Any, mode: str
) -> None:
    rows = [make_customer() for _ in range(3)]
    seed_source(db_url, rows)
    configure(db_url, rootfi_retries=0, rootfi_write_mode=mode)
    sandbox.admin.set_faults(lost_answer_rate=1.0, seed=1)
    assert sync_customers()["in_doubt"] == 3
    sandbox.admin.set_faults(lost_answer_rate=0.0)
    engine = make_engine(db_url)
    with engine.begin() as conn:  # the user fixes a typo in a name meanwhile
        table = source_table()
        conn.execute(sa.update(table).values(name=table.c.name + " Jr"))
    engine.dispose()

    second = sync_customers()

    assert (second["synced"], second["adopted"]) == (3, 3)
    assert len(sandbox.admin.customers(COMPANY)) == 3
    assert sandbox.admin.state()["requests"]["creates"] == (3 if mode == "single" else 1)


# -- 7. one record per customer, the newest history, the breaker during a split -----------------


def test_two_customers_can_never_hold_the_same_rootfi_record(sqlite_url: str) -> None:
    seed_source(sqlite_url, [])
    engine = make_engine(sqlite_url)
    now = datetime.now(UTC)
    row = {"company_id": COMPANY, "status": "SYNCED", "rootfi_id": "5", "updated_at": now}
    with pytest.raises(sa.exc.IntegrityError), engine.begin() as conn:
        conn.execute(ledger.insert(), [row | {"customer_id": "1"}, row | {"customer_id": "2"}])
    engine.dispose()


def test_the_error_history_keeps_its_newest_lines(sqlite_url: str) -> None:

    rows = [make_customer()]
    seed_source(sqlite_url, rows)
    engine = make_engine(sqlite_url)
    run = Ledger(engine, source_table(), COMPANY, "run")
    cid = str(rows[0]["id"])
    for attempt in range(1, 41):
        run.claim(run.candidates(run.now(), limit=10).candidates, timedelta(minutes=5))
        error = f"attempt {attempt}: no answer " + "x" * 150
        run.record_outcomes(
            [Outcome(cid, Status.IN_DOUBT, error=error)],
            max_attempts=40,
            requeue=timedelta(0),
            attempts={cid: attempt},
        )

    history = ledger_rows(sqlite_url)[cid].last_error
    assert len(history) <= 4000
    assert "gave up after 40 attempts: attempt 40" in history.splitlines()[-1]
    engine.dispose()


def test_the_circuit_breaker_stops_the_split_of_a_batch_refused_whole(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer(phone=f"call me {i}") for i in range(400)]  # the schema refuses each
    sandbox.admin.set_faults(strict_schema=True)  # (a rule RootFi does not state: a switch)
    seed_source(sqlite_url, rows)
    configure(
        sqlite_url, rootfi_write_mode="batch", rootfi_batch_size=400, rootfi_max_refused_share=0.5
    )

    state = sync_customers(return_state=True)

    assert state.is_failed() and "circuit breaker" in str(state.result(raise_on_failure=False))
    assert sandbox.admin.state()["requests"]["creates"] < 80  # not the ~800 a full split takes
    statuses = {r.status for r in ledger_rows(sqlite_url).values()}
    assert statuses <= {"FAILED", "RETRY"}


def test_the_breaker_asked_during_a_split_counts_only_that_batch_not_the_ones_recorded(
    sandbox: SandboxServer,
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from pydantic import SecretStr

    from rootfi_sync.models import CustomerPayload
    from rootfi_sync.rootfi.client import RootFiClient
    from rootfi_sync.rootfi.delivery import Delivery
    from rootfi_sync.rootfi.lookup import Item

    asked: list[tuple[int, int]] = []

    def breaker(sent: int, refused: int) -> bool:
        asked.append((sent, refused))
        return False

    good = [Item(f"g{n}", CustomerPayload(name=f"Good {n}")) for n in range(6)]
    bad = [Item(f"b{n}", CustomerPayload(name=f"Bad {n}", phone="call me")) for n in range(4)]
    sandbox.admin.set_faults(strict_schema=True)  # "call me" refused whole (RootFi does not)
    client = RootFiClient(sandbox.api_url, SecretStr(API_KEY))
    with client, ThreadPoolExecutor(2) as pool:
        delivery = Delivery(client, COMPANY, "batch", pool, stop_splitting=breaker)
        now = datetime.now(UTC)
        delivery.deliver(good, now)  # accepted whole: the run counts it once it is recorded
        refused = delivery.deliver(bad, now)  # refused whole: split down to each customer

    assert {o.status for o in refused} == {Status.FAILED}
    # Before each half: what this batch's split has had refused so far, nothing of the six
    # customers of the batch before (the run's own counts hold those once recorded).
    assert asked[0] == (0, 0)
    assert asked[-1] == (3, 3)


def test_two_customers_of_one_batch_matched_to_one_record_leave_it_to_the_first(
    sqlite_url: str,
) -> None:
    rows = [make_customer() for _ in range(3)]
    seed_source(sqlite_url, rows)
    engine = make_engine(sqlite_url)
    run = Ledger(engine, source_table(), COMPANY, "run")
    run.claim(run.candidates(run.now(), limit=10).candidates, timedelta(minutes=5))
    first, second, third = (str(r["id"]) for r in rows)
    outcomes = [  # two lookups of one batch (its halves, or its attempts) matched record 9
        Outcome(first, Status.SYNCED, rootfi_id="9", adopted=True),
        Outcome(second, Status.SYNCED, rootfi_id="9", adopted=True),
        Outcome(third, Status.SYNCED, rootfi_id="10"),
    ]

    run.record_outcomes(outcomes, max_attempts=5, requeue=timedelta(0), attempts={})

    got = {cid: (r.status, r.rootfi_id) for cid, r in ledger_rows(sqlite_url).items()}
    assert got == {first: ("SYNCED", "9"), second: ("IN_DOUBT", None), third: ("SYNCED", "10")}
    engine.dispose()
