"""A larger exactly-once run under injected faults: runs to converge, duplicates, lost.

    uv run python -m bench.fault_run --n 10000 --mode single [--out bench/out]

Seeds N customers (SQLite) and starts the sandbox with faults on every call:
creates get 10% 500s, 5% 429s, 10% lost answers whose records land `--landing` seconds after
the drop, 5% slow answers (longer than the client timeout); GETs (syncs, jobs, listings,
companies) get 10% 500s, 5% 429s and 5% dropped connections; async writes stay RUNNING for
`--async-write` seconds. The first round is two overlapping runs (this process and a second
flow process) with `--lease`-second leases. Later runs follow, each started when the ledger's
next customer is due (the settle times are real: `--settle`), until a run leaves nothing
pending (at most --max-runs). Prints one JSON line of figures and writes them, with the git
commit of this tree, to --out/<timestamp>-fault_run.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.procs import write_result

BENCH = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=10000)
    parser.add_argument("--mode", choices=["single", "batch"], default="single")
    parser.add_argument("--max-runs", type=int, default=12)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--settle", type=float, default=6.0, help="settle seconds (both modes)")
    parser.add_argument("--landing", type=float, default=3.0, help="late landing seconds")
    parser.add_argument("--async-write", type=float, default=1.0, help="async write seconds")
    parser.add_argument("--lease", type=float, default=5.0, help="lease seconds")
    parser.add_argument("--out", type=Path, default=BENCH / "out", help="JSON result directory")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="rootfi-fault-run-"))
    os.environ.update(
        PREFECT_HOME=str(home / "prefect"),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",
    )
    result = run(args, home)
    print(json.dumps(result))
    print(f"written to {write_result(args.out, 'fault_run', result, BENCH.parent)}")


def faults_of(args: argparse.Namespace) -> Any:
    from rootfi_sandbox import Faults

    return Faults(
        error_500_rate=0.10, error_429_rate=0.05, lost_answer_rate=0.10,
        lost_answer_landing_seconds=args.landing, slow_answer_rate=0.05,
        slow_answer_seconds=2.5, get_error_500_rate=0.10, get_error_429_rate=0.05,
        get_lost_answer_rate=0.05, async_write_seconds=args.async_write, seed=args.seed,
    )  # fmt: skip


def settings_env(args: argparse.Namespace, url: str, api_url: str) -> dict[str, str]:
    return {
        "SOURCE_DATABASE_URL": url, "ROOTFI_BASE_URL": api_url, "ROOTFI_API_KEY": "k",
        "ROOTFI_COMPANY_ID": "1089", "ROOTFI_RATE_LIMIT_PER_MINUTE": "0",
        "ROOTFI_CONCURRENCY": "8", "ROOTFI_TIMEOUT_SECONDS": "2",
        "ROOTFI_RETRY_DELAY_SECONDS": "0.2", "ROOTFI_REQUEUE_DELAY_SECONDS": "0",
        "ROOTFI_RECONCILE_SKEW_SECONDS": "10", "ROOTFI_WRITE_MODE": args.mode,
        "ROOTFI_SYNC_SETTLE_SECONDS": str(args.settle),
        "ROOTFI_ASYNC_SETTLE_SECONDS": str(args.settle), "ROOTFI_SYNC_POLL_SECONDS": "1",
        "ROOTFI_POLL_TIMEOUT_SECONDS": "5", "ROOTFI_LEASE_SECONDS": str(args.lease),
        "ROOTFI_MAX_ATTEMPTS": "20",
    }  # fmt: skip


def run(args: argparse.Namespace, home: Path) -> dict[str, object]:
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness
    from rootfi_sandbox import SandboxConfig, SandboxServer
    from rootfi_sandbox.customers import fake_customers

    from flows.sync_customers import sync_customers
    from rootfi_sync.db import create_sample, init_db, make_engine
    from rootfi_sync.ledger import status_counts
    from rootfi_sync.seed import insert_customers
    from rootfi_sync.settings import load_settings
    from rootfi_sync.tables import source_table

    url = f"sqlite:///{home / 'source.db'}"
    faults = faults_of(args)
    config = SandboxConfig(api_keys=frozenset({"k"}), company_ids=frozenset({1089}), faults=faults)
    create_sample(load_settings(source_database_url=url))
    init_db(load_settings(source_database_url=url))
    engine = make_engine(url)
    insert_customers(engine, source_table(), fake_customers(args.n, bad_share=0.0))
    with SandboxServer(config) as sandbox, prefect_test_harness(server_startup_timeout=120):
        env = settings_env(args, url, sandbox.api_url)
        os.environ.update(env)
        rival = subprocess.Popen(
            [sys.executable, "-m", "bench.run_flow", str(home / "rival.json")],
            env={**os.environ, "PREFECT_API_URL": str(PREFECT_API_URL.value())},
            cwd=BENCH.parent,
        )
        started, runs = time.monotonic(), []
        for _ in range(args.max_runs):
            counts = sync_customers()
            runs.append({k: counts[k] for k in ("picked", "synced", "adopted", "in_doubt",
                                                "retry_later", "lease_lost")})  # fmt: skip
            if len(runs) == 1:
                rival.wait()
            if not wait_until_due(engine):
                break
        stored = Counter(c["email"] for c in sandbox.admin.customers(1089))
        requests = sandbox.admin.state()["requests"]
    rival_counts = json.loads((home / "rival.json").read_text())["counts"]
    ledger = status_counts(engine, 1089)
    engine.dispose()
    return {
        "customers": args.n, "mode": args.mode, "faults": faults.model_dump(),
        "settle_seconds": args.settle, "lease_seconds": args.lease,
        "runs_to_converge": len(runs), "runs": runs,
        "rival_run": {k: rival_counts.get(k) for k in ("picked", "synced", "adopted")},
        "seconds": round(time.monotonic() - started, 1),
        "ledger": ledger, "in_rootfi": sum(stored.values()),
        "duplicates": sum(n - 1 for n in stored.values() if n > 1),
        "lost": args.n - len(stored), "requests": requests,
    }  # fmt: skip


def wait_until_due(engine: Any) -> bool:
    """Sleep until the ledger's next pending customer is due; False when none is pending."""
    import sqlalchemy as sa

    from rootfi_sync.ledger import Status, db_now
    from rootfi_sync.tables import ledger

    c = ledger.c
    with engine.connect() as conn:
        pending = sa.select(sa.func.min(sa.func.coalesce(c.next_attempt_at, c.lease_expires_at)))
        query = pending.where(c.status.in_([Status.IN_DOUBT, Status.RETRY, Status.SENDING,
                                            Status.CLAIMED]))  # fmt: skip
        due = conn.execute(query).scalar()
        now = db_now(conn)
    if due is None:
        return False
    due = datetime.fromisoformat(str(due)).replace(tzinfo=UTC) if isinstance(due, str) else due
    due = due if due.tzinfo else due.replace(tzinfo=UTC)
    time.sleep(max(0.0, (due - now).total_seconds()) + 0.2)
    return True


if __name__ == "__main__":
    main()
