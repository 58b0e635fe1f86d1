"""Small helpers for integration tests: a seeded source database, ledger reads and edits,
the exactly-once check against the sandbox, and a flow run in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from rootfi_sandbox import SandboxServer

from rootfi_sync.ledger.db import create_sample, init_db, make_engine, sample_for, upgrade_ledger
from rootfi_sync.ledger.tables import as_read, ledger, source_table
from rootfi_sync.outcomes import FINAL_STATES
from rootfi_sync.settings import load_settings
from tests.integration.conftest import COMPANY
from tests.waiting import next_due, passed

ROOT = Path(__file__).resolve().parents[2]


def seed_source(url: str, rows: Iterable[dict[str, Any]], **settings: Any) -> None:
    """Create the sample source table at `url` and the ledger (at `ledger_database_url` if
    given), and insert `rows`."""
    loaded = load_settings(source_database_url=url, **settings)
    create_sample(loaded)
    init_db(loaded)
    engine = make_engine(url)
    table = sample_for(loaded)
    rows = list(rows)
    if rows:
        with engine.begin() as conn:
            conn.execute(table.insert(), rows)
    engine.dispose()


def create_source(
    url: str,
    rows: Iterable[dict[str, Any]],
    *,
    columns: dict[str, str] | None = None,
    primary_key: bool = True,
    **types: sa.types.TypeEngine[Any],
) -> None:
    """Create the ledger and a `customers` table like the sample's, with some columns of
    other types (`types`, by our column name) and, unless `primary_key`, a key free to be
    NULL or shared; insert `rows`."""
    engine = make_engine(url)
    upgrade_ledger(engine)
    sample = source_table(columns=columns)
    table = sa.Table("customers", sa.MetaData(), *(_like(c, types, primary_key) for c in sample.c))
    with engine.begin() as conn:
        table.create(conn)
    engine.dispose()
    insert_raw(url, rows, columns=columns)


def _like(
    column: sa.Column[Any], types: dict[str, sa.types.TypeEngine[Any]], primary_key: bool
) -> sa.Column[Any]:
    key = column.key == "id"
    return sa.Column(
        column.name,
        types.get(column.key, column.type),
        key=column.key,
        primary_key=primary_key and key,
        nullable=not (primary_key and key),
    )


def insert_raw(
    url: str, rows: Iterable[dict[str, Any]], *, columns: dict[str, str] | None = None
) -> None:
    """Insert rows into `customers` as they are, but for datetimes (written as SQLAlchemy
    writes them to SQLite): nothing is checked or converted on the way in."""
    rows = [{k: _as_stored(v) for k, v in row.items()} for row in rows]
    if not rows:
        return
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(as_read(source_table(columns=columns)).insert(), rows)
    engine.dispose()


def _as_stored(value: Any) -> Any:
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.isoformat(" ")
    return value


def ledger_rows(url: str) -> dict[str, Any]:
    """Return the ledger as customer_id -> row."""
    engine = make_engine(url)
    with engine.connect() as conn:
        rows = {r.customer_id: r for r in conn.execute(sa.select(ledger))}
    engine.dispose()
    return rows


def creates(sandbox: SandboxServer) -> int:
    """How many create requests the sandbox has answered (or dropped) so far."""
    return int(sandbox.admin.state()["requests"]["creates"])


def make_due_now(url: str) -> int:
    """Move every ledger row's `next_attempt_at` into the past; return how many were moved."""
    engine = make_engine(url)
    past = datetime.now(UTC) - timedelta(seconds=1)
    with engine.begin() as conn:
        moved = conn.execute(
            sa.update(ledger)
            .where(ledger.c.next_attempt_at.is_not(None))
            .values(next_attempt_at=past)
        ).rowcount
    engine.dispose()
    return moved


def run_until_settled(url: str, runs: int) -> dict[str, Any]:
    """Run the flow until every ledger row is final (outcomes.FINAL_STATES); return the last
    run's counts, or fail if `runs` runs do not get there. A customer waiting out the time a
    lost request may still take to land is taken by a later run, once it is due."""
    from flows.sync_customers import sync_customers

    for _ in range(runs):
        counts: dict[str, Any] = sync_customers()
        if {r.status for r in ledger_rows(url).values()} <= set(FINAL_STATES):
            return counts
        passed(next_due(url), "the next customer to be due")
    raise AssertionError(f"still unsettled after {runs} runs; the last one: {counts}")


def assert_exactly_once(sandbox: SandboxServer, url: str, rows: list[dict[str, Any]]) -> None:
    """Each row is stored once in the sandbox, SYNCED in the ledger, with that record's id."""
    stored = sandbox.admin.customers(COMPANY)
    counts = Counter(c["email"] for c in stored)
    duplicates = {email: n for email, n in counts.items() if n > 1}
    lost = [r["email"] for r in rows if r["email"] not in counts]
    assert duplicates == {} and lost == []
    ledger_by_id = ledger_rows(url)
    assert Counter(r.status for r in ledger_by_id.values()) == {"SYNCED": len(rows)}
    rootfi_id = {c["email"]: str(c["rootfi_id"]) for c in stored}
    wrong = {
        r["id"]: (ledger_by_id[str(r["id"])].rootfi_id, rootfi_id[r["email"]])
        for r in rows
        if ledger_by_id[str(r["id"])].rootfi_id != rootfi_id[r["email"]]
    }
    assert wrong == {}, "customer id: (ledger's rootfi_id, the sandbox record's)"


REPORT_COUNTS = (
    "import json; from flows.sync_customers import sync_customers; "
    "print(json.dumps(sync_customers(), default=str))"
)


def start_flow_process(
    env: dict[str, str], cwd: Path, code: str = REPORT_COUNTS
) -> subprocess.Popen[bytes]:
    """Run the flow in a new process against the current Prefect API (or `env`'s
    PREFECT_API_URL).

    It prints the run's counts as JSON on the last line of stdout (see `counts_of`), or what
    `code` prints. It runs in `cwd` (not the repository, whose `.env` must not leak in) with the
    repository on PYTHONPATH.
    """
    from prefect.settings import PREFECT_API_URL

    full = {
        **os.environ,
        "PREFECT_API_URL": str(PREFECT_API_URL.value()),
        **env,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    return subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=cwd,
        env=full,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def wait_for_claim_owners(
    url: str, owners: int, timeout: float = 120.0, runs: Sequence[subprocess.Popen[bytes]] = ()
) -> None:
    """Wait until `owners` different runs have held leases in the ledger (not all at once).

    If one of `runs` ends first, or the time runs out, stop the runs and fail with their stderr.
    """
    engine = make_engine(url)
    seen: set[str] = set()
    deadline = time.monotonic() + timeout
    try:
        while len(seen) < owners:
            if any(run.poll() is not None for run in runs) or time.monotonic() > deadline:
                for run in runs:
                    if run.poll() is None:
                        run.kill()
                errors = [run.communicate()[1].decode()[-3000:] for run in runs]
                raise AssertionError(f"only {len(seen)} run(s) claimed customers", *errors)
            with engine.connect() as conn:
                query = sa.select(ledger.c.lease_owner).distinct()
                seen.update(o for o in conn.execute(query).scalars() if o is not None)
            time.sleep(0.05)
    finally:
        engine.dispose()


def counts_of(stdout: bytes) -> dict[str, Any]:
    """The counts a `start_flow_process` run printed."""
    result: dict[str, Any] = json.loads(stdout.decode().strip().splitlines()[-1])
    return result
