"""A customer whose source row was deleted while it was in doubt is still looked up in RootFi
through the signatures the ledger keeps (issue 16, point 9): adopted when found, parked FAILED
"source row deleted while in doubt; not found in RootFi" once its settle time is over, never
resent, and counted. Against the sandbox over real HTTP, on SQLite and PostgreSQL. Each test
failed on e84e1f8: the second run never took the customers (they stayed IN_DOUBT)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from rootfi_sandbox import SandboxServer
from typer.testing import CliRunner

from flows.sync_customers import sync_customers
from rootfi_sync.cli.commands import app
from rootfi_sync.ledger.db import make_engine
from rootfi_sync.ledger.tables import ledger
from tests.factories import make_customer
from tests.integration.conftest import COMPANY
from tests.integration.helpers import creates, ledger_rows, make_due_now, seed_source

pytestmark = pytest.mark.usefixtures("prefect_server")
MODES = ["single", "batch"]
PARKED = "source row deleted while in doubt; not found in RootFi"


def delete_source_rows(url: str, ledger_url: str | None = None) -> None:
    """Delete the source rows, and move each request's send a minute into the past (longer
    than the settings' timeout and settle time: what was sent had time to land)."""
    source = make_engine(url)
    with source.begin() as conn:
        conn.execute(sa.text("DELETE FROM customers"))
    source.dispose()
    engine = make_engine(ledger_url or url)
    with engine.begin() as conn:
        sent = conn.execute(sa.select(ledger.c.customer_id, ledger.c.attempted_at)).all()
        for cid, at in sent:
            moved = sa.update(ledger).where(ledger.c.customer_id == cid)
            conn.execute(moved.values(attempted_at=at - timedelta(minutes=1)))
    engine.dispose()


def in_doubt_then_deleted(
    url: str,
    sandbox: SandboxServer,
    configure: Any,
    mode: str,
    ledger_url: str | None = None,
    **fault: float,
) -> int:
    """Seed two customers, send them with `fault` (each left IN_DOUBT), delete their source
    rows and make them due; return the creates the sandbox received. The ledger is in the
    source's database, or in `ledger_url`'s."""
    apart = {"ledger_database_url": ledger_url} if ledger_url else {}
    seed_source(url, [make_customer() for _ in range(2)], **apart)
    configure(url, rootfi_write_mode=mode, rootfi_retries=0, **apart)
    sandbox.admin.set_faults(seed=1, **fault)
    assert sync_customers()["in_doubt"] == 2
    sandbox.admin.set_faults(error_500_rate=0.0, lost_answer_rate=0.0)
    delete_source_rows(url, ledger_url)
    make_due_now(ledger_url or url)
    return creates(sandbox)


@pytest.mark.parametrize("mode", MODES)
def test_a_customer_in_doubt_whose_source_row_is_deleted_is_adopted_when_rootfi_has_it(
    db_url: str, sandbox: SandboxServer, configure: Any, mode: str
) -> None:
    sent = in_doubt_then_deleted(db_url, sandbox, configure, mode, lost_answer_rate=1.0)

    second = sync_customers()

    rows = ledger_rows(db_url).values()
    assert {r.status for r in rows} == {"SYNCED"}
    stored = {str(c["rootfi_id"]) for c in sandbox.admin.customers()}
    assert {r.rootfi_id for r in rows} == stored
    assert (second["source_deleted"], second["synced"], creates(sandbox)) == (2, 2, sent)


@pytest.mark.parametrize("mode", MODES)
def test_a_customer_in_doubt_whose_source_row_is_deleted_is_parked_when_rootfi_has_not(
    db_url: str, sandbox: SandboxServer, configure: Any, mode: str
) -> None:
    sent = in_doubt_then_deleted(db_url, sandbox, configure, mode, error_500_rate=1.0)

    second = sync_customers()

    rows = ledger_rows(db_url).values()
    assert {r.status for r in rows} == {"FAILED"}
    assert all(PARKED in (r.last_error or "") for r in rows)
    assert (second["source_deleted"], second["failed"], creates(sandbox)) == (2, 2, sent)
    assert {a["customer_id"] for a in second["attention"]} == {r.customer_id for r in rows}
    status = json.loads(CliRunner().invoke(app, ["status", "--json"]).output)
    assert {r["customer_id"] for r in status["look"]} == {r.customer_id for r in rows}
    assert "source row deleted" in CliRunner().invoke(app, ["status"]).output
    assert sync_customers()["picked"] + sync_customers()["source_deleted"] == 0  # left parked


def test_a_deleted_customer_whose_settle_time_runs_stays_in_doubt_and_is_not_sent(
    db_url: str, sandbox: SandboxServer, configure: Any
) -> None:
    sent = in_doubt_then_deleted(db_url, sandbox, configure, "single", error_500_rate=1.0)
    configure(db_url, rootfi_write_mode="single", rootfi_retries=0, rootfi_sync_settle_seconds=3600)

    second = sync_customers()

    assert {r.status for r in ledger_rows(db_url).values()} == {"IN_DOUBT"}
    assert (second["source_deleted"], second["in_doubt"], creates(sandbox)) == (2, 2, sent)


@pytest.mark.parametrize("fault", ["lost_answer_rate", "error_500_rate"])
def test_with_the_ledger_apart_deleted_customers_are_settled_and_never_sent_ones_dropped(
    tmp_path: Path, sandbox: SandboxServer, configure: Any, fault: str
) -> None:
    url, ledger_url = (f"sqlite:///{tmp_path / name}" for name in ("shop.db", "ledger.db"))
    sent = in_doubt_then_deleted(url, sandbox, configure, "single", ledger_url, **{fault: 1.0})
    engine = make_engine(ledger_url)
    with engine.begin() as conn:  # a customer claimed, never sent, whose row is gone too
        now = conn.execute(sa.select(ledger.c.updated_at)).scalars().first()
        conn.execute(
            sa.insert(ledger).values(
                customer_id="gone", company_id=COMPANY, status="RETRY", attempts=0, updated_at=now
            )
        )
    engine.dispose()

    second = sync_customers()

    rows = ledger_rows(ledger_url)
    want = "SYNCED" if fault == "lost_answer_rate" else "FAILED"
    assert "gone" not in rows and {r.status for r in rows.values()} == {want}
    assert (second["source_deleted"], second["source_deleted_unsent"]) == (2, 1)
    assert creates(sandbox) == sent
