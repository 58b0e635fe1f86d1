"""The sync-customers flow under Prefect's test server, against the sandbox over HTTP."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from rootfi_sandbox import SandboxServer

from flows.sync_customers import sync_customers
from tests.factories import make_customer
from tests.integration.conftest import API_KEY, COMPANY
from tests.integration.helpers import ledger_rows, seed_source
from tests.waiting import attempts_older_than

pytestmark = pytest.mark.usefixtures("prefect_server")


def valid_and_invalid_rows() -> list[dict[str, Any]]:
    rows = [make_customer() for _ in range(12)]
    rows[3]["email"] = "not-an-email"
    rows[7]["name"] = "   "
    rows[9]["email"] = "refused.customer@refused.example"  # the platform says no
    return rows


@pytest.mark.parametrize("mode", ["single", "batch"])
def test_syncs_valid_customers_once_and_records_why_the_others_failed(
    sqlite_url: str, sandbox: SandboxServer, configure: Any, mode: str
) -> None:
    rows = valid_and_invalid_rows()
    seed_source(sqlite_url, rows)
    configure(sqlite_url, rootfi_write_mode=mode, rootfi_batch_size=5)

    counts = sync_customers()

    ledger = ledger_rows(sqlite_url)
    assert Counter(r.status for r in ledger.values()) == {"SYNCED": 9, "FAILED": 3}
    assert "email" in ledger[str(rows[3]["id"])].last_error
    assert "name" in ledger[str(rows[7]["id"])].last_error
    assert "refused.example" in ledger[str(rows[9]["id"])].last_error
    stored = sandbox.admin.customers(COMPANY)
    assert len(stored) == 9
    assert {str(c["rootfi_id"]) for c in stored} == {
        r.rootfi_id for r in ledger.values() if r.status == "SYNCED"
    }
    assert (counts["picked"], counts["synced"], counts["failed"]) == (12, 9, 3)


def test_a_batch_run_with_no_fault_asks_for_each_sync_once_and_lists_for_several_writes(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer() for _ in range(40)]
    seed_source(sqlite_url, rows)
    configure(sqlite_url, rootfi_write_mode="batch", rootfi_batch_size=5, rootfi_concurrency=4)

    counts = sync_customers()

    asked = sandbox.admin.state()["requests"]["by_kind"]
    assert counts["synced"] == 40 and asked["create"] == 8
    assert asked["sync"] <= 8 + 2  # once each (a loaded machine may slow a write down)
    assert asked["list_customers"] <= 4  # one listing for several writes that ended
    assert "sync_jobs" not in asked  # every record found: the jobs have nothing to add
    assert asked["companies"] == 1


def test_a_second_run_sends_nothing(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    seed_source(sqlite_url, valid_and_invalid_rows())
    configure(sqlite_url)
    sync_customers()
    creates = sandbox.admin.state()["requests"]["creates"]

    counts = sync_customers()

    assert sandbox.admin.state()["requests"]["creates"] == creates
    assert counts["picked"] == 0


def test_a_page_of_parked_customers_does_not_end_the_run_before_new_ones(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = [make_customer(name="   ") for _ in range(3)] + [make_customer()]
    seed_source(sqlite_url, rows)
    configure(sqlite_url, rootfi_batch_size=3)
    sync_customers()  # the first three are parked FAILED, the fourth is synced
    newcomer = make_customer()
    seed_source(sqlite_url, [newcomer])

    counts = sync_customers()  # its first page holds only the parked three

    assert (counts["picked"], counts["synced"]) == (1, 1)
    assert ledger_rows(sqlite_url)[str(newcomer["id"])].status == "SYNCED"


def test_a_customer_out_of_attempts_is_parked_and_the_run_counts_it_as_failed(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    row = make_customer()
    seed_source(sqlite_url, [row])
    configure(sqlite_url, rootfi_retries=0, rootfi_max_attempts=2, rootfi_timeout_seconds=1)
    sandbox.admin.set_faults(error_500_rate=1.0)

    first = sync_customers()
    attempts_older_than(sqlite_url, 1)  # its request's timeout: it may be sent again
    second = sync_customers()

    assert (first["in_doubt"], first["failed"]) == (1, 0)
    assert (second["in_doubt"], second["failed"], second["refused"]) == (0, 1, 0)
    assert [f["customer_id"] for f in second["failures"]] == [str(row["id"])]
    parked = ledger_rows(sqlite_url)[str(row["id"])]
    assert parked.status == "FAILED" and parked.attempts == 2
    assert parked.last_error.count("500") == 2 and "gave up after 2 attempts" in parked.last_error


def test_limit_stops_the_run_after_that_many_customers(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    seed_source(sqlite_url, [make_customer() for _ in range(12)])
    configure(sqlite_url, rootfi_batch_size=5)

    counts = sync_customers(limit=7)

    assert (counts["picked"], counts["synced"]) == (7, 7)
    assert len(sandbox.admin.customers(COMPANY)) == 7
    assert sync_customers()["picked"] == 5  # the rest are still new


def test_dry_run_sends_nothing_and_writes_nothing(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    rows = valid_and_invalid_rows()
    seed_source(sqlite_url, rows)
    configure(sqlite_url)

    counts = sync_customers(dry_run=True)

    assert (counts["picked"], counts["would_send"], counts["rejected"]) == (12, 10, 2)
    first = counts["preview"][0]
    assert first["customer_id"] == str(rows[0]["id"])
    assert first["payload"]["email"] == rows[0]["email"]
    assert first["payload"]["currency_id"] == "USD" and first["payload"]["status"] == "ACTIVE"
    assert sandbox.admin.state()["requests"]["total"] == 0
    assert ledger_rows(sqlite_url) == {}


def test_the_api_key_appears_in_no_log_line(
    sqlite_url: str, configure: Any, caplog: pytest.LogCaptureFixture
) -> None:
    seed_source(sqlite_url, valid_and_invalid_rows())
    configure(sqlite_url)
    with caplog.at_level("DEBUG"):
        sync_customers()
    assert caplog.records
    assert API_KEY not in caplog.text  # messages and tracebacks alike


@pytest.mark.parametrize(
    ("setting", "value", "named"),
    [
        ("ROOTFI_API_KEY", "sk-wrong", "ROOTFI_API_KEY"),
        ("ROOTFI_COMPANY_ID", "4242", "ROOTFI_COMPANY_ID 4242 is not among"),
    ],
)
def test_a_wrong_key_or_company_stops_the_run_before_anything_is_sent(
    sqlite_url: str,
    sandbox: SandboxServer,
    configure: Any,
    monkeypatch: pytest.MonkeyPatch,
    setting: str,
    value: str,
    named: str,
) -> None:
    seed_source(sqlite_url, valid_and_invalid_rows())
    configure(sqlite_url)
    monkeypatch.setenv(setting, value)

    state = sync_customers(return_state=True)

    assert state.is_failed()
    message = str(state.result(raise_on_failure=False))
    assert named in message and "sk-wrong" not in message and API_KEY not in message
    assert sandbox.admin.state()["requests"]["creates"] == 0
    assert ledger_rows(sqlite_url) == {}


def test_a_rerun_after_a_lost_write_back_looks_the_batch_up_instead_of_resending(
    sqlite_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    # The send cache never answers for customers in doubt (only RootFi may say what became
    # of them): the rerun finds the records by lookup, with one listing, and sends nothing.
    rows = [make_customer() for _ in range(6)]
    seed_source(sqlite_url, rows)
    configure(sqlite_url)
    sync_customers()
    first = {cid: r.rootfi_id for cid, r in ledger_rows(sqlite_url).items()}
    forget_outcomes(sqlite_url)  # as if the process died right after the send task finished
    before = sandbox.admin.state()["requests"]

    counts = sync_customers()

    after = sandbox.admin.state()["requests"]
    assert (counts["synced"], counts["adopted"]) == (6, 6)
    assert after["creates"] == before["creates"]  # nothing sent again...
    assert after["total"] - before["total"] == 2  # ...only the access check and one listing
    assert {cid: r.rootfi_id for cid, r in ledger_rows(sqlite_url).items()} == first


def forget_outcomes(url: str) -> None:
    """Put the ledger back as the intents left it: SENDING, in doubt since they were sent, no
    record, no sync, the lease run out."""
    from rootfi_sync.ledger.db import make_engine
    from rootfi_sync.ledger.tables import ledger

    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(
            ledger.update().values(
                status="SENDING",
                rootfi_id=None,
                platform_id=None,
                sync_id=None,
                doubt_since=ledger.c.synced_at,  # the intent stamped it before the send
                lease_expires_at=None,
            )
        )
    engine.dispose()
